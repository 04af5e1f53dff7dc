"""A replay killed at any instant, then rerun, equals one clean replay (issue 15, acceptance 2).

The real ``sales-etl replay`` CLI in subprocesses (local folders + SQLite), SIGKILLed at each
of the replay's stage boundaries (``SALES_ETL_CRASH_AT``, sales_etl/faults.py) and at seeded
random instants, then rerun. Every workspace starts as a copy of one template: a nightly run
quarantined the rows of customer 99, store 3 and sales person 99, then those dimension rows
were loaded. The end state (reporting tables, every mart row without its batch id, the landing
zone, the journal, the quarantine ledger without batch ids and times) must equal that of one
clean replay, and conservation (input rows = mart rows + quarantine rows not replayed) holds
after the kill and after the rerun. Everything is read from the outside (sqlite3, pyarrow).

The Prefect server, the JVM class archive and the timing table are the module fixtures of
tests/crash_fixtures.py (a pytest plugin), shared with test_crash_recovery.py.
"""

from __future__ import annotations

import random
import signal
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from crash_fixtures import Timing
from crash_helpers import (
    ALL_FILES,
    DIMENSIONS,
    KillAt,
    RunResult,
    clone_workspace,
    diff_states,
    journal,
    log_offsets,
    mart_rows,
    run_cli,
    workspace_state,
)
from harness import Workspace

from sales_etl.faults import CRASH_POINTS, REPLAY_CRASH_POINTS

pytestmark = pytest.mark.slow

SIGKILLED = -signal.SIGKILL
#: The points a replay passes, in order (docs/architecture.md "Replaying quarantined rows").
REPLAY_POINTS = (
    "after_replay_opened",
    "after_marts_written",
    "during_marts_publish",
    "after_marts_published",
    "after_db_load",
    "before_staging_complete",
)
COMMITTED = {"after_db_load", "before_staging_complete"}
RANDOM_SEED = 20240415
RANDOM_KILLS = 2

#: The dimension rows that arrive late: the quarantined rows of BATCH_1 pointing at them.
LATE_ROWS = {
    "customer.csv": "99,Late,Comer,1 New Rd,560099,9000000099,2024-03-10\n",
    "store.csv": "3,3 Late Sq,560030,Priya,2024-04-01,\n",
    "sales_team.csv": "99,Neha,Late,20,N,9 Pine St,560099,2024-04-01\n",
}
REPLAYABLE = 3  # customer 99 (March), store 3 and sales person 99 (April)


def _dimension_folder(root: Path, late: bool) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in DIMENSIONS.items():
        (root / name).write_text(text + (LATE_ROWS.get(name, "") if late else ""))
    return root


def _input_rows() -> int:
    return sum(data.count(b"\n") - 1 for name, data in ALL_FILES.items() if name.endswith(".csv"))


def ledger_rows(db: Path) -> list[tuple[Any, ...]]:
    """The quarantine ledger without batch ids and times (they differ between workspaces)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return sorted(
            conn.execute(
                "SELECT row_id, origin_batch_id IS NOT NULL, source_file, status, reason "
                "FROM quarantine_ledger"
            ).fetchall()
        )
    finally:
        conn.close()


def replayed_count(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(
            "SELECT COUNT(*) FROM quarantine_ledger l JOIN etl_runs r "
            "ON r.batch_id = l.replay_batch_id "
            "WHERE l.status = 'REPLAYED' AND r.status IN ('LOADED', 'COMPLETED')"
        ).fetchone()[0]
    finally:
        conn.close()


def committed_mart_rows(ws: Workspace, mart: str) -> int:
    """Rows of the mart's files whose batch committed (an uncommitted batch is rolled back)."""
    conn = sqlite3.connect(f"file:{ws.db}?mode=ro", uri=True)
    try:
        committed = {
            b
            for (b,) in conn.execute(
                "SELECT batch_id FROM etl_runs WHERE status IN ('LOADED', 'COMPLETED')"
            )
        }
    finally:
        conn.close()
    import pyarrow.parquet as pq

    return sum(
        pq.read_metadata(path).num_rows
        for path in (ws.marts / mart).rglob("*.parquet")
        if path.name.split("-", 1)[0] in committed
    )


def assert_conservation(ws: Workspace) -> None:
    """input rows = committed mart rows + quarantine rows not replayed (both marts)."""
    quarantine = len(mart_rows(ws.marts / "quarantine"))
    replayed = replayed_count(ws.db)
    for mart in ("customer_data_mart", "sales_team_data_mart"):
        loaded = committed_mart_rows(ws, mart)
        assert loaded + quarantine - replayed == _input_rows(), (mart, loaded, quarantine)


def full_state(ws: Workspace) -> dict[str, Any]:
    return {**workspace_state(ws), "quarantine_ledger": ledger_rows(ws.db)}


@dataclass
class Template:
    ws: Workspace
    env: dict[str, str]


@pytest.fixture(scope="module")
def template(
    tmp_path_factory: pytest.TempPathFactory, spark_env: dict, timings: list[Timing]
) -> Template:
    """Early dimensions, one nightly run over every file (no file held: the replay needs the
    quarantine), then the late dimension rows loaded."""
    root = tmp_path_factory.mktemp("replay-template")
    ws = Workspace(root / "ws").create()
    env = {**spark_env, "SALES_ETL_MAX_BAD_ROW_FRACTION": "1.0"}
    steps = [
        (["load-dimensions", str(_dimension_folder(root / "early", False))], "early dims"),
        (["run"], "nightly run"),
        (["load-dimensions", str(_dimension_folder(root / "late", True))], "late dims"),
    ]
    for args, label in steps:
        if args == ["run"]:
            ws.drop(ALL_FILES)
        result = run_cli(args, ws, env, label=f"template: {label}")
        timings.append(Timing(f"replay template: {label}", result.seconds, result.returncode))
        assert result.returncode == 0, result.tail()
    assert_conservation(ws)
    return Template(ws, env)


def replay(
    ws: Workspace,
    template: Template,
    timings: list[Timing],
    label: str,
    *,
    crash_at: str | None = None,
    kill: KillAt | None = None,
) -> RunResult:
    extra = {"SALES_ETL_CRASH_AT": crash_at} if crash_at else None
    result = run_cli(["replay"], ws, template.env, label=label, extra_env=extra, kill=kill)
    note = f"killed at {result.killed_at:.1f} s" if result.killed_at is not None else ""
    timings.append(Timing(label, result.seconds, result.returncode, note))
    return result


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, template: Template, timings: list[Timing]
) -> tuple[dict[str, Any], RunResult]:
    """One clean replay of a copy of the template."""
    ws = clone_workspace(template.ws, tmp_path_factory.mktemp("replay-reference") / "ws")
    before = full_state(ws)
    result = replay(ws, template, timings, "replay reference: clean")
    assert result.returncode == 0, result.tail()
    state = full_state(ws)
    # The reference itself must be right: exactly the late rows loaded, once.
    for mart in ("mart:customer_data_mart", "mart:sales_team_data_mart"):
        assert len(state[mart]) == len(before[mart]) + REPLAYABLE
    assert [r[3] for r in state["quarantine_ledger"]].count("REPLAYED") == REPLAYABLE
    assert state["mart:quarantine"] == before["mart:quarantine"]  # never rewritten
    assert state["customer_monthly_purchase"] != before["customer_monthly_purchase"]
    assert not state["open_runs"]
    assert_conservation(ws)
    return state, result


def _rerun_equals_reference(
    ws: Workspace, template: Template, timings: list[Timing], label: str, reference
) -> None:
    assert_conservation(ws)
    rerun = replay(ws, template, timings, f"{label}: rerun")
    assert rerun.returncode == 0, rerun.tail()
    state = full_state(ws)
    assert state == reference[0], "differs from one clean replay:\n" + diff_states(
        state, reference[0]
    )
    assert_conservation(ws)


def test_the_replay_points_are_crash_points() -> None:
    assert set(REPLAY_POINTS) <= set(CRASH_POINTS) | set(REPLAY_CRASH_POINTS)


@pytest.mark.parametrize("point", REPLAY_POINTS)
def test_replay_sigkilled_at_a_stage_boundary_then_rerun_equals_one_clean_replay(
    point: str, tmp_path: Path, template: Template, reference, timings: list[Timing]
) -> None:
    ws = clone_workspace(template.ws, tmp_path / "ws")
    label = f"replay crash at {point}"
    killed = replay(ws, template, timings, label, crash_at=point)
    assert killed.returncode == SIGKILLED, killed.tail()
    open_runs = journal(ws.db)["open_runs"]
    assert [status for _run, status in open_runs] == ["LOADED" if point in COMMITTED else "STARTED"]
    _rerun_equals_reference(ws, template, timings, label, reference)


@pytest.mark.parametrize("number", range(RANDOM_KILLS))
def test_replay_sigkilled_at_a_random_instant_then_rerun_equals_one_clean_replay(
    number: int, tmp_path: Path, template: Template, reference, timings: list[Timing]
) -> None:
    start, end = r"Beginning flow run", r"Flow run '[^']+' - Finished"
    begin, finish = log_offsets(reference[1], start), log_offsets(reference[1], end)
    assert begin and finish, "the reference log lacks the flow's start or end"
    rng = random.Random(RANDOM_SEED + number)
    kill = KillAt(delay=round((finish[0] - begin[0]) * rng.uniform(0.05, 0.95), 2), anchor=start)
    ws = clone_workspace(template.ws, tmp_path / "ws")
    label = f"replay random kill +{kill.delay:.2f} s"
    killed = replay(ws, template, timings, label, kill=kill)
    assert killed.returncode in (SIGKILLED, 0), killed.tail()
    _rerun_equals_reference(ws, template, timings, label, reference)


# --- the same on S3 + MariaDB ---------------------------------------------------------------------

#: One point before the commit (rolled back by the rerun), one after (completed by it).
S3_POINTS = ("after_marts_published", "after_db_load")


def _s3_state(client, bucket: str, database_url: str) -> dict[str, Any]:
    """Tables, mart rows (without batch ids), landing keys (batch folders as ``<batch>``), the
    ledger without batch ids and times, and the open runs, read with boto3/pyarrow/SQLAlchemy."""
    import io
    import re

    import pyarrow.parquet as pq
    from helpers import read_table

    def keys(prefix: str) -> list[str]:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    committed = {
        r["batch_id"]
        for r in read_table(database_url, "etl_runs")
        if r["status"] in ("LOADED", "COMPLETED")
    }
    state: dict[str, Any] = {}
    committed_rows: dict[str, int] = {}
    for mart in ("customer_data_mart", "sales_team_data_mart", "quarantine"):
        rows = []
        committed_rows[mart] = 0
        for key in keys(f"marts/{mart}/"):
            if not key.endswith(".parquet"):
                continue
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            parts = dict(p.split("=", 1) for p in key.split("/")[2:-1])
            records = pq.read_table(io.BytesIO(body)).to_pylist()
            if key.rsplit("/", 1)[-1].split("-", 1)[0] in committed:
                committed_rows[mart] += len(records)
            for record in records:
                record.pop("batch_id", None)
                rows.append(tuple(sorted({**record, **parts}.items(), key=lambda kv: kv[0])))
        state[f"mart:{mart}"] = sorted(rows, key=repr)
    state["landing"] = [re.sub(r"/[0-9]{8}_[0-9]{6}/", "/<batch>/", k) for k in keys("landing/")]
    state["marts_scratch"] = keys("marts/_incoming/")
    for table in ("customer_monthly_purchase", "sales_team_incentive"):
        state[table] = sorted(tuple(sorted(r.items())) for r in read_table(database_url, table))
    # Without row_id here: it hashes the origin batch id, and each scenario has its own nightly
    # run (the local tests, cloned from one template, compare row ids too).
    entries = read_table(database_url, "quarantine_ledger")
    assert len({r["row_id"] for r in entries}) == len(entries)
    state["quarantine_ledger"] = sorted(
        (r["source_file"], r["status"], r["reason"] or "") for r in entries
    )
    state["open_runs"] = [
        r["status"]
        for r in read_table(database_url, "etl_runs")
        if r["status"] in ("STARTED", "LOADED")
    ]
    replayed = sum(1 for r in state["quarantine_ledger"] if r[1] == "REPLAYED")
    # conservation over committed batches (an uncommitted one is rolled back by the next run)
    for mart in ("customer_data_mart", "sales_team_data_mart"):
        loaded, quarantined = committed_rows[mart], committed_rows["quarantine"]
        assert loaded + quarantined - replayed == _input_rows(), (mart, loaded, quarantined)
    return state


def test_replay_on_s3_and_mariadb_sigkilled_then_rerun_equals_one_clean_replay(
    tmp_path: Path,
    moto_server,
    mariadb,
    spark_env: dict,
    timings: list[Timing],
) -> None:
    from helpers import load_dimension_folder

    client = moto_server.client()
    aws = {
        "AWS_ACCESS_KEY_ID": moto_server.access_key,
        "AWS_SECRET_ACCESS_KEY": moto_server.secret_key,
        "AWS_REGION": moto_server.region,
        "AWS_DEFAULT_REGION": moto_server.region,
        "AWS_ENDPOINT_URL_S3": moto_server.endpoint,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    early = _dimension_folder(tmp_path / "early", False)
    late = _dimension_folder(tmp_path / "late", True)
    states = {}
    for crash_at in (None, *S3_POINTS):
        label = f"s3+mariadb {crash_at or 'clean'}"
        bucket = f"replay-{len(states)}-{abs(hash(str(tmp_path))) % 10**8}"
        client.create_bucket(Bucket=bucket)
        url = mariadb.new_database("replay")
        load_dimension_folder(url, early)
        for name, data in ALL_FILES.items():
            client.put_object(Bucket=bucket, Key=f"landing/to_process/{name}", Body=data)
        ws = Workspace(tmp_path / label.replace(" ", "-"))
        ws.root.mkdir()
        env = {
            **spark_env,
            **aws,
            "SALES_ETL_MAX_BAD_ROW_FRACTION": "1.0",
            "SALES_ETL_LANDING": f"s3://{bucket}/landing",
            "SALES_ETL_MARTS": f"s3://{bucket}/marts",
            "SALES_ETL_DATABASE_URL": url,
        }
        nightly = run_cli(["run"], ws, {}, label=f"{label}: nightly", extra_env=env)
        timings.append(Timing(f"{label}: nightly", nightly.seconds, nightly.returncode))
        assert nightly.returncode == 0, nightly.tail()
        load_dimension_folder(url, late)
        if crash_at:
            crash_env = {**env, "SALES_ETL_CRASH_AT": crash_at}
            killed = run_cli(["replay"], ws, {}, label=f"{label}: killed", extra_env=crash_env)
            timings.append(Timing(f"{label}: killed replay", killed.seconds, killed.returncode))
            assert killed.returncode == SIGKILLED, killed.tail()
            expected_open = ["LOADED" if crash_at in COMMITTED else "STARTED"]
            assert _s3_state(client, bucket, url)["open_runs"] == expected_open
        result = run_cli(["replay"], ws, {}, label=f"{label}: replay", extra_env=env)
        timings.append(Timing(f"{label}: replay", result.seconds, result.returncode))
        assert result.returncode == 0, result.tail()
        states[crash_at] = _s3_state(client, bucket, url)
    clean = states[None]
    assert len(clean["quarantine_ledger"]) >= REPLAYABLE
    assert [r[1] for r in clean["quarantine_ledger"]].count("REPLAYED") == REPLAYABLE
    assert clean["open_runs"] == [] and clean["marts_scratch"] == []
    for point in S3_POINTS:
        assert states[point] == clean, f"S3 + MariaDB, killed at {point}: differs"
