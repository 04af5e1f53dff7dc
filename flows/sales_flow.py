"""The nightly sales ETL flow: orchestration only, every step is a task in ``tasks/``.

Order matters for exactly-once (docs/architecture.md): nothing is archived before the reporting
tables and the run's LOADED mark are committed together, and every run first finishes or undoes
whatever an interrupted run left behind.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from sqlalchemy import Engine

from sales_etl.artifacts import publish_failure_artifacts, publish_run_artifacts
from sales_etl.db.engine import make_engine
from sales_etl.file_fate import FileFate
from sales_etl.journal import stray_files_warning
from sales_etl.settings import Settings
from sales_etl.spark import start_spark, start_spark_in_background, stop_spark
from sales_etl.storage import open_store
from sales_etl.summary import MARTS_STAGE, REPORTING_STAGE, build_summary
from sales_etl.tasks.files import (
    apply_spark_outcome,
    archive_accepted_files,
    claim_incoming_files,
    files_left_waiting,
    hold_files,
    list_incoming_files,
    open_run,
    route_rejected_files,
    validate_claimed_files,
)
from sales_etl.tasks.marts import build_marts, publish_marts
from sales_etl.tasks.preflight import preflight
from sales_etl.tasks.recovery import recover_interrupted_runs, roll_back_run
from sales_etl.tasks.replay import count_replayable
from sales_etl.tasks.reporting import load_reporting_tables
from sales_etl.tasks.staging import (
    commit_empty_batch,
    finish_run,
    open_pipeline,
    record_file_rows,
    release_lock,
)
from sales_etl.termination import fails_on_sigterm
from sales_etl.timing import StageClock


@flow(name="sales-etl", log_prints=False)
@fails_on_sigterm  # an outside SIGTERM (docker stop) rolls back and ends Failed, not Crashed
def sales_etl_flow(
    landing: str | None = None,
    marts: str | None = None,
    database_url: str | None = None,
    spark_master: str | None = None,
    incentive_scope: str | None = None,
    max_bad_row_fraction: float | None = None,
) -> dict[str, Any]:
    """Process every file waiting in ``<landing>/to_process/`` once; returns the run summary.

    Parameters left empty fall back to ``SALES_ETL_*`` settings. Pass credentials through the
    environment or Prefect blocks, not parameters: parameters are visible in the UI.

    Raises:
        ConfigError: a setting is invalid or the ``preflight`` task found something to fix
            (nothing moved; the failure report is still published). Any other exception after
            the batch opened: the batch is rolled back unless its load committed; the exception
            carries ``sales_etl_failure`` (batch id, rolled back or not) for the CLI.
    """
    logger = get_run_logger()
    run_id = uuid.uuid4().hex
    clock = StageClock()
    settings: Settings | None = None
    try:
        settings = Settings().with_overrides(
            landing=landing,
            marts=marts,
            database_url=database_url,
            spark_master=spark_master,
            incentive_scope=incentive_scope,
            max_bad_row_fraction=max_bad_row_fraction,
        )
        with clock.stage("preflight"):  # before any file moves and before Spark starts
            preflight(settings)
        with clock.stage("open pipeline"):
            open_pipeline(settings, run_id)
        engine = make_engine(settings.database_url)
        # Keep one pooled connection for the journal: if the database later refuses new
        # connections (max_connections, a failover in progress), the failure handler can
        # still roll the batch back and mark its files FAILED over this one.
        with engine.connect():
            pass
    except Exception as exc:
        # Failed before a batch was opened (bad setting, preflight, lock held): nothing was
        # moved, but the run still leaves its report in the UI.
        _mark_failure(exc, batch_id=None, rolled_back=None)
        publish_failure_artifacts(settings, exc, batch_id=None)
        raise
    batch_id: str | None = None
    fates: list[FileFate] = []
    try:
        with clock.stage("recover interrupted runs"):
            recovered = recover_interrupted_runs(settings)
        with clock.stage("list files"):
            listed = list_incoming_files(settings)
        if listed:
            start_spark_in_background(settings)  # the JVM starts while files are validated
        if not listed:
            logger.info("nothing to do")
            stray = stray_files_warning(open_store(settings.landing))
            if stray:
                logger.warning(stray)
            summary = build_summary(
                run_id=run_id,
                batch_id=None,
                files=[],
                stats=None,
                reporting=None,
                recovered=recovered,
                stage_seconds=dict(clock.seconds),
            )
            publish_run_artifacts(summary, settings)  # the run's report in the UI
            return summary.to_json()
        with clock.stage("claim files"):
            batch_id = open_run(settings, run_id, _flow_run_id())
            claimed = claim_incoming_files(settings, run_id, batch_id, listed)
        with clock.stage("validate files"):
            fates = validate_claimed_files(settings, run_id, batch_id)
        with clock.stage("route rejected files"):
            route_rejected_files(settings, run_id)
        accepted_fates = [f for f in fates if f.accepted]
        accepted = [(f.key, f.header or []) for f in accepted_fates]
        line_fields = {f.key: f.max_line_fields for f in accepted_fates}
        splittable = [f.key for f in accepted_fates if f.splittable]
        stats = reporting = replayable = watermark = None
        if accepted:
            try:
                with clock.stage("spark start"):
                    start_spark(settings)
                with clock.stage(MARTS_STAGE):
                    stats = build_marts(settings, batch_id, accepted, line_fields, splittable)
                if stats.held:  # too many bad rows, or Spark failed on it: out, whole
                    with clock.stage("hold files"):
                        hold_files(settings, run_id, batch_id, stats.held)
                fates = apply_spark_outcome(fates, stats)
                with clock.stage("record rows, publish marts"):
                    record_file_rows(settings, run_id, stats.per_file)
                    publish_marts(settings, batch_id)
                if stats.months:
                    with clock.stage(REPORTING_STAGE):
                        reporting = load_reporting_tables(settings, run_id, batch_id, stats.months)
                with clock.stage("count replayable rows"):
                    replayable, watermark = count_replayable(settings, batch_id)
            finally:
                with clock.stage("spark stop"):
                    stop_spark()
        with clock.stage("archive"):
            if not (stats and stats.months):
                commit_empty_batch(settings, run_id)
            archive_accepted_files(settings, run_id)
            left = files_left_waiting(settings, listed, claimed)
        summary = build_summary(
            run_id=run_id,
            batch_id=batch_id,
            files=fates,
            left_waiting=left,
            stats=stats,
            reporting=reporting,
            recovered=recovered,
            stage_seconds=dict(clock.seconds),
            replayable_rows=replayable,
            replayable_watermark=watermark,
        )
        finish_run(settings, run_id, batch_id, summary.to_json())
        publish_run_artifacts(summary, settings)  # the run's report in the UI
        return summary.to_json()  # what etl_runs.summary stores, JSON-ready
    except BaseException as exc:
        rolled_back = None
        if batch_id is not None:
            rolled_back = _undo_uncommitted(settings, engine, run_id, batch_id, exc)
        if isinstance(exc, Exception):  # not on cancellation / interpreter exit
            _mark_failure(exc, batch_id=batch_id, rolled_back=rolled_back)
            publish_failure_artifacts(settings, exc, batch_id=batch_id, files=fates)
        raise
    finally:
        stop_spark()  # no-op unless a failure came between the background start and the marts
        release_lock(engine, run_id)
        engine.dispose()


def _undo_uncommitted(
    settings: Settings, engine: Engine, run_id: str, batch_id: str, exc: BaseException
) -> bool | None:
    """After a failure: roll back a run whose load did not commit, so a retry starts clean.

    Returns True when the batch was rolled back now, False when its load had committed (the
    next run finishes the archive moves), None when the rollback itself failed (the database is
    still down): then the next run's recovery does it.
    """
    try:
        return roll_back_run(
            settings, engine, run_id, batch_id, f"{type(exc).__name__}: {str(exc)[:1000]}"
        )
    except Exception as cleanup_error:
        get_run_logger().error(
            "could not roll back batch %s now (%s); the next run will",
            batch_id,
            type(cleanup_error).__name__,
        )
        return None


#: Attribute a failed run sets on its exception, read by ``sales-etl run --json``.
FAILURE_ATTRIBUTE = "sales_etl_failure"


def _mark_failure(exc: BaseException, *, batch_id: str | None, rolled_back: bool | None) -> None:
    """Note on ``exc`` what happened to the batch (the CLI reports it; Prefect re-raises the
    same exception object in the calling process)."""
    if batch_id is None:
        outcome = "failed before it opened a batch: no file was moved"
    elif rolled_back:
        outcome = "batch rolled back: its accepted files stay in to_process/"
    elif rolled_back is False:
        outcome = "batch committed; the next run finishes archiving its files"
    else:
        outcome = "batch not rolled back yet (database unreachable): the next run does it"
    with contextlib.suppress(AttributeError, TypeError):  # some built-in exceptions refuse
        setattr(
            exc,
            FAILURE_ATTRIBUTE,
            {"batch_id": batch_id, "rolled_back": rolled_back, "outcome": outcome},
        )


def _flow_run_id() -> str | None:
    run = flow_run.get_id()
    return str(run) if run else None
