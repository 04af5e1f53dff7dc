"""Issue #7, scale-out: the same flow on a Spark standalone cluster gives the same results.

One generated dataset (``sales_etl.generate``: 2 months, 3 sales files with extra columns and
~2 % corrupted rows, plus the generator's rejected-file examples) goes through ``sales-etl run
--json`` twice, on two identical copies of the input (same SQLite template with the
dimensions, same files): once with ``SALES_ETL_SPARK_MASTER=local[2]`` and once against the
session's standalone master (``spark_cluster``, tests/services.py). Each run is a subprocess:
one Python process holds one SparkContext. Both runs talk to one Prefect server for the module.

Then everything must be identical: the run summaries (row counts, quarantine reasons, top
performers, per-file outcomes), both reporting tables (every row, exact ``Decimal`` values),
the customer mart, the sales-team mart and the quarantine (every Parquet file read with pyarrow;
only ``batch_id``, which names the run, is dropped), the landing zone and the journal.

Proof the cluster did the work: the master lists a finished application "sales-etl", the
workers' work dir has its executor folders, and Spark's event log of the run (switched on through
``PYSPARK_SUBMIT_ARGS``, which the product's session builder does not touch) shows every task
ran on a cluster executor, none in the driver.

Issue 16 §1: a batch of ONE file is read by both workers' executors. The event log names the
stages that scan CSV (an RDD in the "Scan csv" scope) and the executor of each of their tasks;
``spark.sql.files.maxPartitionBytes`` is made small (again through ``PYSPARK_SUBMIT_ARGS``) so
that a small file makes several splits, as a multi-GB file does at the default 128 MiB.
"""

from __future__ import annotations

import json
import shlex
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from crash_helpers import (
    RunResult,
    diff_states,
    new_workspace,
    run_cli,
    workspace_state,
)
from harness import Workspace
from helpers import load_dimension_folder, read_table, wait_until
from services import SparkCluster

from sales_etl.generate import generate_dataset

pytestmark = pytest.mark.slow

MONTHS = ["2024-03", "2024-04"]
#: Summary fields that name the run or time it: the only ones allowed to differ.
RUN_SPECIFIC = {"run_id", "batch_id", "stage_seconds", "stage_details"}


def _dataset(
    root: Path, rows: int = 3000, files: int = 3, bad_files: bool = True
) -> tuple[Path, dict[str, bytes], dict[str, Any]]:
    """Generated dimensions loaded into a template SQLite; the files to drop; the counts."""
    data = generate_dataset(
        root / "generated",
        rows=rows,
        files=files,
        customers=80,
        stores=3,
        products=15,
        start="2024-03-01",
        months=2,
        seed=7,
        bad_row_fraction=0.02,
        extra_columns=True,
        bad_files=bad_files,
    )
    template = root / "template.db"
    load_dimension_folder(f"sqlite:///{template}", data["dimensions_dir"])
    files = {Path(p).name: Path(p).read_bytes() for p in data["sales_files"] + data["bad_files"]}
    return template, files, data["counts"]


def _run(
    ws: Workspace,
    env: dict[str, str],
    label: str,
    master: str,
    event_dir: Path,
    spark_conf: dict[str, str] | None = None,
) -> tuple[RunResult, dict[str, Any]]:
    """`sales-etl run --json` against ``master``, with Spark's event log in ``event_dir``
    (and ``spark_conf`` added to the session's configuration).

    The input is in local folders, so the s3a jars are not needed: an empty
    ``SALES_ETL_JARS_DIR`` keeps ``start_spark`` from shipping the ~0.7 GB AWS SDK bundle to
    the executor through ``spark.jars`` (measured: a few seconds and 659 MB copied into the
    worker's work dir per run). ``PYSPARK_PYTHON=/bin/false``: executors must never need a
    Python worker (docs/scale-out.md), so any Python RDD or UDF fails the run.
    """
    event_dir.mkdir(parents=True)
    no_jars = event_dir.parent / "no-jars"
    no_jars.mkdir(exist_ok=True)
    conf = {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": event_dir.as_uri(),
        "spark.eventLog.compress": "false",  # one plain JSON-lines file per application
        "spark.eventLog.rolling.enabled": "false",
        **(spark_conf or {}),
    }
    submit = " ".join(f"--conf {shlex.quote(f'{k}={v}')}" for k, v in conf.items())
    extra = {
        "SALES_ETL_SPARK_MASTER": master,
        "SALES_ETL_JARS_DIR": str(no_jars),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": "/bin/false",
        "PYSPARK_SUBMIT_ARGS": f"{submit} pyspark-shell",  # pyspark splits it with shlex
    }
    result = run_cli(["run", "--json"], ws, env, label=label, extra_env=extra, separate_stdout=True)
    assert result.returncode == 0, f"{label} run failed:\n{result.tail()}"
    assert result.stdout is not None
    return result, json.loads(result.stdout.read_text())


def _task_executors(event_dir: Path) -> tuple[str, list[str]]:
    """Application id and the executor id of every finished task, from the run's event log."""
    (log,) = [p for p in event_dir.iterdir() if p.is_file() and not p.name.startswith(".")]
    app_id, executors = "", []
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if event["Event"] == "SparkListenerApplicationStart":
            app_id = event.get("App ID", "")
        elif event["Event"] == "SparkListenerTaskEnd":
            executors.append(event["Task Info"]["Executor ID"])
    return app_id, executors


def _csv_scan_executors(event_dir: Path) -> dict[int, list[str]]:
    """Stage id -> the executor id of each finished task, for the stages that scan CSV files
    (an RDD of the stage is in Spark's "Scan csv" plan scope), from the run's event log."""
    (log,) = [p for p in event_dir.iterdir() if p.is_file() and not p.name.startswith(".")]
    scans: set[int] = set()
    executors: dict[int, list[str]] = defaultdict(list)
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if event["Event"] == "SparkListenerStageSubmitted":
            info = event["Stage Info"]
            scopes = [json.loads(r["Scope"])["name"] for r in info["RDD Info"] if r.get("Scope")]
            if any(name.startswith("Scan csv") for name in scopes):
                scans.add(info["Stage ID"])
        elif event["Event"] == "SparkListenerTaskEnd":
            executors[event["Stage ID"]].append(event["Task Info"]["Executor ID"])
    return {stage: executors[stage] for stage in sorted(scans)}


def _comparable(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k not in RUN_SPECIFIC}


def _tables(ws: Workspace) -> dict[str, list[dict[str, Any]]]:
    url = f"sqlite:///{ws.db}"
    return {
        "customer_monthly_purchase": read_table(
            url, "customer_monthly_purchase", ["year", "month", "customer_id"]
        ),
        "sales_team_incentive": read_table(
            url, "sales_team_incentive", ["year", "month", "sales_person_id"]
        ),
    }


def test_cluster_run_equals_local_run(
    spark_cluster: SparkCluster,
    cli_env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    template, files, counts = _dataset(tmp_path)
    local_ws = new_workspace(tmp_path / "local", template)
    cluster_ws = new_workspace(tmp_path / "cluster", template)
    local_ws.drop(files)
    cluster_ws.drop(files)

    local, local_summary = _run(
        local_ws, cli_env, "local[2]", "local[2]", tmp_path / "events-local"
    )
    before = {app["id"] for app in spark_cluster.state()["completedapps"]}
    cluster, cluster_summary = _run(
        cluster_ws, cli_env, "cluster", spark_cluster.master_url, tmp_path / "events-cluster"
    )

    # --- the cluster really ran the work -------------------------------------------------------
    app_id, cluster_tasks = _task_executors(tmp_path / "events-cluster")

    def finished_apps() -> list[tuple[str, str, str]]:
        apps = spark_cluster.state()["completedapps"]
        return [(a["id"], a["name"], a["state"]) for a in apps if a["id"] not in before]

    # The master marks the application finished some time after its driver has left.
    finished = wait_until(
        finished_apps,
        lambda apps: apps == [(app_id, "sales-etl", "FINISHED")],
        timeout=60,
        describe=f"application {app_id} (sales-etl) FINISHED on the master",
        context=spark_cluster.logs,
    )
    assert finished == [(app_id, "sales-etl", "FINISHED")], (
        f"master state: {spark_cluster.state()}\n{spark_cluster.logs()}"
    )
    executor_dirs = sorted(p.name for p in (spark_cluster.work_dir / app_id).iterdir())
    assert executor_dirs, f"no executor ran for {app_id} on the worker"
    assert cluster_tasks, "the cluster run's event log has no finished task"
    assert set(cluster_tasks) <= set(executor_dirs), (
        f"tasks ran on {sorted(set(cluster_tasks))}, the worker hosted executors {executor_dirs}"
    )
    local_app, local_tasks = _task_executors(tmp_path / "events-local")
    assert local_app.startswith("local-") and set(local_tasks) == {"driver"}

    # --- the same results ----------------------------------------------------------------------
    assert _comparable(cluster_summary) == _comparable(local_summary)
    summary = local_summary
    assert summary["rows_total"] == counts["rows"] == 3000
    assert summary["rows_quarantined"] >= counts["bad_rows"] > 0
    assert summary["rows_loaded"] + summary["rows_quarantined"] == summary["rows_total"]
    assert len(summary["quarantine_reasons"]) >= 3
    assert summary["months_recomputed"] == MONTHS
    assert summary["top_performers"]
    assert summary["files_accepted"] == counts["files"] + 1  # + the header-only example
    assert summary["files_rejected"] == len(files) - summary["files_accepted"]

    local_tables, cluster_tables = _tables(local_ws), _tables(cluster_ws)
    assert cluster_tables == local_tables
    purchases = local_tables["customer_monthly_purchase"]
    incentives = local_tables["sales_team_incentive"]
    assert purchases and incentives
    assert all(type(r["monthly_total"]) is Decimal for r in purchases)
    assert all(type(r["incentive"]) is Decimal for r in incentives)
    assert sum(r["incentive"] > 0 for r in incentives) >= len(MONTHS)

    local_state, cluster_state = workspace_state(local_ws), workspace_state(cluster_ws)
    assert cluster_state == local_state, diff_states(cluster_state, local_state)
    assert len(local_state["mart:customer_data_mart"]) == summary["rows_loaded"]
    assert len(local_state["mart:sales_team_data_mart"]) == summary["rows_loaded"]
    assert len(local_state["mart:quarantine"]) == summary["rows_quarantined"]

    with capsys.disabled():
        print(
            f"\nsales-etl run --json: local[2] {local.seconds:.1f} s, "
            f"standalone cluster {cluster.seconds:.1f} s "
            f"({len(local_tasks)} / {len(cluster_tasks)} Spark tasks)"
        )


def test_one_file_is_read_by_both_workers(
    spark_cluster: SparkCluster, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """Issue 16 §1: one 6,000-row file (~0.4 MB) in 32 KiB splits: its CSV scan runs on the
    executors of both workers, and the rows are all there."""
    template, files, counts = _dataset(tmp_path, rows=6000, files=1, bad_files=False)
    ((name, data),) = files.items()
    ws = new_workspace(tmp_path / "one-file", template)
    ws.drop(files)
    split_bytes = 32 * 1024
    conf = {
        "spark.sql.files.maxPartitionBytes": str(split_bytes),
        # Start the first job only once both executors have registered (the default is to
        # start as soon as one has), so that the scan's tasks have both to go to.
        "spark.scheduler.minRegisteredResourcesRatio": "1.0",
    }
    _, summary = _run(ws, cli_env, "one file", spark_cluster.master_url, tmp_path / "events", conf)
    assert summary["rows_total"] == counts["rows"] == 6000
    (entry,) = [f for f in summary["files"] if f["file"].endswith(name)]
    assert entry["spark_read"] == "split by line"

    scans = _csv_scan_executors(tmp_path / "events")
    assert scans, "no stage of the run scanned CSV"
    splits = -(-len(data) // split_bytes)
    (classify,) = [tasks for tasks in scans.values() if len(tasks) == splits]
    assert set(classify) == {"0", "1"}, f"the scan's {splits} tasks ran on {classify}"
