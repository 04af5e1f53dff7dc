"""Prefect tasks over the staging table and run journal (retried like every DB task)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from sales_etl.db.engine import init_db, make_engine
from sales_etl.faults import crash_point
from sales_etl.layout import incoming_prefix
from sales_etl.settings import Settings
from sales_etl.storage import open_store
from sales_etl.tasks.journal import acquire_lock, complete_run, mark_loaded, record_row_counts
from sales_etl.tasks.marts import drop_scratch
from sales_etl.tasks.retry import retry_options


@task(name="open-pipeline", cache_policy=NO_CACHE, **retry_options())
def open_pipeline(settings: Settings, run_id: str) -> None:
    """Create missing tables and take the pipeline lock (a held lock fails at once)."""
    engine = make_engine(settings.database_url)
    try:
        init_db(engine)
        acquire_lock(engine, run_id, settings.lock_ttl_seconds)
    finally:
        engine.dispose()


@task(name="record-file-rows", cache_policy=NO_CACHE, **retry_options())
def record_file_rows(settings: Settings, run_id: str, per_file: dict[str, dict[str, int]]) -> None:
    """Store each accepted file's row counts on its staging row."""
    engine = make_engine(settings.database_url)
    try:
        record_row_counts(engine, run_id, per_file)
    finally:
        engine.dispose()


@task(name="commit-empty-batch", cache_policy=NO_CACHE, **retry_options())
def commit_empty_batch(settings: Settings, run_id: str) -> None:
    """A batch with no loadable rows has nothing to recompute, but still commits before archiving."""
    engine = make_engine(settings.database_url)
    try:
        with engine.begin() as conn:
            mark_loaded(conn, run_id, [])
    finally:
        engine.dispose()


@task(name="finish-run", cache_policy=NO_CACHE, **retry_options())
def finish_run(settings: Settings, run_id: str, batch_id: str, summary: dict[str, Any]) -> None:
    """Staging rows ACTIVE -> COMPLETED, run -> COMPLETED, scratch folder removed."""
    crash_point("before_staging_complete")
    # Scratch first: once the run is COMPLETED nothing looks at it again, so a crash between
    # the two steps must not leave a copy of the batch's rows behind.
    drop_scratch(open_store(settings.marts), batch_id)
    open_store(settings.landing).delete_prefix(incoming_prefix(batch_id))  # Hadoop-safe aliases
    engine = make_engine(settings.database_url)
    try:
        complete_run(engine, run_id, summary)
    finally:
        engine.dispose()
