"""The ``sales-etl-replay`` flow: load the quarantined rows that pass today's dimension tables
and row rules, exactly once (issue 15; docs/architecture.md "Replaying quarantined rows").

A replay is a journal run of kind ``replay``: the nightly run's lock, recovery, rollback and
commit protocol, and the nightly run's tasks wherever the step is the same.
"""

from __future__ import annotations

import uuid
from typing import Any

from prefect import flow, get_run_logger

from sales_etl.artifacts import publish_replay_artifacts
from sales_etl.db.engine import make_engine
from sales_etl.db.schema import KIND_REPLAY
from sales_etl.faults import crash_point
from sales_etl.flows.sales_flow import _flow_run_id, _mark_failure, _undo_uncommitted
from sales_etl.idle import refuse_when_run_in_progress
from sales_etl.settings import Settings
from sales_etl.spark import start_spark, stop_spark
from sales_etl.tasks.files import open_run
from sales_etl.tasks.marts import publish_marts
from sales_etl.tasks.preflight import preflight
from sales_etl.tasks.recovery import recover_interrupted_runs
from sales_etl.tasks.replay import (
    ReplaySelection,
    ReplaySummary,
    commit_replay,
    judge_replay,
    refuse_unknown_batch,
    replay_dry_run,
    write_replay,
)
from sales_etl.tasks.staging import finish_run, open_pipeline, release_lock
from sales_etl.termination import fails_on_sigterm
from sales_etl.timing import StageClock


@flow(name="sales-etl-replay", log_prints=False)
@fails_on_sigterm
def sales_etl_replay_flow(
    reason: list[str] | None = None,
    source_file: str | None = None,
    batch: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Replay the selected quarantined rows once; returns the replay summary.

    ``reason``: reason codes (a row is selected when its current reason names one);
    ``source_file``: a glob on the landing key or file name; ``batch``: the nightly batch that
    quarantined the rows; ``dry_run``: report what would load, take no lock, write nothing
    (refused while a run holds the lock).
    Settings come from the ``SALES_ETL_*`` environment (never parameters: they show in the UI).

    Summary: ``kind`` ("replay"), ``batch_id`` (None when nothing changed), ``dry_run``,
    ``rows_judged``, ``rows_loaded`` (``rows_loadable`` for a dry run), ``rows_still_failing``,
    ``reasons_updated``, ``loadable_by_reason``, ``still_failing_by_reason``, ``months``,
    ``total_cost_by_month``, ``recovered``, ``reporting`` and, for a dry run, ``months_effect``.

    Raises:
        ConfigError: an unknown reason code, a malformed batch id or one the quarantine does
            not hold, or what ``preflight`` found.
        Any other exception after the replay opened its batch: the batch is rolled back unless
        its commit went through (then the next run or replay completes it).
    """
    logger = get_run_logger()
    selection = ReplaySelection(tuple(reason or ()), source_file, batch)
    selection.check()
    settings = Settings()
    clock = StageClock()
    preflight(settings)
    refuse_unknown_batch(settings, selection)
    if dry_run:
        # A dry run takes no lock (it writes nothing, the lock row included) but does not read
        # the marts while a run is publishing them: it refuses like a second run would.
        refuse_when_run_in_progress(settings)
        try:
            start_spark(settings, "sales-etl-replay")
            data = replay_dry_run(settings, selection).to_json()
        finally:
            stop_spark()
        publish_replay_artifacts(data)
        return data
    run_id = uuid.uuid4().hex
    open_pipeline(settings, run_id)
    engine = make_engine(settings.database_url)
    with engine.connect():  # one pooled connection for the rollback (see sales_flow)
        pass
    batch_id: str | None = None
    try:
        with clock.stage("recover interrupted runs"):
            recovered = recover_interrupted_runs(settings)
        with clock.stage("spark start"):
            start_spark(settings, "sales-etl-replay")
        with clock.stage("judge quarantine"):
            plan = judge_replay(settings, selection)
        if not plan.has_work:
            logger.info("replay: nothing to load and no reason changed; no batch opened")
            data = ReplaySummary(
                plan, recovered=recovered, stage_seconds=dict(clock.seconds)
            ).to_json()
            publish_replay_artifacts(data)
            return data
        batch_id = open_run(settings, run_id, _flow_run_id(), KIND_REPLAY)
        crash_point("after_replay_opened")
        with clock.stage("marts (spark)"):
            written = write_replay(settings, batch_id, selection)
        with clock.stage("publish marts"):
            publish_marts(settings, batch_id)
        with clock.stage("reporting tables + ledger (one transaction)"):
            reporting = commit_replay(settings, run_id, batch_id, written.months)
        data = ReplaySummary(
            written,
            batch_id=batch_id,
            rows_loaded=written.rows_loadable,
            recovered=recovered,
            reporting=reporting,
            stage_seconds=dict(clock.seconds),
        ).to_json()
        finish_run(settings, run_id, batch_id, data)
        logger.info(
            "replay batch %s: %d row(s) loaded, months %s",
            batch_id,
            written.rows_loadable,
            ", ".join(written.months) or "none",
        )
        publish_replay_artifacts(data)  # the replay's report in the UI
        return data
    except BaseException as exc:
        rolled_back = None
        if batch_id is not None:
            rolled_back = _undo_uncommitted(settings, engine, run_id, batch_id, exc)
        if isinstance(exc, Exception):
            _mark_failure(exc, batch_id=batch_id, rolled_back=rolled_back)
        raise
    finally:
        stop_spark()
        release_lock(engine, run_id)
        engine.dispose()
