"""Retries against a real database outage, watched through the Prefect API.

The flow runs as `sales-etl run` (a subprocess with the product's default retry budget:
3 retries, ~2, 4, 8 s apart with jitter) against the test session's Prefect API. The outage is
real for the product: the SQLite database's folder is a symlink that is atomically pointed at a
decoy where a *directory* stands in for the database file, so every new connection fails with
"unable to open database file", while connections already open keep working -- as a database
server refusing new connections would. It starts once the Spark stage is running.

- an outage shorter than the retry budget: the run completes, a task's run_count > 1 in the API,
  outputs equal those of one clean run;
- an outage longer than the budget: the run fails cleanly (files stay in to_process/, staging
  rows FAILED, nothing in the marts or tables, a failure report), and `prefect flow-run retry`
  of that same flow run, once the database is back, completes with outputs equal to a clean run.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from harness import PREFECT, SALES_ETL, Workspace, prefect_env, stop_process
from helpers import wait_until
from ops_helpers import (
    REPO,
    artifacts,
    assert_outputs_equal_clean_run,
    flow_run,
    mart_rows,
    prepare_workspace,
    reporting_tables,
    sql_rows,
    task_runs,
)

from sales_etl.tasks.retry import is_transient, retry_on_transient

pytestmark = pytest.mark.slow
RUN_TIMEOUT = 900


class DbOutage:
    """Make new connections to the workspace's SQLite database fail, atomically on and off."""

    def __init__(self, ws: Workspace) -> None:
        self.link = ws.db_dir  # a symlink the database URL goes through
        self.real = ws.root / "db-real"
        self.decoy = ws.root / "db-decoy"
        (self.decoy / ws.db.name).mkdir(parents=True, exist_ok=True)  # a folder, not a database
        self.db_name = ws.db.name
        self.active = False
        self.started_at = self.stopped_at = 0.0

    @staticmethod
    def prepare(root: Path) -> None:
        """Before the workspace is made: its db folder is a symlink to the real folder."""
        (root / "db-real").mkdir(parents=True)
        (root / "db").symlink_to(root / "db-real", target_is_directory=True)

    def _point(self, target: Path) -> None:
        tmp = self.link.with_name(self.link.name + ".next")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target, target_is_directory=True)
        os.replace(tmp, self.link)  # rename(2): atomic

    def start(self) -> None:
        self._point(self.decoy)
        self.active, self.started_at = True, time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="unable to open database file"):
            sqlite3.connect(self.link / self.db_name).execute("SELECT 1")

    def stop(self) -> None:
        if self.active:
            self._point(self.real)
            self.active, self.stopped_at = False, time.monotonic()

    @property
    def seconds(self) -> float:
        return self.stopped_at - self.started_at


@pytest.fixture
def api_url(prefect_api) -> str:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


def _workspace(tmp_path: Path, api_url: str) -> tuple[Workspace, dict[str, str]]:
    DbOutage.prepare(tmp_path / "ws")
    env = prefect_env(tmp_path / "prefect-home", api_url)
    env.pop("SALES_ETL_RETRY_DELAY_SECONDS", None)  # the product's own budget: ~2, 4, 8 s
    ws = prepare_workspace(tmp_path / "ws", env)
    return ws, {**env, **ws.env()}


def _check_running(proc: subprocess.Popen[str]) -> None:
    assert proc.poll() is None, f"the run ended early:\n{proc.communicate()[1][-3000:]}"


def _journal_flow_run_id(ws: Workspace, proc: subprocess.Popen[str]) -> str:
    """The Prefect flow run id the run recorded in its journal (etl_runs), once it opened."""

    def recorded() -> list[tuple]:
        _check_running(proc)
        return sql_rows(ws.root / "db-real" / ws.db.name, "SELECT flow_run_id FROM etl_runs")

    rows = wait_until(
        recorded,
        lambda rows: bool(rows and rows[0][0]),
        timeout=RUN_TIMEOUT,
        describe="the run's batch (a flow_run_id in etl_runs)",
    )
    return rows[0][0]


def _wait_for_spark_stage(api_url: str, flow_run_id: str, proc: subprocess.Popen[str]) -> None:
    def probe() -> list[dict]:
        _check_running(proc)
        return task_runs(api_url, flow_run_id)

    wait_until(
        probe,
        lambda runs: any(
            run["name"].startswith("build-marts") and run["state_type"] in {"RUNNING", "COMPLETED"}
            for run in runs
        ),
        timeout=RUN_TIMEOUT,
        describe="the Spark stage (task run build-marts RUNNING or COMPLETED)",
        interval=0.25,
        show=_task_states,
    )


def _task_states(runs: list[dict]) -> str:
    return repr([(t["name"], t["state_type"], t["run_count"]) for t in runs])


def _retried(api_url: str, flow_run_id: str) -> list[dict]:
    """Task runs that failed an attempt (waiting for, or past, a retry)."""
    return [
        run
        for run in task_runs(api_url, flow_run_id)
        if run["run_count"] > 1 or (run.get("state_name") in {"AwaitingRetry", "Retrying"})
    ]


def _run(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [SALES_ETL, "run"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def test_short_db_outage_is_retried_and_the_run_completes(tmp_path: Path, api_url: str) -> None:
    ws, env = _workspace(tmp_path, api_url)
    outage = DbOutage(ws)
    proc = _run(env)
    try:
        flow_run_id = _journal_flow_run_id(ws, proc)
        _wait_for_spark_stage(api_url, flow_run_id, proc)
        outage.start()

        # Over as soon as the API shows an attempt failed: shorter than the retry budget.
        def retried() -> list[dict]:
            assert proc.poll() is None, f"run ended during the outage:\n{proc.communicate()[1]}"
            return _retried(api_url, flow_run_id)

        wait_until(
            retried,
            timeout=RUN_TIMEOUT,
            describe="a task run that failed an attempt during the outage",
            interval=0.2,
        )
        outage.stop()
        _out, err = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        outage.stop()
        stop_process(proc, grace=0)
    assert proc.returncode == 0, err[-3000:]
    run = flow_run(api_url, flow_run_id)
    assert run["state"]["type"] == "COMPLETED"
    # Task run states reach the API as events, possibly after the flow run's final state.
    runs = wait_until(
        lambda: task_runs(api_url, flow_run_id),
        lambda runs: (
            any(t["run_count"] > 1 for t in runs)
            and all(t["state_type"] == "COMPLETED" for t in runs)
        ),
        timeout=120,
        describe="a retried task run and every task run COMPLETED",
        show=_task_states,
    )
    retried = [t for t in runs if t["run_count"] > 1]
    assert retried, "the API shows no retried task run"
    assert all(t["state_type"] == "COMPLETED" for t in runs)
    assert outage.seconds > 0
    assert_outputs_equal_clean_run(ws)
    assert sql_rows(ws.db, "SELECT status FROM etl_runs") == [("COMPLETED",)]


def test_long_db_outage_fails_cleanly_and_a_retry_of_that_flow_run_succeeds(
    tmp_path: Path, api_url: str
) -> None:
    ws, env = _workspace(tmp_path, api_url)
    outage = DbOutage(ws)
    proc = _run(env)
    try:
        flow_run_id = _journal_flow_run_id(ws, proc)
        _wait_for_spark_stage(api_url, flow_run_id, proc)
        outage.start()  # lasts until the run has given up
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        outage.stop()
        stop_process(proc, grace=0)

    # Failed cleanly, with a clear message.
    assert proc.returncode == 1, out + err
    assert "sales-etl run: failed: OperationalError" in err
    assert "unable to open database file" in err
    run = flow_run(api_url, flow_run_id)
    assert run["state"]["type"] == "FAILED"
    assert "unable to open database file" in run["state"]["message"]
    runs = wait_until(  # task run states arrive as events, possibly after the flow's state
        lambda: task_runs(api_url, flow_run_id),
        lambda runs: [t["run_count"] for t in runs if t["state_type"] == "FAILED"] == [4],
        timeout=120,
        describe="one FAILED task run with run_count 4",
        show=_task_states,
    )
    exhausted = [t for t in runs if t["state_type"] == "FAILED"]
    assert [t["run_count"] for t in exhausted] == [4], exhausted  # 1 attempt + 3 retries
    # Files stay in to_process/ (the rejected one was routed before the outage).
    inbox = sorted(p.name for p in (ws.landing / "to_process").iterdir())
    assert inbox == ["sales_a.csv", "sales_b.csv"]
    assert sorted(sql_rows(ws.db, "SELECT file_name, status FROM staging_files")) == [
        ("notes.txt", "REJECTED"),
        ("sales_a.csv", "FAILED"),
        ("sales_b.csv", "FAILED"),
    ]
    assert sql_rows(ws.db, "SELECT status FROM etl_runs") == [("FAILED",)]
    assert mart_rows(ws.marts) == {
        "customer_data_mart": [],
        "sales_team_data_mart": [],
        "quarantine": [],
    }
    assert reporting_tables(ws.db) == {"customer_monthly_purchase": [], "sales_team_incentive": []}
    report = [a["data"] for a in artifacts(api_url, flow_run_id) if a["key"] == "sales-etl-summary"]
    assert len(report) == 1 and "# Sales ETL run: Failed" in report[0]
    assert "unable to open database file" in report[0]

    # The database is back: retry that same flow run (what the UI's Retry does, from the CLI).
    retry = subprocess.run(
        [
            PREFECT,
            "flow-run",
            "retry",
            flow_run_id,
            "--entrypoint",
            "sales_etl.flows.sales_flow:sales_etl_flow",
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert retry.returncode == 0, retry.stdout[-3000:] + retry.stderr[-3000:]
    run = flow_run(api_url, flow_run_id)
    assert run["state"]["type"] == "COMPLETED"
    assert run["run_count"] == 2
    assert_outputs_equal_clean_run(ws)
    assert sorted(sql_rows(ws.db, "SELECT status FROM etl_runs")) == [("COMPLETED",), ("FAILED",)]


# --- the retry condition (no I/O) ------------------------------------------------------------------


def _sqlalchemy_error(orig: Exception) -> Exception:
    from sqlalchemy.exc import OperationalError

    return OperationalError("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (_sqlalchemy_error(sqlite3.OperationalError("unable to open database file")), True),
        (_sqlalchemy_error(sqlite3.OperationalError("database is locked")), True),
        (_sqlalchemy_error(sqlite3.OperationalError("no such table: customer")), False),
        (ConnectionRefusedError(111, "Connection refused"), True),
        (TimeoutError("timed out"), True),
        (ValueError("bad value"), False),
        (KeyError("customer_id"), False),
    ],
)
def test_only_transient_errors_are_retried(error: Exception, transient: bool) -> None:
    from prefect.states import Failed

    assert is_transient(error) is transient
    # Prefect 3 calls retry_condition_fn(task, task_run, state); state.result() raises the error.
    assert retry_on_transient(None, None, Failed(data=error)) is transient


@pytest.mark.parametrize(
    ("code", "transient"), [(2003, True), (2013, True), (1213, True), (1045, False), (1146, False)]
)
def test_mysql_error_codes(code: int, transient: bool) -> None:
    import pymysql

    assert is_transient(_sqlalchemy_error(pymysql.err.OperationalError(code, "x"))) is transient


def test_wrapped_errors_are_followed_through_their_cause() -> None:
    try:
        try:
            raise ConnectionResetError("peer reset")
        except ConnectionResetError as inner:
            raise RuntimeError("while writing the marts") from inner
    except RuntimeError as outer:
        assert is_transient(outer)


def test_each_call_retries_as_often_as_its_settings_say(prefect_api) -> None:
    """One process, one task definition, two budgets: the budget is read per call (per run),
    not fixed when the task was imported."""
    from prefect import flow

    from sales_etl.settings import Settings
    from sales_etl.tasks.retry import io_task

    attempts: list[int] = []

    @io_task("always-refused")
    def always_refused(settings: Settings) -> None:
        attempts.append(1)
        raise ConnectionRefusedError(111, "Connection refused (injected)")

    @flow(name="retry-budget-probe")
    def probe(retries: int) -> bool:
        settings = Settings(task_retries=retries, retry_delay_seconds=0)
        return always_refused(settings, return_state=True).is_failed()

    for retries in (2, 0, 1):
        attempts.clear()
        assert probe(retries) is True
        assert len(attempts) == 1 + retries, retries
