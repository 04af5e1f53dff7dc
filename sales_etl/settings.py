"""One settings object for the whole product.

Values come, lowest priority first, from defaults, ``SALES_ETL_*`` environment variables,
CLI flags and Prefect flow parameters (the last two call :meth:`Settings.with_overrides`).
Every ``SALES_ETL_*`` variable the product reads is a field of :class:`Settings` (README
"Configuration" has one table row each; tests/test_settings.py keeps the two equal), except
the few in :data:`OTHER_VARIABLES`.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sales_etl.errors import ConfigError

_JVM_SIZE = re.compile(r"[0-9]+(?:[kmgtp]b?|b)?", re.IGNORECASE)

IncentiveScope = Literal["company", "store"]

ENV_PREFIX = "SALES_ETL_"
#: The command-line flag of each setting that has one (README "Configuration").
CLI_FLAGS = {
    "landing": "--landing",
    "marts": "--marts",
    "database_url": "--database-url",
    "spark_master": "--spark-master",
    "incentive_scope": "--incentive-scope",
    "max_bad_row_fraction": "--max-bad-row-fraction",
    "plugins_dir": "--plugins-dir",
    "disable_plugins": "--disable-plugins",
    "debug": "--debug",
}
#: Settings whose value may hold a secret: never echoed in an error.
_SECRET_SETTINGS = {"database_url"}
#: ``SALES_ETL_*`` variables, read by the product or named in the README, that are deliberately
#: not settings, and what reads them.
OTHER_VARIABLES = {
    # A test hook, read at the instant a fault point is reached (sales_etl/faults.py), deep in
    # code that has no Settings at hand; never set in production.
    "SALES_ETL_CRASH_AT": "test hook: the fault point where the process SIGKILLs itself",
    "SALES_ETL_HOME": "prefect.yaml: the working directory of a deployment's pull step",
    "SALES_ETL_DB_PASSWORD": "docker-compose.yml: the MariaDB password of the compose stack",
}


def setting_label(name: str) -> str:
    """``"SALES_ETL_LANDING / --landing"``: how a user sets ``name`` (the flag when there is one)."""
    env = ENV_PREFIX + name.upper()
    return f"{env} / {CLI_FLAGS[name]}" if name in CLI_FLAGS else env


def _shown_value(name: str, value: object) -> str:
    if name in _SECRET_SETTINGS and isinstance(value, str | SecretStr):
        from sales_etl.secrets import redact_url

        return repr(redact_url(value))
    return repr(value)


def settings_error(exc: ValidationError) -> ConfigError:
    """pydantic's report -> one :class:`ConfigError` line naming each bad setting and its value.

    ``SALES_ETL_INCENTIVE_SCOPE=shop`` gives ``SALES_ETL_INCENTIVE_SCOPE / --incentive-scope =
    'shop': must be 'company' or 'store'``.
    """
    problems = []
    for error in exc.errors(include_url=False):
        name = str(error["loc"][0]) if error.get("loc") else "?"
        why = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        why = why.replace("Input should be", "must be")
        problems.append(f"{setting_label(name)} = {_shown_value(name, error.get('input'))}: {why}")
    return ConfigError(
        "invalid setting: " + "; ".join(problems),
        hint='fix the environment variable or flag; README "Configuration" lists every setting',
    )


def misspelt_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """``SALES_ETL_*`` names in ``environ`` that are not a setting but one typo away from one,
    each with the setting it resembles (``{"SALES_ETL_LANDNG": "SALES_ETL_LANDING"}``).

    Only near misses count (difflib ratio >= 0.8 on the part after the prefix): plugins may read
    ``SALES_ETL_*`` variables of their own (the example plugin's ``SALES_ETL_DATE_WINDOW_DAYS``).
    """
    known = {name.upper() for name in Settings.model_fields} | {
        name.removeprefix(ENV_PREFIX) for name in OTHER_VARIABLES
    }
    found = {}
    for name in sorted(environ):
        suffix = name.removeprefix(ENV_PREFIX)
        if name.startswith(ENV_PREFIX) and suffix not in known:
            close = difflib.get_close_matches(suffix, sorted(known), n=1, cutoff=0.8)
            if close:
                found[name] = ENV_PREFIX + close[0]
    return found


class DebugSettings(BaseSettings):
    """The setting read on its own when an error is reported: whether it shows its traceback.

    Apart from :class:`Settings` so that an invalid other setting is still reported with its
    traceback when ``SALES_ETL_DEBUG`` asks for one.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    debug: bool = Field(
        False,
        description="Errors show their traceback (1/true/yes/on or 0/false/no/off)",
    )

    @field_validator("debug", mode="before")
    @classmethod
    def _empty_is_off(cls, value: object) -> object:
        # An exported but empty SALES_ETL_DEBUG means off, as it did before it was checked.
        if isinstance(value, str):
            return value.strip() or False
        return value

    def __init__(self, **values: Any) -> None:
        """Read defaults, ``SALES_ETL_*`` variables and ``values``.

        Raises:
            ConfigError: a value is invalid (one line naming the variable, flag and value).
        """
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise settings_error(exc) from exc


class Settings(DebugSettings):
    """Configuration of one pipeline run. See README "Configuration".

    ``database_url`` is a :class:`~pydantic.SecretStr`: its repr and ``str()`` are masked, so
    it cannot leak through a log line or a Prefect task's parameters. The functions of
    :mod:`sales_etl.db.engine` take it as it is; :func:`sales_etl.secrets.reveal` unwraps it.
    """

    landing: str = Field("./data/landing", description="Landing zone: a path or s3://bucket/prefix")
    marts: str = Field("./data/marts", description="Data marts root: a path or s3://bucket/prefix")
    database_url: SecretStr = Field(
        "sqlite:///./data/sales_etl.db",  # type: ignore[assignment]  # validated: a SecretStr
        validate_default=True,
        description="SQLAlchemy URL of the database",
    )
    spark_master: str = Field("local[*]", description="Spark master URL")
    spark_driver_memory: str = Field(
        "4g",
        description="spark.driver.memory for local runs, a JVM size such as 4g or 512m",
    )
    spark_shuffle_partitions: int = Field(8, ge=1, description="spark.sql.shuffle.partitions")
    spark_scratch: str | None = Field(
        None,
        description="spark.local.dir: Spark's scratch folder for shuffle and spill files "
        "(default: the system temporary folder)",
    )
    jars_dir: str | None = Field(
        None,
        description="Folder of the s3a connector jars (scripts/fetch-jars.sh); default .jars/ "
        "of the source checkout, else ./.jars",
    )
    incentive_scope: IncentiveScope = Field(
        "company", description="Rank sales people per month company-wide or per store"
    )
    incentive_rate: str = Field(
        "0.01",
        description="Share of the top performer's monthly sales, a decimal fraction "
        "between 0 and 1 (0.01 = 1%)",
    )
    validation_depth: Literal["SCHEMA_ONLY", "SCHEMA_AND_DATA"] = Field(
        "SCHEMA_ONLY",
        description="How deep pandera validates the enriched Spark frame (any letter case)",
    )
    max_bad_row_fraction: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="A file whose quarantined share of rows exceeds this is held whole in "
        "error_files/too_many_bad_rows/ (1.0 turns the guard off)",
    )
    plugins_dir: str | None = Field(None, description="Folder of extra validator plugin .py files")
    disable_plugins: str = Field("", description="Comma-separated plugin names not to load")
    aws_credentials_block: str | None = Field(
        None,
        description="Name of a Prefect AwsCredentials block for S3 (else the standard AWS_* "
        "environment variables, profiles and roles are used)",
    )
    # Prefect accepts at most 50 retry delays per task.
    task_retries: int = Field(
        3, ge=0, le=50, description="Retries of every I/O task on an outage (tasks/retry.py)"
    )
    retry_delay_seconds: float = Field(
        2.0, ge=0, description="Base of the exponential back-off between retries, in seconds"
    )
    lock_ttl_seconds: int = Field(
        6 * 3600, ge=60, description="How long a run's lock is honoured without a heartbeat"
    )

    @field_validator("landing", "marts", "database_url", "spark_master")
    @classmethod
    def _not_empty(cls, value: str | SecretStr) -> str | SecretStr:
        # An empty path would silently mean the working directory (a run writing marts there).
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not text.strip():
            raise ValueError("is empty (unset it to use the default)")
        return value

    @field_validator("incentive_rate")
    @classmethod
    def _incentive_rate_is_a_fraction(cls, value: str) -> str:
        # Checked here, before any file moves, not by Decimal() after the Spark stage.
        try:
            rate = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"not a decimal fraction: {value!r} (write 1% as 0.01)") from None
        if not rate.is_finite() or not Decimal(0) <= rate <= Decimal(1):
            raise ValueError(f"must be between 0 and 1: {value!r} (write 1% as 0.01)")
        return value.strip()

    @field_validator("spark_driver_memory")
    @classmethod
    def _jvm_size(cls, value: str) -> str:
        # Spark's own size syntax (JavaUtils.byteStringAs): checked before the JVM starts, which
        # would otherwise die at launch with "A fatal exception has occurred" naming nothing.
        if not _JVM_SIZE.fullmatch(value.strip()):
            raise ValueError(f"not a JVM memory size: {value!r} (write 4g, 512m, 2048m)")
        return value.strip()

    @field_validator("validation_depth", mode="before")
    @classmethod
    def _depth_in_any_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    def __init__(self, **values: Any) -> None:
        """Read defaults, ``SALES_ETL_*`` variables and ``values``.

        Raises:
            ConfigError: a value is invalid, or a ``SALES_ETL_*`` variable is a misspelt setting
                name (:func:`misspelt_variables`), which would otherwise be ignored silently.
        """
        misspelt = misspelt_variables(os.environ)
        if misspelt:
            raise ConfigError(
                "not a setting: "
                + "; ".join(f"{name} (did you mean {near}?)" for name, near in misspelt.items()),
                hint='rename or unset it; README "Configuration" lists every setting',
            )
        super().__init__(**values)

    def with_overrides(self, **overrides: object) -> Settings:
        """Return a copy with the given non-None values replaced (CLI flags, flow parameters).

        Raises:
            ConfigError: an override is invalid.
        """
        clean = {k: v for k, v in overrides.items() if v is not None}
        try:
            return self.model_validate({**self.model_dump(), **clean})
        except ValidationError as exc:
            raise settings_error(exc) from exc

    def redacted(self) -> dict[str, object]:
        """Settings safe to print or log: credentials in URLs are masked."""
        from sales_etl.secrets import redact_url

        data = self.model_dump()
        data["database_url"] = redact_url(self.database_url)
        return data

    def as_environment(self) -> dict[str, str]:
        """The ``SALES_ETL_*`` variables that give these settings to another process (or to a
        flow run in this one), unset values left out. Holds the database URL in clear text:
        put it in an environment, never in a log."""
        from sales_etl.secrets import reveal

        return {
            ENV_PREFIX + name.upper(): reveal(value) if isinstance(value, SecretStr) else str(value)
            for name, value in self.model_dump().items()
            if value is not None
        }
