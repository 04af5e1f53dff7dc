"""Bring the journal, the marts and the landing zone back to a clean state after a crash.

Runs at the start of every run, under the pipeline lock, so no live run can be disturbed.
A run that was STARTED never committed: its mart files are deleted and its files stay in
``to_process/`` for this run to pick up. A run that was LOADED did commit: only its file moves
and its staging update are finished.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Engine, update

from sales_etl.clock import utc_now
from sales_etl.db.engine import make_engine
from sales_etl.db.schema import ACTIVE, FAILED, REJECTED, RUN_STARTED, staging_files
from sales_etl.layout import incoming_prefix
from sales_etl.settings import Settings
from sales_etl.storage import ObjectStore, open_store
from sales_etl.tasks.files import move_staged
from sales_etl.tasks.journal import complete_run, fail_run, interrupted_runs, staged_files
from sales_etl.tasks.marts import drop_scratch, rollback_batch
from sales_etl.tasks.retry import retry_options


def abandon_run(
    engine: Engine, landing: ObjectStore, marts: ObjectStore, run_id: str, batch_id: str, error: str
) -> int:
    """Undo an uncommitted run: marts cleaned, ACTIVE files FAILED (left in to_process/).

    Rejected files whose move already started are moved to their recorded folder; those not
    yet touched are marked FAILED too and will be judged again by the next run.
    """
    deleted = rollback_batch(marts, batch_id)
    landing.delete_prefix(incoming_prefix(batch_id))  # Hadoop-safe aliases of the batch
    now = utc_now()
    for row in staged_files(engine, run_id, REJECTED):
        if landing.exists(row.target_location) or not landing.exists(row.file_location):
            move_staged(landing, [row])
        else:
            with engine.begin() as conn:
                conn.execute(
                    update(staging_files)
                    .where(staging_files.c.id == row.id)
                    .values(
                        status=FAILED, reason=f"not moved, run failed: {row.reason}", updated_at=now
                    )
                )
    fail_run(engine, run_id, error)
    return deleted


def recover(settings: Settings) -> list[dict[str, Any]]:
    """Finish or undo every run a crash interrupted; returns what was done, per run."""
    engine = make_engine(settings.database_url)
    landing, marts = open_store(settings.landing), open_store(settings.marts)
    actions = []
    try:
        for run in interrupted_runs(engine):
            if run.status == RUN_STARTED:
                deleted = abandon_run(
                    engine,
                    landing,
                    marts,
                    run.run_id,
                    run.batch_id,
                    "run interrupted before its load committed: rolled back by the next run; "
                    "its files stayed in to_process/",
                )
                actions.append(
                    {
                        "run_id": run.run_id,
                        "batch_id": run.batch_id,
                        "action": "rolled back",
                        "mart_files_deleted": deleted,
                    }
                )
            else:  # LOADED: the data is committed, only the file moves may be unfinished
                moved = move_staged(landing, staged_files(engine, run.run_id, ACTIVE))
                moved += move_staged(landing, staged_files(engine, run.run_id, REJECTED))
                drop_scratch(marts, run.batch_id)  # before COMPLETED: see finish_run
                landing.delete_prefix(incoming_prefix(run.batch_id))
                complete_run(engine, run.run_id, {"recovered_by_next_run": True})
                actions.append(
                    {
                        "run_id": run.run_id,
                        "batch_id": run.batch_id,
                        "action": "completed",
                        "files_moved": moved,
                    }
                )
    finally:
        engine.dispose()
    return actions


@task(name="recover-interrupted-runs", cache_policy=NO_CACHE, **retry_options())
def recover_interrupted_runs(settings: Settings) -> list[dict[str, Any]]:
    """Prefect task around :func:`recover`."""
    actions = recover(settings)
    logger = get_run_logger()
    for action in actions:
        logger.warning(
            "recovered interrupted run %s (batch %s): %s",
            action["run_id"],
            action["batch_id"],
            action["action"],
        )
    return actions
