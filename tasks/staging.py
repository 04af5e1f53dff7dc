"""Prefect tasks over the run journal's run transitions (retried like every DB task).

Each opens the database and stores and calls :mod:`sales_etl.journal`, which owns the states.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Engine

from sales_etl import journal
from sales_etl.db.engine import init_db, make_engine
from sales_etl.file_fate import RowCounts
from sales_etl.settings import Settings
from sales_etl.storage import open_store
from sales_etl.tasks.retry import io_task


@io_task("open-pipeline")
def open_pipeline(settings: Settings, run_id: str) -> None:
    """Create missing tables (and missing journal columns) and take the pipeline lock (a held
    lock fails at once)."""
    engine = make_engine(settings.database_url)
    try:
        init_db(engine)
        journal.acquire_lock(engine, run_id, settings.lock_ttl_seconds)
    finally:
        engine.dispose()


@io_task("record-file-rows")
def record_file_rows(settings: Settings, run_id: str, per_file: dict[str, RowCounts]) -> None:
    """Store each accepted file's row counts on its staging row."""
    engine = make_engine(settings.database_url)
    try:
        journal.record_row_counts(engine, run_id, per_file)
    finally:
        engine.dispose()


@io_task("commit-empty-batch")
def commit_empty_batch(settings: Settings, run_id: str) -> None:
    """A batch with no loadable rows has nothing to recompute, but still commits before archiving."""
    engine = make_engine(settings.database_url)
    try:
        journal.commit_empty_run(engine, run_id)
    finally:
        engine.dispose()


@io_task("finish-run")
def finish_run(settings: Settings, run_id: str, batch_id: str, summary: dict[str, Any]) -> None:
    """Scratch folders removed, staging rows ACTIVE -> COMPLETED, run -> COMPLETED."""
    engine = make_engine(settings.database_url)
    try:
        journal.complete_run(
            engine,
            open_store(settings.landing),
            open_store(settings.marts),
            run_id,
            batch_id,
            summary,
        )
    finally:
        engine.dispose()


# Not retried: it runs in the flow's `finally`; a lock left behind is freed once its holder
# process is gone or its lease expired (journal.acquire_lock).
@task(name="release-lock", cache_policy=NO_CACHE, retries=0)
def release_lock(engine: Engine, run_id: str) -> None:
    """Release the pipeline lock over the flow's own ``engine`` (see ``roll-back-run``)."""
    journal.release_lock(engine, run_id)
