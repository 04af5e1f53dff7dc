"""Checks made before a run touches anything (README "Command line", issue 12).

``sales-etl run`` calls :func:`run_preflight` before it starts Prefect or Spark, and the flow
calls it again as its first task (a deployment run has no command line), so a mistake costs a
second, moves no file and writes nothing. Every failure is one :class:`ConfigError` naming the
environment variable and flag (or the table), the resolved location (absolute paths; database
passwords masked) and what to do.

The checks are plain functions over one :class:`PreflightContext`, listed in :data:`RUN_CHECKS`
in the order they run; add a check by appending a function there. Read-only checks come
first; :func:`check_marts` may create the marts folder, so it runs last.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sales_etl.errors import ConfigError, ServiceUnreachableError, one_line
from sales_etl.layout import ERROR_FILES, PROCESSED, TO_PROCESS
from sales_etl.settings import Settings, setting_label

if TYPE_CHECKING:
    from sqlalchemy import Engine

#: The dimension tables a run reads (tasks/dimensions.py). ``product`` is not read by the
#: pipeline (sales rows carry the product name and price), so it may be empty.
RUN_DIMENSION_TABLES = ("customer", "store", "sales_team")

#: Spark master URLs the product can use (Spark's own forms: local, standalone, YARN, k8s).
_SPARK_MASTER = re.compile(
    r"local(\[(\*|[1-9][0-9]*)(,[0-9]+)?\])?|local-cluster\[.+\]|spark://\S+|yarn|k8s://\S+"
)


@dataclass
class PreflightContext:
    """What the checks share: the settings and, once :func:`check_database` passed, an engine.

    ``sqlite_must_exist``: a run needs the SQLite file that ``load-dimensions`` filled; a
    missing one is a mistake (usually a relative path run from another folder). ``init-db`` and
    ``load-dimensions`` create it.
    """

    settings: Settings
    sqlite_must_exist: bool = True
    engine: Engine | None = field(default=None, repr=False)

    def connected_engine(self) -> Engine:
        """The engine :func:`check_database` connected (runs that check first if needed)."""
        if self.engine is None:
            check_database(self)
        assert self.engine is not None
        return self.engine


Check = Callable[[PreflightContext], None]


# --- helpers ---------------------------------------------------------------------------------------


def _is_s3(url: str) -> bool:
    return url.startswith(("s3://", "s3a://"))


def _local_path(url: str) -> Path:
    return Path(url.removeprefix("file://")).expanduser().resolve()


def _driver_message(exc: BaseException, settings: Settings) -> str:
    """The database driver's own reason (``(2003, "Can't connect ...")``), one line, scrubbed."""
    from sales_etl.secrets import scrub

    orig = getattr(exc, "orig", None) or exc  # SQLAlchemy keeps the driver's error in .orig
    return one_line(scrub(str(orig), settings))


def _s3_problem(exc: BaseException) -> str:
    """Why an S3 call failed, in words, without credentials."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in ("NoSuchBucket", "404", "NotFound") or status == 404:
            return "the bucket does not exist"
        if code in ("AccessDenied", "403", "Forbidden", "InvalidAccessKeyId") or status == 403:
            return f"access denied with the configured credentials ({code or status})"
        return f"S3 answered {code or status}"
    name = type(exc).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return "no AWS credentials found"
    return f"{name}: {one_line(str(exc), 200)}"


_S3_HINT = (
    "check the bucket name and the AWS_* credentials / AWS_ENDPOINT_URL_S3 (or the Prefect "
    "block named by SALES_ETL_AWS_CREDENTIALS_BLOCK)"
)


def _check_s3_prefix(name: str, url: str, *, list_prefix: bool) -> None:
    """The bucket answers with the configured credentials; ``list_prefix``: listing works too."""
    from sales_etl.storage.s3 import parse_s3_url, resolve_s3_connection, s3_client

    try:
        bucket, prefix = parse_s3_url(url)
    except Exception as exc:  # ValueError / StorageError: says what is wrong with the URL
        raise ConfigError(
            f"{setting_label(name)}: {exc}", hint="write it as s3://bucket/prefix"
        ) from exc
    try:
        client = s3_client()
        client.head_bucket(Bucket=bucket)
        if list_prefix:
            client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/" if prefix else "", MaxKeys=1)
    except ConfigError:
        raise
    except Exception as exc:
        try:
            endpoint = resolve_s3_connection().endpoint_url or "AWS"
        except Exception:
            endpoint = "AWS"
        raise ServiceUnreachableError(
            f"{setting_label(name)}: cannot use s3://{bucket}/{prefix} at {endpoint}: "
            f"{_s3_problem(exc)}",
            hint=_S3_HINT,
        ) from exc


def _local_folder(ctx: PreflightContext, name: str, *, list_prefix: bool) -> Path | None:
    """The absolute folder of storage setting ``name``; None for S3 (its bucket checked here)."""
    url: str = getattr(ctx.settings, name)
    if _is_s3(url):
        _check_s3_prefix(name, url, list_prefix=list_prefix)
        return None
    return _local_path(url)


def _load_hint(settings: Settings, *, create: str | None = None) -> str:
    """How to fill the dimension tables (after ``create``-ing what is missing, if given)."""
    from sales_etl.db.engine import database_location, parse_database_url

    where = database_location(settings.database_url)
    load = f"sales-etl load-dimensions DIR --database-url {where}"
    hint = f"create {create} with sales-etl init-db, then {load}" if create else f"run {load}"
    url = parse_database_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).is_absolute():
        hint += f" (a relative sqlite:/// path is relative to the working directory, {Path.cwd()})"
    return hint


# --- the checks ------------------------------------------------------------------------------------


def check_settings(ctx: PreflightContext) -> None:
    """Settings pydantic cannot judge alone: URL schemes, the database URL, the Spark master,
    the plugins folder. (Each value's own rule is checked when :class:`Settings` is made.)"""
    from sales_etl.db.engine import parse_database_url

    settings = ctx.settings
    for name in ("landing", "marts"):
        url: str = getattr(settings, name)
        if "://" in url and not url.startswith(("s3://", "s3a://", "file://")):
            raise ConfigError(
                f"{setting_label(name)}: unsupported storage URL {url!r}",
                hint="use a local folder or s3://bucket/prefix",
            )
    parse_database_url(settings.database_url)
    if not _SPARK_MASTER.fullmatch(settings.spark_master.strip()):
        raise ConfigError(
            f"{setting_label('spark_master')}: not a Spark master URL: {settings.spark_master!r}",
            hint="use local[*], local[N] or spark://host:7077",
        )
    check_plugins_dir(settings)


def check_plugins_dir(settings: Settings) -> None:
    """``SALES_ETL_PLUGINS_DIR``, when set, is a folder (``run`` and ``plugins`` both load it)."""
    if settings.plugins_dir and not _local_path(settings.plugins_dir).is_dir():
        raise ConfigError(
            f"{setting_label('plugins_dir')}: {_local_path(settings.plugins_dir)} is not a folder",
            hint="point it at the folder of your validator plugin .py files, or unset it",
        )


def check_landing(ctx: PreflightContext) -> None:
    """The landing root exists and can be read and written (files are moved inside it)."""
    path = _local_folder(ctx, "landing", list_prefix=True)
    if path is None:
        return
    label = setting_label("landing")
    hint = (
        "point it at the landing zone (the folder holding to_process/), or create it: "
        f"mkdir -p {path / 'to_process'}"
    )
    if not path.exists():
        raise ConfigError(f"{label}: landing folder {path} does not exist", hint=hint)
    if not path.is_dir():
        raise ConfigError(
            f"{label}: landing {path} is a file, not a folder",
            hint="point it at the landing zone (the folder holding to_process/), not at a file",
        )
    if path.name in (TO_PROCESS, PROCESSED, ERROR_FILES):
        # Pointed at a folder inside the landing zone: a run would look for
        # <it>/to_process/, find nothing and stay green forever.
        raise ConfigError(
            f"{label}: {path} is the landing zone's {path.name}/ folder, not the landing zone",
            hint=f"point it at {path.parent} (the folder that holds to_process/)",
        )
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise ConfigError(
            f"{label}: landing folder {path} is not readable and writable by this user",
            hint="fix its permissions (files are moved from to_process/ into processed/)",
        )


def check_database(ctx: PreflightContext) -> None:
    """The database answers (a SQLite file must exist for a run). Keeps the engine in ``ctx``."""
    from sqlalchemy import text

    from sales_etl.db.engine import DATABASE_SETTING, database_location, make_engine, sqlite_file

    settings = ctx.settings
    path = sqlite_file(settings.database_url)
    if path is not None and path.is_dir():
        raise ConfigError(
            f"{DATABASE_SETTING}: {path} is a folder, not a SQLite database file",
            hint=f"name a file, e.g. sqlite:///{path / 'sales_etl.db'}",
        )
    if path is not None and ctx.sqlite_must_exist and not path.is_file():
        raise ConfigError(
            f"{DATABASE_SETTING}: SQLite database {path} does not exist",
            hint=_load_hint(settings, create="it"),
        )
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        engine.dispose()
        raise ServiceUnreachableError(
            f"{DATABASE_SETTING}: cannot connect to {database_location(settings.database_url)}: "
            f"{_driver_message(exc, settings)}",
            hint="check host, port, user, password and database name, and that the server runs",
        ) from exc
    ctx.engine = engine


def check_dimension_tables(ctx: PreflightContext) -> None:
    """Every dimension table a run reads exists and holds rows.

    Empty dimensions would quarantine every row as ``unknown_*`` and archive the files as
    processed, so that resending them once the dimensions are loaded is refused as a duplicate.
    """
    from sqlalchemy import inspect, literal, select

    from sales_etl.db.engine import database_location
    from sales_etl.db.schema import DIMENSION_TABLES

    engine = ctx.connected_engine()
    where = database_location(ctx.settings.database_url)
    present = set(inspect(engine).get_table_names())
    missing = [name for name in RUN_DIMENSION_TABLES if name not in present]
    if missing:
        raise ConfigError(
            f"dimension table(s) {', '.join(missing)} missing in {where}",
            hint=_load_hint(ctx.settings, create="them"),
        )
    with engine.connect() as conn:
        empty = [
            name
            for name in RUN_DIMENSION_TABLES
            if conn.execute(select(literal(1)).select_from(DIMENSION_TABLES[name]).limit(1)).first()
            is None
        ]
    if empty:
        raise ConfigError(
            f"dimension table(s) {', '.join(empty)} empty in {where}",
            hint=_load_hint(ctx.settings),
        )


def check_dimension_table_columns(ctx: PreflightContext) -> None:
    """Every column a run reads is in the user's dimension tables (tutorial-made tables may lack
    one): :func:`sales_etl.db.schema.check_dimension_columns`."""
    from sales_etl.db.schema import check_dimension_columns

    check_dimension_columns(ctx.connected_engine())


def check_marts(ctx: PreflightContext) -> None:
    """The marts root can be written: a local folder exists (or is created inside an existing
    parent) and is writable; an S3 bucket answers."""
    path = _local_folder(ctx, "marts", list_prefix=False)
    if path is None:
        return
    label = setting_label("marts")
    if not path.exists():
        if not path.parent.is_dir():
            raise ConfigError(
                f"{label}: neither the marts folder {path} nor its parent exists",
                hint=f"create it (mkdir -p {path}) or point the setting at the marts root",
            )
        try:
            path.mkdir()
        except OSError as exc:
            raise ConfigError(
                f"{label}: cannot create the marts folder {path}: {exc.strerror}",
                hint="create it yourself or fix the parent folder's permissions",
            ) from exc
    if not path.is_dir():
        raise ConfigError(f"{label}: marts {path} is not a folder", hint="point it at a folder")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{label}: marts folder {path} is not writable by this user",
            hint="fix its permissions",
        )


#: Every check of a run, in order. Read-only checks first; check_marts may create a folder.
RUN_CHECKS: tuple[Check, ...] = (
    check_settings,
    check_landing,
    check_database,
    check_dimension_tables,
    check_dimension_table_columns,
    check_marts,
)

#: What ``init-db`` and ``load-dimensions`` check: a readable configuration and a database that
#: answers (they create a missing SQLite file).
DATABASE_CHECKS: tuple[Check, ...] = (check_settings, check_database)


def run_preflight(
    settings: Settings,
    checks: Sequence[Check] = RUN_CHECKS,
    *,
    sqlite_must_exist: bool = True,
) -> None:
    """Run ``checks`` in order; the first failure is raised.

    Raises:
        ConfigError: one line naming the setting (environment variable and flag) or table, the
            resolved location and a hint. Nothing was moved or written (except a missing local
            marts folder created by :func:`check_marts`, the last check).
    """
    ctx = PreflightContext(settings, sqlite_must_exist=sqlite_must_exist)
    try:
        for check in checks:
            check(ctx)
    finally:
        if ctx.engine is not None:
            ctx.engine.dispose()
