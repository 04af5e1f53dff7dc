"""Every mistake of issue 12 through the real ``sales-etl`` command, and through a Prefect flow run.

Each CLI case runs ``.venv/bin/sales-etl`` in a subprocess against a copy of one prepared
workspace (dimensions loaded, two sales files and a wrong file waiting in ``to_process/``) and
asserts: the exit code, a stderr of at most two lines (``sales-etl <command>: ...`` and
``hint: ...``) naming the setting / file / table and the resolved location, no traceback, no
password, and that nothing moved (the landing zone byte for byte, the marts folder and every
table unchanged, no new file anywhere in the workspace).

The empty-dimension and bad-setting cases also run as Prefect flow runs (the session's
``prefect_test_harness``): the run is Failed, its message names the table / setting, and the
run's summary artifact exists. Preflight failures never start Spark, so the module is fast.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from crash_helpers import base_env
from harness import SALES_ETL, Workspace, free_port
from helpers import files_under, tree_snapshot
from ops_helpers import (
    REPO,
    dimension_csvs,
    prepare_workspace,
    sql_rows,
)

PASSWORD = "Pa55-w0rd-never-shown"
TABLES = (
    "customer",
    "store",
    "sales_team",
    "product",
    "staging_files",
    "etl_runs",
    "customer_monthly_purchase",
    "sales_team_incentive",
)


# --- workspace and snapshots ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """One workspace made with the CLI (init-db, load-dimensions), files waiting; never run."""
    root = tmp_path_factory.mktemp("mistakes")
    return prepare_workspace(root / "ws", base_env(root / "prefect-home", None))


def snapshot(ws: Workspace) -> dict[str, Any]:
    """Everything a run could change: every file (bytes), and every table's rows."""
    files = {p: h for p, h in tree_snapshot(ws.root).items() if not p.startswith("db/")}
    tables = None
    if ws.db.is_file():
        tables = {t: sorted(map(repr, sql_rows(ws.db, f"SELECT * FROM {t}"))) for t in TABLES}
    return {"files": files, "db_files": files_under(ws.db_dir), "tables": tables}


def assert_nothing_moved(before: dict[str, Any], ws: Workspace) -> None:
    after = snapshot(ws)
    assert after["files"] == before["files"]  # to_process byte for byte, marts, no new file
    assert {n for n in after["db_files"] if not n.endswith(("-wal", "-shm"))} == {
        n for n in before["db_files"] if not n.endswith(("-wal", "-shm"))
    }
    assert after["tables"] == before["tables"]


def cli(
    args: list[str], env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SALES_ETL, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def refused(done: subprocess.CompletedProcess[str], command: str, code: int = 2) -> str:
    """The one-line message of a refused command (asserts the shape of stderr)."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == code, done.stdout + done.stderr
    assert 1 <= len(lines) <= 2, done.stderr
    assert lines[0].startswith(f"sales-etl {command}: "), done.stderr
    if len(lines) == 2:
        assert lines[1].startswith("hint: "), done.stderr
    assert "Traceback" not in done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    return done.stderr


# --- sales-etl run -------------------------------------------------------------------------------


@pytest.mark.slow
def test_run_on_a_missing_landing_folder(ws: Workspace, env: dict[str, str], tmp_path: Path):
    before = snapshot(ws)
    missing = tmp_path / "no" / "such" / "folder"
    err = refused(cli(["run", "--landing", str(missing)], env), "run")
    assert "SALES_ETL_LANDING / --landing" in err and str(missing) in err
    assert_nothing_moved(before, ws)


@pytest.mark.parametrize("inner", ["to_process", "processed", "error_files"])
@pytest.mark.slow
def test_run_on_a_folder_inside_the_landing_zone(ws: Workspace, env: dict[str, str], inner: str):
    """Pointing SALES_ETL_LANDING at to_process/ itself found "nothing to do" and exited 0
    while files waited: a nightly schedule would stay green forever."""
    inside = ws.landing / inner
    inside.mkdir(exist_ok=True)
    before = snapshot(ws)
    err = refused(cli(["run", "--landing", str(inside)], env), "run")
    first, hint = err.strip().splitlines()
    assert "SALES_ETL_LANDING / --landing" in first and str(inside) in first
    assert hint == f"hint: point it at {ws.landing} (the folder that holds to_process/)"
    assert_nothing_moved(before, ws)


@pytest.mark.slow
def test_run_with_the_files_dropped_beside_to_process(ws: Workspace, env: dict[str, str]):
    """Files put at the top of the landing zone instead of into to_process/: the run has
    nothing to do (exit 0), but says on stderr which files it did not read and why."""
    (ws.inbox / "sales_c.csv").write_bytes((ws.inbox / "sales_a.csv").read_bytes())
    dropped = sorted(p.name for p in ws.inbox.iterdir())
    assert len(dropped) == 4  # more than the warning names
    for name in dropped:
        (ws.inbox / name).rename(ws.landing / name)
    before = snapshot(ws)
    done = cli(["run"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing to do" in done.stdout
    (warning,) = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    assert f"{len(dropped)} file(s) at the top of the landing zone {ws.landing}" in warning
    assert f"({', '.join(dropped[:3])}, ...)" in warning
    assert "only the files in to_process/" in warning
    assert_nothing_moved(before, ws)


@pytest.mark.slow
def test_demo_on_a_workspace_with_other_data_is_refused(ws: Workspace, env: dict[str, str]):
    """`sales-etl demo` with settings pointing at a workspace that holds real dimensions: it
    would replace customers by id and mix sample sales in; refused before writing anything."""
    customers = sql_rows(ws.db, "SELECT COUNT(*) FROM customer")[0][0]
    assert customers > 0
    before = snapshot(ws)
    err = refused(cli(["demo"], env, cwd=ws.root), "demo")
    assert f"already holds {customers} customer row(s) that are not the demo's" in err
    assert "SALES_ETL_DATABASE_URL unset" in err
    assert_nothing_moved(before, ws)  # no samples folder, no file, no row changed


@pytest.mark.slow
def test_replay_of_a_batch_the_quarantine_does_not_hold(ws: Workspace, env: dict[str, str]):
    """A well-formed --batch that quarantined nothing (a typo): one line and a hint, refused
    before Prefect starts (no flow-run traceback on stderr), nothing changed."""
    before = snapshot(ws)
    err = refused(cli(["replay", "--batch", "20240101_000000", "--dry-run"], env), "replay")
    first, hint = err.strip().splitlines()
    assert first.endswith("--batch '20240101_000000': no quarantined row comes from that batch")
    assert hint == "hint: the quarantine holds rows of 0 batch(es); the latest: none"
    assert_nothing_moved(before, ws)


@pytest.mark.slow
def test_run_with_an_empty_dimension_table(ws: Workspace, env: dict[str, str]):
    with sqlite3.connect(ws.db) as conn:
        conn.execute("DELETE FROM sales_team")
    conn.close()
    before = snapshot(ws)
    err = refused(cli(["run"], env), "run")
    first, hint = err.strip().splitlines()
    assert "sales_team" in first and "customer" not in first and "store" not in first
    assert str(ws.db) in first  # the resolved, absolute database file
    assert hint.startswith("hint: run sales-etl load-dimensions DIR --database-url")
    assert f"sqlite:///{ws.db}" in hint
    assert_nothing_moved(before, ws)


@pytest.mark.slow
def test_run_from_another_folder_with_the_default_relative_database(
    ws: Workspace, env: dict[str, str], tmp_path: Path
):
    """The default ``sqlite:///./data/sales_etl.db`` is relative to the working directory: a
    run from elsewhere must name the file it looked for, not make a second database."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    del env["SALES_ETL_DATABASE_URL"]
    before = snapshot(ws)
    err = refused(cli(["run"], env, cwd=elsewhere), "run")
    expected = elsewhere / "data" / "sales_etl.db"
    assert "SALES_ETL_DATABASE_URL / --database-url" in err and str(expected) in err
    assert f"relative to the working directory, {elsewhere}" in err
    assert files_under(elsewhere) == []  # no second database was created
    assert_nothing_moved(before, ws)


@pytest.mark.slow
def test_run_with_a_marts_folder_whose_parent_is_missing(
    ws: Workspace, env: dict[str, str], tmp_path: Path
):
    before = snapshot(ws)
    marts = tmp_path / "gone" / "marts"
    err = refused(cli(["run", "--marts", str(marts)], env), "run")
    assert "SALES_ETL_MARTS / --marts" in err and str(marts) in err
    assert not (tmp_path / "gone").exists()
    assert_nothing_moved(before, ws)


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("SALES_ETL_INCENTIVE_SCOPE", "shop", ["--incentive-scope", "'shop'", "company", "store"]),
        ("SALES_ETL_INCENTIVE_RATE", "1%", ["'1%'", "0.01"]),
        ("SALES_ETL_MAX_BAD_ROW_FRACTION", "2", ["'2'"]),
        ("SALES_ETL_SPARK_SHUFFLE_PARTITIONS", "eight", ["'eight'"]),
        # Spark would die at JVM launch naming nothing, after files were already routed.
        ("SALES_ETL_SPARK_DRIVER_MEMORY", "4 GB", ["'4 GB'", "4g"]),
        # Read by the retry policy when tasks are imported: a ValueError naming nothing before.
        ("SALES_ETL_TASK_RETRIES", "three", ["'three'"]),
        ("SALES_ETL_RETRY_DELAY_SECONDS", "abc", ["'abc'"]),
        # Was read as "anything else is off".
        ("SALES_ETL_DEBUG", "maybe", ["--debug", "'maybe'", "boolean"]),
    ],
)
@pytest.mark.slow
def test_run_with_a_bad_setting(
    ws: Workspace, env: dict[str, str], variable: str, value: str, named: list[str]
):
    before = snapshot(ws)
    err = refused(cli(["run"], {**env, variable: value}), "run")
    first = err.splitlines()[0]
    assert variable in first
    assert all(word in first for word in named), first
    assert_nothing_moved(before, ws)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("variable", "meant"),
    [
        ("SALES_ETL_LANDNG", "SALES_ETL_LANDING"),
        ("SALES_ETL_MAX_BAD_ROW_FRACTON", "SALES_ETL_MAX_BAD_ROW_FRACTION"),
        ("SALES_ETL_DATABASE", "SALES_ETL_DATABASE_URL"),
    ],
)
def test_run_with_a_misspelt_variable(
    ws: Workspace, env: dict[str, str], tmp_path: Path, variable: str, meant: str
):
    """A misspelt name was ignored: the run used the default instead, found nothing and exited
    0 (a stranger's first try). A plugin's own variable (no near miss) is still accepted."""
    before = snapshot(ws)
    err = refused(cli(["run"], {**env, variable: str(tmp_path)}), "run")
    assert (
        err.splitlines()[0] == f"sales-etl run: not a setting: {variable} (did you mean {meant}?)"
    )
    assert_nothing_moved(before, ws)


@pytest.mark.slow
def test_run_on_a_landing_that_is_a_file(ws: Workspace, env: dict[str, str], tmp_path: Path):
    a_file = tmp_path / "sales.csv"
    a_file.write_text("customer_id\n")
    before = snapshot(ws)
    first, hint = refused(cli(["run", "--landing", str(a_file)], env), "run").strip().splitlines()
    assert first.endswith(f"landing {a_file} is a file, not a folder")
    assert "mkdir" not in hint  # the old hint said mkdir -p <the file>/to_process
    assert_nothing_moved(before, ws)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["run", "init-db"])
def test_database_path_that_is_a_folder(
    ws: Workspace, env: dict[str, str], tmp_path: Path, command: str
):
    """It said "does not exist" (run) or blamed host, port and password (init-db)."""
    folder = tmp_path / "dbdir"
    folder.mkdir()
    before = snapshot(ws)
    err = refused(cli([command, "--database-url", f"sqlite:///{folder}"], env), command)
    assert f"{folder} is a folder, not a SQLite database file" in err.splitlines()[0]
    assert err.splitlines()[1] == f"hint: name a file, e.g. sqlite:///{folder / 'sales_etl.db'}"
    assert_nothing_moved(before, ws)
    assert list(folder.iterdir()) == []


@pytest.mark.slow
def test_validation_depth_is_accepted_in_any_case(ws: Workspace, env: dict[str, str]):
    """``schema_only`` is a valid value: the run gets past the settings (and is refused later
    only because this test empties the customer table, so it stops before Prefect starts)."""
    with sqlite3.connect(ws.db) as conn:
        conn.execute("DELETE FROM customer")
    conn.close()
    err = refused(cli(["run"], {**env, "SALES_ETL_VALIDATION_DEPTH": "schema_only"}), "run")
    assert "VALIDATION_DEPTH" not in err and "customer" in err


@pytest.mark.slow
def test_run_json_prints_a_json_object_on_failure(
    ws: Workspace, env: dict[str, str], tmp_path: Path
):
    missing = tmp_path / "nowhere"
    done = cli(["run", "--json", "--landing", str(missing)], env)
    refused(done, "run")
    report = json.loads(done.stdout)
    assert report["status"] == "failed" and report["exit_code"] == 2
    assert "SALES_ETL_LANDING" in report["error"] and str(missing) in report["error"]
    assert report["batch_id"] is None and report["outcome"] == "nothing was moved"
    assert report["landing"] == str(missing)
    assert report["database"] == f"sqlite:///{ws.db}"


@pytest.mark.slow
def test_debug_shows_the_traceback(ws: Workspace, env: dict[str, str], tmp_path: Path):
    args = ["run", "--landing", str(tmp_path / "nowhere")]
    for done in (cli([*args, "--debug"], env), cli(args, {**env, "SALES_ETL_DEBUG": "1"})):
        assert done.returncode == 2
        assert "Traceback" in done.stderr and "ConfigError" in done.stderr
        assert done.stderr.strip().splitlines()[-2].startswith("sales-etl run: ")


# --- the database URL ----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "init-db"])
@pytest.mark.slow
def test_misspelt_database_driver(ws: Workspace, env: dict[str, str], command: str):
    url = f"mysql+pymsql://etl:{PASSWORD}@127.0.0.1:3306/sales"
    before = snapshot(ws)
    err = refused(cli([command, "--database-url", url], env), command)
    assert "SALES_ETL_DATABASE_URL / --database-url" in err and "'mysql+pymsql'" in err
    assert "mysql+pymsql://etl:***@127.0.0.1:3306/sales" in err
    assert_nothing_moved(before, ws)


@pytest.mark.parametrize("command", ["run", "init-db"])
@pytest.mark.slow
def test_unreachable_mysql(ws: Workspace, env: dict[str, str], command: str):
    port = free_port()  # nothing listens there
    url = f"mysql+pymysql://etl:{PASSWORD}@127.0.0.1:{port}/sales"
    before = snapshot(ws)
    started = time.monotonic()
    err = refused(cli([command], {**env, "SALES_ETL_DATABASE_URL": url}), command)
    assert time.monotonic() - started < 60  # no retry loop on a configuration error
    assert "SALES_ETL_DATABASE_URL / --database-url" in err
    assert f"mysql+pymysql://etl:***@127.0.0.1:{port}/sales" in err and "2003" in err
    assert_nothing_moved(before, ws)


# --- other commands ------------------------------------------------------------------------------


@pytest.mark.slow
def test_load_dimensions_from_a_missing_folder(ws: Workspace, env: dict[str, str], tmp_path: Path):
    before = snapshot(ws)
    err = refused(cli(["load-dimensions", "no-such-dims"], env, cwd=tmp_path), "load-dimensions")
    assert str(tmp_path / "no-such-dims") in err
    assert_nothing_moved(before, ws)


@pytest.mark.parametrize("mistake", ["bad value", "file missing"])
@pytest.mark.slow
def test_load_dimensions_with_a_bad_file(
    ws: Workspace, env: dict[str, str], tmp_path: Path, mistake: str
):
    """The loader's located message (file, line, column) in one line, not in a traceback."""
    dims = tmp_path / "dims"
    dims.mkdir()
    for name, text in dimension_csvs().items():  # the data already loaded, byte for byte...
        (dims / name).write_text(text)
    if mistake == "bad value":  # ...but for one impossible date on product.csv's line 2
        product = (dims / "product.csv").read_text().replace("2023-01-01", "2023-02-30", 1)
        (dims / "product.csv").write_text(product)
        named = ["product.csv", "line 2", "created_date", "2023-02-30"]
    else:
        (dims / "store.csv").unlink()
        named = ["store.csv", str(dims)]
    before = snapshot(ws)
    err = refused(cli(["load-dimensions", str(dims)], env), "load-dimensions")
    first = err.splitlines()[0]
    assert all(word in first for word in named), first
    assert_nothing_moved(before, ws)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--rows", "-5"], "argument --rows"),
        (["--files", "0"], "argument --files"),
        (["--bad-row-fraction", "1.5"], "argument --bad-row-fraction"),
        (["--start", "2024-02-30"], "argument --start"),
    ],
)
@pytest.mark.slow
def test_generate_refuses_bad_counts_fractions_and_dates(
    env: dict[str, str], tmp_path: Path, args: list[str], named: str
):
    out = tmp_path / "generated"
    err = refused(cli(["generate", "--out", str(out), *args], env), "generate")
    assert named in err
    assert not out.exists()


@pytest.mark.slow
def test_plugins_with_a_missing_plugins_folder(ws: Workspace, env: dict[str, str], tmp_path: Path):
    missing = tmp_path / "no-such-plugins"
    err = refused(cli(["plugins", "--plugins-dir", str(missing)], env), "plugins")
    assert "SALES_ETL_PLUGINS_DIR / --plugins-dir" in err and str(missing) in err


def test_version_is_the_installed_distribution() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    done = subprocess.run([SALES_ETL, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout.strip() == f"sales-etl {declared}"


def test_every_option_says_what_it_does_and_its_default() -> None:
    import argparse

    from sales_etl.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        for action in sub._actions:
            if action.help in (None, argparse.SUPPRESS) or not action.option_strings:
                continue
            if action.dest == "help":
                continue
            assert "default" in action.help, f"{name} {action.option_strings}: {action.help}"
            assert len(action.help.split()) >= 4, f"{name} {action.option_strings}"


# --- S3 ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_run_on_a_missing_bucket(ws: Workspace, env: dict[str, str], moto_server, s3_bucket):
    aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}  # moto's endpoint
    before = snapshot(ws)
    err = refused(
        cli(["run", "--landing", f"s3://{s3_bucket}-missing/landing"], {**env, **aws}), "run"
    )
    assert "SALES_ETL_LANDING / --landing" in err and f"{s3_bucket}-missing" in err
    assert "does not exist" in err and moto_server.endpoint in err
    assert moto_server.secret_key not in err
    err = refused(
        cli(
            ["run", "--landing", f"s3://{s3_bucket}/landing", "--marts", "s3://xx-none/marts"],
            {**env, **aws},
        ),
        "run",
    )
    assert "SALES_ETL_MARTS / --marts" in err and "xx-none" in err
    assert_nothing_moved(before, ws)


# --- through Prefect -----------------------------------------------------------------------------


def _summary_artifact(flow_run_id: Any, timeout: float = 30) -> str:
    """The run's ``sales-etl-summary`` markdown, waited for with a deadline."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    from sales_etl.artifacts import SUMMARY_KEY

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            found = client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=[SUMMARY_KEY]),
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                )
            )
            if found:
                return str(found[0].data)
            assert time.monotonic() < deadline, "no summary artifact for the failed run"
            time.sleep(0.5)


def _failed_flow_run(ws: Workspace, **params: Any) -> tuple[Any, str, list[Any]]:
    """Run the flow in-process; returns the flow run and its task runs as the API has them,
    and its summary artifact."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from sales_etl.flows.sales_flow import sales_etl_flow

    state = sales_etl_flow(
        landing=str(ws.landing),
        marts=str(ws.marts),
        database_url=ws.database_url,
        return_state=True,
        **params,
    )
    assert state.is_failed()
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return run, _summary_artifact(flow_run_id), task_runs


@pytest.mark.slow
def test_flow_run_with_an_empty_dimension_table_fails_with_a_report(
    ws: Workspace, prefect_api, monkeypatch: pytest.MonkeyPatch
):
    with sqlite3.connect(ws.db) as conn:
        conn.execute("DELETE FROM store")
    conn.close()
    before = snapshot(ws)
    run, report, task_runs = _failed_flow_run(ws)
    # The preflight task failed once and was not retried (a ConfigError is not an outage);
    # no other task ran.
    assert [(t.name.rsplit("-", 1)[0], t.state_type.value, t.run_count) for t in task_runs] == [
        ("preflight", "FAILED", 1)
    ]
    assert run.state is not None and run.state.type.value == "FAILED"
    assert re.search(r"dimension table\(s\) store empty in sqlite:///" + re.escape(str(ws.db)),
                     run.state.message or ""), run.state.message  # fmt: skip
    assert "Sales ETL run: Failed" in report and "store" in report
    assert "failed before it opened a batch" in report
    assert_nothing_moved(before, ws)


@pytest.mark.slow
def test_flow_run_with_a_bad_setting_fails_with_a_report(
    ws: Workspace, prefect_api, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("SALES_ETL_INCENTIVE_RATE", "1%")
    before = snapshot(ws)
    run, report, task_runs = _failed_flow_run(ws)
    assert task_runs == []  # refused before its first task
    assert run.state is not None and run.state.type.value == "FAILED"
    assert "SALES_ETL_INCENTIVE_RATE = '1%'" in (run.state.message or ""), run.state.message
    assert "SALES_ETL_INCENTIVE_RATE" in report and "settings could not be read" in report
    assert_nothing_moved(before, ws)


def test_a_config_error_is_never_retried_even_around_a_connection_error() -> None:
    from sales_etl.errors import ConfigError
    from sales_etl.tasks.retry import is_transient

    refused_connection = ConnectionRefusedError(111, "Connection refused")
    assert is_transient(refused_connection)  # an outage alone is retried...
    try:
        try:
            raise refused_connection
        except ConnectionRefusedError as exc:
            raise ConfigError("SALES_ETL_DATABASE_URL / --database-url: cannot connect") from exc
    except ConfigError as wrapped:
        assert not is_transient(wrapped)  # ...but not once judged a configuration error


def test_an_unreachable_service_is_retried_in_the_flow_only_when_it_looks_like_an_outage() -> None:
    """The preflight says "cannot connect" in one line; inside a flow its task retries a refused
    connection (a nightly run waits out a database restart) but not a refused password."""
    import pymysql
    from sqlalchemy.exc import OperationalError

    from sales_etl.errors import ServiceUnreachableError
    from sales_etl.tasks.retry import is_transient

    def judged(driver_error: Exception) -> bool:
        try:
            try:
                raise OperationalError("SELECT 1", {}, driver_error)
            except OperationalError as exc:
                raise ServiceUnreachableError("SALES_ETL_DATABASE_URL: cannot connect") from exc
        except ServiceUnreachableError as wrapped:
            return is_transient(wrapped)

    assert judged(pymysql.err.OperationalError(2003, "Can't connect to MySQL server"))
    assert not judged(pymysql.err.OperationalError(1045, "Access denied for user 'etl'"))


@pytest.fixture
def restored_environ() -> Iterator[None]:
    """``sales-etl run`` in-process exports every setting as SALES_ETL_*: undo that after."""
    with mock.patch.dict(os.environ):
        yield


@pytest.mark.slow
def test_run_json_says_the_batch_was_rolled_back_when_a_run_fails_after_opening_it(
    ws: Workspace,
    prefect_api,
    restored_environ: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
):
    """A failure after the batch opened (injected into the reject moves, before Spark): exit 1,
    the JSON object says the batch was rolled back, and the files are all still waiting."""
    import importlib.metadata

    from sales_etl import cli, spark
    from sales_etl.flows import sales_flow

    def broken_route(*_args: Any, **_kwargs: Any) -> None:
        raise OSError(5, "Input/output error (injected)")

    third_party = sorted({ep.name for ep in importlib.metadata.entry_points(group="sales_etl")})
    monkeypatch.setenv("SALES_ETL_DISABLE_PLUGINS", ",".join(third_party))
    monkeypatch.setenv("SALES_ETL_TASK_RETRIES", "0")
    monkeypatch.setattr(sales_flow, "route_rejected_files", broken_route)
    # No JVM for a run that fails before its Spark stage.
    monkeypatch.setattr(spark, "start_spark_in_background", lambda *_, **__: None)
    monkeypatch.setattr(sales_flow, "start_spark_in_background", lambda *_, **__: None)
    for name, value in ws.env().items():
        monkeypatch.setenv(name, value)
    waiting = tree_snapshot(ws.landing / "to_process")

    assert cli.main(["run", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "failed" and report["exit_code"] == 1
    assert "injected" in report["error"] and report["hint"] is None
    assert re.fullmatch(r"\d{8}_\d{6}", report["batch_id"])
    assert report["rolled_back"] is True
    assert tree_snapshot(ws.landing / "to_process") == waiting
    statuses = sql_rows(ws.db, "SELECT status FROM etl_runs")
    assert statuses == [("FAILED",)]


def test_help_imports_neither_prefect_nor_spark() -> None:
    """``--help`` stays instant: the heavy libraries are imported inside the commands only."""
    probe = (
        "import sys\n"
        "from sales_etl.cli import main\n"
        "try:\n"
        "    main(['run', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in ('prefect', 'pyspark', 'pandas', 'pandera') if m in sys.modules)\n"
        "print('heavy:', heavy)\n"
    )
    done = subprocess.run(
        [str(Path(SALES_ETL).parent / "python"), "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "--landing PATH_OR_S3_URL" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "heavy: []"
