"""An idle ``sales-etl run`` is answered before Prefect or Spark is imported (issue 16, section 3).

Proof by the modules the process imported, not by timing (bench/run.py --scale times it):
the CLI's idle run leaves ``prefect``, ``pyspark``, ``py4j``, ``pandas`` and ``pandera`` out of
``sys.modules``, prints the same summary as the flow's own idle run (compared with a real flow
run in a subprocess), exits 0 and changes nothing. Whenever the flow has something to do (a
file waiting, a run a crash left STARTED or LOADED, the lock held by a live run) the check
says "not idle", so the flow runs as before. The journal rows are written here with SQLAlchemy
Core over the schema's tables, not with the journal functions under test.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from crash_helpers import base_env
from harness import SALES_ETL, Workspace
from helpers import tree_snapshot
from ops_helpers import (
    prepare_workspace,
    sql_rows,
)

pytestmark = pytest.mark.slow  # `sales-etl` subprocesses against a workspace made with the CLI

HEAVY = ("prefect", "pyspark", "py4j", "pandas", "pandera")

#: Runs the CLI in-process, then reports (stderr, last line) which heavy packages it imported.
_IMPORTS_PROBE = f"""
import json, sys
from sales_etl.cli import main
code = main(["run", "--json"])
loaded = sorted({{name.split(".")[0] for name in sys.modules}} & set({HEAVY!r}))
print(json.dumps({{"exit_code": code, "heavy_modules": loaded}}), file=sys.stderr)
"""

_FLOW = """
import json
from sales_etl.flows.sales_flow import sales_etl_flow
print(json.dumps(sales_etl_flow()))
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """Tables and dimensions made with the CLI; the sales files it drops in are taken out."""
    root = tmp_path_factory.mktemp("idle")
    ws = prepare_workspace(root / "ws", base_env(root / "prefect-home", None))
    for path in (ws.landing / "to_process").iterdir():
        path.unlink()
    return ws


def _python(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _journal_tables(ws: Workspace) -> dict[str, list[tuple[Any, ...]]]:
    return {
        t: sql_rows(ws.db, f"SELECT * FROM {t} ORDER BY 1")
        for t in ("etl_runs", "etl_lock", "staging_files")
    }


def test_idle_cli_run_starts_neither_prefect_nor_spark_and_prints_the_flows_summary(
    ws: Workspace, env: dict[str, str]
) -> None:
    files_before, tables_before = tree_snapshot(ws.root / "landing"), _journal_tables(ws)

    probed = _python(_IMPORTS_PROBE, env, ws.root)
    assert probed.returncode == 0, probed.stderr[-3000:]
    report = json.loads(probed.stderr.strip().splitlines()[-1])
    assert report == {"exit_code": 0, "heavy_modules": []}
    cli_summary = json.loads(probed.stdout)

    # Nothing was written: no file, no journal row, no lock row.
    assert tree_snapshot(ws.root / "landing") == files_before
    assert _journal_tables(ws) == tables_before

    # The console script itself: exit 0, the text form of an idle run.
    text = subprocess.run(
        [SALES_ETL, "run"], env=env, cwd=ws.root, capture_output=True, text=True, timeout=300
    )
    assert text.returncode == 0, text.stderr
    assert "No files waiting in to_process/: nothing to do." in text.stdout
    assert text.stderr == ""

    # The flow's own idle run (ephemeral Prefect) returns the same summary, but for its run id
    # and its stage timings; a file dropped beside to_process/ is named in its log (a
    # deployment run has no CLI to say it).
    (ws.landing / "sales_dropped.csv").write_bytes(b"customer_id\n")
    flowed = _python(_FLOW, env, ws.root)
    assert flowed.returncode == 0, flowed.stderr[-3000:]
    assert re.search(
        r"WARNING .*1 file\(s\) at the top of the landing zone .* \(sales_dropped\.csv\) are "
        r"not read: a run takes only the files in to_process/",
        flowed.stdout + flowed.stderr,
    ), flowed.stderr[-3000:]
    flow_summary = json.loads(flowed.stdout.strip().splitlines()[-1])
    assert sorted(cli_summary) == sorted(flow_summary)
    volatile = ("run_id", "stage_seconds")
    assert {k: v for k, v in cli_summary.items() if k not in volatile} == {
        k: v for k, v in flow_summary.items() if k not in volatile
    }
    assert cli_summary["files_total"] == 0 and cli_summary["batch_id"] is None
    assert len(cli_summary["run_id"]) == 32 and cli_summary["run_id"] != flow_summary["run_id"]
    assert all(isinstance(v, float) for v in cli_summary["stage_seconds"].values())


# --- when the flow has work, the check says so ---------------------------------------------------


def _utc(hours: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)


def _dead_pid() -> int:
    """A pid that existed and has exited (its process was reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _run_row(status: str) -> dict[str, Any]:
    return {
        "run_id": "crashed-run",
        "batch_id": "20240101_000000",
        "status": status,
        "started_at": _utc(-1),
    }


def _lock_row(holder: str, expires_in_hours: float) -> dict[str, Any]:
    return {
        "name": "pipeline",
        "run_id": "other-run",
        "holder": holder,
        "expires_at": _utc(expires_in_hours),
    }


HERE = socket.gethostname()

CASES: dict[str, tuple[bool, str | None, dict[str, Any] | None, dict[str, Any] | None]] = {
    # name: (idle?, file waiting, etl_runs row, etl_lock row)
    "nothing at all": (True, None, None, None),
    "a finished run and a released lock": (
        True,
        None,
        {**_run_row("COMPLETED"), "finished_at": _utc(-0.5)},
        {"name": "pipeline", "run_id": None, "holder": None, "expires_at": None},
    ),
    "a file waiting": (False, "day.csv", None, None),
    "a file in a sub-folder of to_process": (False, "shop1/day.csv", None, None),
    # An upload in progress under a hidden name is never taken: it must not wake Prefect + Spark.
    "only a hidden upload in progress": (True, ".day.csv", None, None),
    "a run left STARTED": (False, None, _run_row("STARTED"), None),
    "a run left LOADED": (False, None, _run_row("LOADED"), None),
    "the lock held by a live process here": (
        False,
        None,
        None,
        _lock_row(f"{HERE}:{os.getpid()}", 1),
    ),
    "the lock held on another host": (False, None, None, _lock_row("elsewhere:1", 1)),
    "the lock of a dead process here": (True, None, None, None),  # row added in the test
    "an expired lock of another host": (True, None, None, _lock_row("elsewhere:1", -1)),
}


@pytest.fixture
def journal_tables(ws: Workspace) -> Iterator[Any]:
    from sqlalchemy import create_engine

    from sales_etl.db.schema import metadata

    engine = create_engine(ws.database_url)
    metadata.create_all(engine)  # init-db made them already; a no-op unless the schema grew
    yield engine
    engine.dispose()


@pytest.mark.parametrize("case", list(CASES))
def test_idle_only_when_the_flow_would_have_nothing_to_do(
    case: str, ws: Workspace, journal_tables: Any
) -> None:
    from sales_etl.db.schema import etl_lock, etl_runs
    from sales_etl.idle import idle_summary
    from sales_etl.settings import Settings

    idle, waiting, run_row, lock_row = CASES[case]
    if case == "the lock of a dead process here":
        lock_row = _lock_row(f"{HERE}:{_dead_pid()}", 1)
    if waiting:
        target = ws.landing / "to_process" / waiting
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"customer_id\n")
    with journal_tables.begin() as conn:
        if run_row:
            conn.execute(etl_runs.insert().values(**run_row))
        if lock_row:
            conn.execute(etl_lock.insert().values(**lock_row))
    tables_before = _journal_tables(ws)

    settings = Settings(landing=str(ws.landing), marts=str(ws.marts), database_url=ws.database_url)
    summary = idle_summary(settings)

    assert (summary is not None) is idle
    if summary is not None:
        assert summary["files_total"] == 0 and summary["batch_id"] is None
        assert summary["recovered_runs"] == [] and summary["files"] == []
    assert _journal_tables(ws) == tables_before  # read only


def test_a_fresh_database_without_journal_tables_is_idle(tmp_path: Path) -> None:
    """Before the first run no journal table exists: nothing to recover, nothing locked."""
    from sales_etl.idle import idle_summary
    from sales_etl.settings import Settings

    (tmp_path / "landing" / "to_process").mkdir(parents=True)
    db = tmp_path / "empty.db"
    settings = Settings(
        landing=str(tmp_path / "landing"),
        marts=str(tmp_path / "marts"),
        database_url=f"sqlite:///{db}",
    )
    summary = idle_summary(settings)
    assert summary is not None and summary["files_total"] == 0
    assert sql_rows(db, "SELECT name FROM sqlite_master") == []  # nothing was created


def test_a_run_while_another_holds_the_lock_is_refused_at_once_in_one_line(
    ws: Workspace, env: dict[str, str], journal_tables: Any
) -> None:
    """Two runs at once: the second says who runs, in one line and a hint, exit 2, before
    Prefect or Spark start (it used to retry for ~95 s, then print a traceback)."""
    from sales_etl.db.schema import etl_lock

    waiting = ws.landing / "to_process" / "day.csv"
    waiting.write_bytes(b"customer_id\n")
    with journal_tables.begin() as conn:  # held by this live test process, lease 6 h
        conn.execute(etl_lock.insert().values(**_lock_row(f"{HERE}:{os.getpid()}", 6)))
    files_before, tables_before = tree_snapshot(ws.root / "landing"), _journal_tables(ws)

    probed = _python(_IMPORTS_PROBE, env, ws.root)
    report = json.loads(probed.stderr.strip().splitlines()[-1])
    assert report == {"exit_code": 2, "heavy_modules": []}
    assert json.loads(probed.stdout)["error"].startswith(
        f"another run (other-run on {HERE}:{os.getpid()}) is in progress"
    )

    text = subprocess.run(
        [SALES_ETL, "run"], env=env, cwd=ws.root, capture_output=True, text=True, timeout=300
    )
    assert text.returncode == 2
    lines = text.stderr.strip().splitlines()
    assert len(lines) == 2, text.stderr
    assert lines[0] == (
        f"sales-etl run: another run (other-run on {HERE}:{os.getpid()}) is in progress: "
        "it holds the pipeline lock"
    )
    assert lines[1].startswith("hint: wait for it to finish, then run again")
    assert tree_snapshot(ws.root / "landing") == files_before  # the file still waits
    assert _journal_tables(ws) == tables_before
