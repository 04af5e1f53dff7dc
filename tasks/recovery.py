"""Prefect tasks that bring the journal, the marts and the landing zone back to a clean state.

:func:`recover_interrupted_runs` runs at the start of every run, under the pipeline lock, so
no live run can be disturbed; :func:`roll_back_run` undoes the current run after a failure.
The rules are :func:`sales_etl.journal.recover` and :func:`sales_etl.journal.roll_back_run`.
"""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Engine

from sales_etl import journal
from sales_etl.db.engine import make_engine
from sales_etl.db.schema import RUN_LOADED
from sales_etl.settings import Settings
from sales_etl.storage import open_store
from sales_etl.tasks.retry import io_task


@io_task("recover-interrupted-runs")
def recover_interrupted_runs(settings: Settings) -> list[journal.RecoveredRun]:
    """Finish or undo every run a crash interrupted; returns what was done, per run."""
    engine = make_engine(settings.database_url)
    try:
        actions = journal.recover(engine, open_store(settings.landing), open_store(settings.marts))
    finally:
        engine.dispose()
    logger = get_run_logger()
    for action in actions:
        logger.warning(
            "recovered interrupted run %s (batch %s): %s",
            action.run_id,
            action.batch_id,
            action.action,
        )
    return actions


# Not retried: it runs in the flow's failure path, where the next run's recovery is the retry.
@task(name="roll-back-run", cache_policy=NO_CACHE, retries=0)
def roll_back_run(
    settings: Settings, engine: Engine, run_id: str, batch_id: str, error: str
) -> bool:
    """Roll back the run unless its load committed; returns True when rolled back now, False
    when it had committed (the next run finishes the archive moves).

    ``engine`` is the flow's own, holding a pooled connection: the database may refuse new
    ones by now. Raises whatever the database or store raised (the caller reports it).
    """
    if journal.run_status(engine, run_id) == RUN_LOADED:
        return False
    journal.roll_back_run(
        engine, open_store(settings.landing), open_store(settings.marts), run_id, batch_id, error
    )
    return True
