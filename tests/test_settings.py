"""Settings (sales_etl/settings.py) and the one masker (sales_etl/secrets.py), no services.

- every ``SALES_ETL_*`` value the product reads is a field of ``Settings`` (or one of the
  documented ``OTHER_VARIABLES``), and the README table lists exactly the fields;
- a wrong value is one ConfigError line naming the variable;
- the database URL is a secret: no repr, str or dump shows it;
- one masker: every place that masks text gives the same result;
- the retry budget of an I/O task comes from the Settings of the call.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest
from ops_helpers import REPO
from pydantic import SecretStr

from sales_etl.errors import ConfigError
from sales_etl.secrets import redact_url, scrub
from sales_etl.settings import CLI_FLAGS, ENV_PREFIX, OTHER_VARIABLES, DebugSettings, Settings

PASSWORD = "Sup3r-s3cret-pw"
URL = f"mysql+pymysql://etl:{PASSWORD}@db.internal:3306/sales"
#: The product's own code (plugins/ are third-party examples that own their variables).
PRODUCT_DIRS = ("sales_etl", "tasks", "flows", "validators")
ENV_NAME = re.compile(r"SALES_ETL_[A-Z0-9_]*[A-Z0-9]")


def setting_variables() -> set[str]:
    return {ENV_PREFIX + name.upper() for name in Settings.model_fields}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No ``SALES_ETL_*`` variable from the test session (conftest sets a few)."""
    for name in setting_variables():
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# --- the README table ----------------------------------------------------------------------------


def readme_table() -> dict[str, list[str]]:
    """README "Configuration" table: each variable -> the cells of its row."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        if not line.startswith("| `SALES_ETL_"):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        for name in ENV_NAME.findall(cells[0]):
            rows[name] = cells
    return rows


def test_every_setting_has_a_row_in_the_readme_table_and_every_row_is_a_setting() -> None:
    documented = set(readme_table())
    assert sorted(setting_variables() - documented) == [], "settings missing from the README"
    assert sorted(documented - setting_variables()) == [], "README rows that are no setting"


def test_the_readme_table_names_each_settings_cli_flag() -> None:
    rows = readme_table()
    for name, flag in CLI_FLAGS.items():
        assert flag in rows[ENV_PREFIX + name.upper()][1], (name, rows[ENV_PREFIX + name.upper()])


def test_every_sales_etl_variable_in_the_readme_is_a_setting_or_a_documented_other() -> None:
    named = set(ENV_NAME.findall((REPO / "README.md").read_text(encoding="utf-8")))
    assert sorted(named - setting_variables() - set(OTHER_VARIABLES)) == []
    assert set(OTHER_VARIABLES).isdisjoint(setting_variables())


# --- nothing reads SALES_ETL_* around Settings ---------------------------------------------------


def _environment_reads(tree: ast.Module) -> list[tuple[int, str]]:
    """``(line, variable)`` of each ``os.environ.get/[]/pop`` and ``os.getenv`` of a constant
    (a string, or a module-level name bound to one)."""
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name) and isinstance(node.value.value, str)
    }

    def value(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        return constants.get(node.id) if isinstance(node, ast.Name) else None

    def is_environ(node: ast.AST) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "environ"

    reads = []
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Call) and node.args and isinstance(node.func, ast.Attribute):
            func = node.func
            if (func.attr in ("get", "pop") and is_environ(func.value)) or func.attr == "getenv":
                key = value(node.args[0])
        elif isinstance(node, ast.Subscript) and is_environ(node.value):
            key = value(node.slice)
        if key is not None:
            reads.append((node.lineno, key))
    return sorted(reads)


def product_environment_reads() -> list[str]:
    found = []
    for folder in PRODUCT_DIRS:
        for path in sorted((REPO / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for line, name in _environment_reads(tree):
                found.append(f"{path.relative_to(REPO)}:{line}: {name}")
    return found


def test_the_environment_scan_sees_reads_of_all_shapes() -> None:
    """The scanner below would see the reads this issue removed (tasks/retry.py, spark.py,
    cli.py read SALES_ETL_* around Settings)."""
    source = (
        "import os\nDEBUG_ENV = 'SALES_ETL_DEBUG'\n"
        "a = int(os.environ.get('SALES_ETL_TASK_RETRIES', '3'))\n"
        "b = os.environ.get(DEBUG_ENV, '')\n"
        "c = os.environ['SALES_ETL_JARS_DIR']\n"
        "d = os.getenv('SALES_ETL_SPARK_SCRATCH')\n"
        "e = os.environ.get('AWS_REGION')\n"
    )
    assert _environment_reads(ast.parse(source)) == [
        (3, "SALES_ETL_TASK_RETRIES"),
        (4, "SALES_ETL_DEBUG"),
        (5, "SALES_ETL_JARS_DIR"),
        (6, "SALES_ETL_SPARK_SCRATCH"),
        (7, "AWS_REGION"),
    ]


def test_no_product_module_reads_a_sales_etl_variable_around_settings() -> None:
    reads = product_environment_reads()
    assert reads, "the scan found no environment read at all: it is broken"
    named = [read for read in reads if read.rsplit(": ", 1)[1].startswith(ENV_PREFIX)]
    assert [read for read in named if read.rsplit(": ", 1)[1] not in OTHER_VARIABLES] == []


# --- wrong values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "why"),
    [
        ("SALES_ETL_TASK_RETRIES", "abc", "must be a valid integer"),
        ("SALES_ETL_TASK_RETRIES", "-1", "greater than or equal to 0"),
        ("SALES_ETL_TASK_RETRIES", "51", "less than or equal to 50"),
        ("SALES_ETL_RETRY_DELAY_SECONDS", "abc", "must be a valid number"),
        ("SALES_ETL_DEBUG", "maybe", "must be a valid boolean"),
        ("SALES_ETL_SPARK_SHUFFLE_PARTITIONS", "0", "greater than or equal to 1"),
        # Empty would silently mean the working directory (or no master).
        ("SALES_ETL_LANDING", "", "is empty (unset it to use the default)"),
        ("SALES_ETL_MARTS", "  ", "is empty (unset it to use the default)"),
        ("SALES_ETL_SPARK_MASTER", "", "is empty (unset it to use the default)"),
    ],
)
def test_a_wrong_value_is_one_config_error_line_naming_the_variable(
    clean_env: pytest.MonkeyPatch, variable: str, value: str, why: str
) -> None:
    clean_env.setenv(variable, value)
    with pytest.raises(ConfigError) as raised:
        Settings()
    message = raised.value.message
    assert "\n" not in message
    assert message.startswith(f"invalid setting: {variable}")
    assert f"= {value!r}: " in message and why in message


def test_an_empty_database_url_is_refused_and_says_so(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SALES_ETL_DATABASE_URL", " ")
    with pytest.raises(ConfigError) as raised:
        Settings()
    assert raised.value.message == (
        "invalid setting: SALES_ETL_DATABASE_URL / --database-url = '***': is empty (unset it to "
        "use the default)"
    )


def test_an_invalid_debug_value_is_refused_on_its_own_too(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SALES_ETL_DEBUG", "maybe")
    with pytest.raises(ConfigError, match="SALES_ETL_DEBUG / --debug = 'maybe'"):
        DebugSettings()


@pytest.mark.parametrize(
    ("value", "on"),
    [
        *[("1", True), ("true", True), ("YES", True), (" on ", True)],
        *[("0", False), ("false", False), ("no", False), ("off", False), ("", False)],
    ],
)
def test_debug_values(clean_env: pytest.MonkeyPatch, value: str, on: bool) -> None:
    clean_env.setenv("SALES_ETL_DEBUG", value)
    assert DebugSettings().debug is on
    assert Settings().debug is on


def test_spark_folders_come_from_the_settings(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sales_etl.spark import jars_dir, s3a_jars

    (tmp_path / "jars").mkdir()
    (tmp_path / "jars" / "hadoop-aws.jar").write_bytes(b"")
    clean_env.setenv("SALES_ETL_JARS_DIR", str(tmp_path / "jars"))
    clean_env.setenv("SALES_ETL_SPARK_SCRATCH", str(tmp_path / "scratch"))
    settings = Settings()
    assert settings.spark_scratch == str(tmp_path / "scratch")
    assert jars_dir(settings) == tmp_path / "jars"
    assert s3a_jars(settings) == [str(tmp_path / "jars" / "hadoop-aws.jar")]
    assert jars_dir(Settings(jars_dir=str(tmp_path / "other"))) == tmp_path / "other"


# --- the database URL is a secret ----------------------------------------------------------------


def test_the_database_url_is_shown_nowhere(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SALES_ETL_DATABASE_URL", URL)
    settings = Settings()
    assert isinstance(settings.database_url, SecretStr)
    shown = [
        repr(settings),
        str(settings),
        repr(settings.database_url),
        str(settings.database_url),
        settings.model_dump_json(),
        repr(settings.redacted()),
    ]
    assert [text for text in shown if PASSWORD in text] == []
    assert settings.redacted()["database_url"] == "mysql+pymysql://etl:***@db.internal:3306/sales"
    assert settings.database_url.get_secret_value() == URL


def test_a_flag_or_parameter_keeps_the_url_secret(clean_env: pytest.MonkeyPatch) -> None:
    settings = Settings().with_overrides(database_url=URL, landing="/data/in")
    assert isinstance(settings.database_url, SecretStr) and PASSWORD not in repr(settings)
    assert settings.database_url.get_secret_value() == URL
    assert settings.with_overrides(marts="/data/out").database_url.get_secret_value() == URL


def test_as_environment_gives_the_same_settings_to_another_process(
    clean_env: pytest.MonkeyPatch,
) -> None:
    settings = Settings(
        database_url=URL, task_retries=0, retry_delay_seconds=0.5, debug=True, jars_dir="/j"
    )
    variables = settings.as_environment()
    assert variables["SALES_ETL_DATABASE_URL"] == URL  # the clear text, for the environment
    assert "SALES_ETL_PLUGINS_DIR" not in variables  # unset stays unset
    for name, value in variables.items():
        clean_env.setenv(name, value)
    assert Settings() == settings


# --- one masker ----------------------------------------------------------------------------------


def test_every_masking_place_gives_the_one_maskers_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sales_etl.validators.manager import clean_reason, describe_exception

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws/SECRET+key0")
    text = f"cannot reach {URL} (signature aws/SECRET+key0 refused)"
    expected = "cannot reach mysql+pymysql://etl:***@db.internal:3306/sales (signature *** refused)"
    assert scrub(text) == expected
    assert clean_reason(text) == expected
    assert describe_exception(RuntimeError(text)) == "RuntimeError: " + expected
    assert redact_url(URL) == expected.split(" ")[2]
    assert redact_url(SecretStr(URL)) == expected.split(" ")[2]


def test_scrub_masks_the_database_password_outside_a_url(clean_env: pytest.MonkeyPatch) -> None:
    settings = Settings(database_url=URL)
    assert scrub(f"login failed with {PASSWORD!r}", settings) == "login failed with '***'"
    assert scrub(f"login failed with {PASSWORD!r}") == f"login failed with {PASSWORD!r}"


# --- retries per run -----------------------------------------------------------------------------


def test_retry_options_are_those_of_the_settings() -> None:
    from sales_etl.tasks.retry import retry_options

    # Prefect's exponential_backoff: factor * 2**n for the n-th retry.
    assert retry_options(Settings(task_retries=3, retry_delay_seconds=2)) == {
        "retries": 3,
        "retry_delay_seconds": [2, 4, 8],
    }
    assert retry_options(Settings(task_retries=0)) == {"retries": 0, "retry_delay_seconds": 0}


def test_every_retrying_task_takes_its_budget_from_the_call() -> None:
    """No task has a retry budget fixed at import: it is an io_task (budget per call) or it
    never retries."""
    import importlib
    import pkgutil

    from prefect import Task

    import sales_etl.tasks
    from sales_etl.tasks.retry import RunRetriesTask

    tasks = []
    for info in pkgutil.iter_modules(sales_etl.tasks.__path__):
        module = importlib.import_module(f"sales_etl.tasks.{info.name}")
        tasks += [v for v in vars(module).values() if isinstance(v, Task)]
    io_tasks = {t.name for t in tasks if isinstance(t, RunRetriesTask)}
    fixed = {t.name: t.retries for t in tasks if not isinstance(t, RunRetriesTask)}
    assert {"preflight", "build-marts", "archive-accepted-files", "commit-replay"} <= io_tasks
    assert set(fixed.values()) == {0}, fixed
    for task in tasks:
        if isinstance(task, RunRetriesTask):
            run_task = task.for_run(Settings(task_retries=2, retry_delay_seconds=1))
            assert (run_task.retries, run_task.retry_delay_seconds) == (2, [1, 2]), task.name
            assert run_task.retry_condition_fn is task.retry_condition_fn is not None


def test_an_io_task_refuses_a_call_without_settings() -> None:
    from sales_etl.tasks.files import list_incoming_files

    with pytest.raises(TypeError, match="takes the run's Settings as its first argument"):
        list_incoming_files("./landing")


# --- the CLI -------------------------------------------------------------------------------------


def keep_main_defaults_local(monkeypatch: pytest.MonkeyPatch) -> None:
    """``cli.main`` sets defaults of two Prefect variables in ``os.environ``: let monkeypatch
    restore them after the test."""
    for name in (
        "PREFECT_SERVER_ANALYTICS_ENABLED",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS",
    ):
        monkeypatch.setenv(name, os.environ.get(name, ""))
        monkeypatch.delenv(name)


def test_debug_env_shows_the_traceback_of_an_invalid_other_setting(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    from sales_etl.cli import main

    keep_main_defaults_local(clean_env)
    clean_env.setenv("SALES_ETL_DEBUG", "1")
    clean_env.setenv("SALES_ETL_INCENTIVE_SCOPE", "shop")
    db = tmp_path / "etl.db"
    assert main(["init-db", "--database-url", f"sqlite:///{db}"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "ConfigError" in err
    assert "SALES_ETL_INCENTIVE_SCOPE / --incentive-scope = 'shop'" in err
    assert not db.exists()


def test_an_invalid_debug_value_stops_every_command(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    from sales_etl.cli import main

    keep_main_defaults_local(clean_env)
    clean_env.setenv("SALES_ETL_DEBUG", "maybe")
    out = tmp_path / "generated"
    assert main(["generate", "--out", str(out), "--rows", "10"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("sales-etl generate: invalid setting: SALES_ETL_DEBUG / --debug")
    assert "Traceback" not in "\n".join(err) and len(err) == 2 and err[1].startswith("hint: ")
    assert not out.exists()
