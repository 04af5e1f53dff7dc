"""An idle ``sales-etl run``, answered without Prefect or Spark (issue 16, section 3).

Most nights have nothing waiting. The flow would start Prefect (and, without ``PREFECT_API_URL``,
its temporary server) only to find ``to_process/`` empty; importing Prefect alone costs more
than the whole check below. :func:`idle_summary` looks first, with plain storage listing and
SQLAlchemy reads: nothing under ``to_process/``, no run left STARTED or LOADED by a crash
(the flow would recover it) and the pipeline lock free (the flow would fail on it). Only then
is the run idle, and the CLI prints the summary the flow returns for an idle run.

What an idle CLI run does not do: record a Prefect flow run (and its summary artifact). Runs
started by a Prefect deployment call the flow directly and are recorded as before.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import inspect

from sales_etl.db.engine import make_engine
from sales_etl.db.schema import etl_lock, etl_runs
from sales_etl.journal import (
    incoming_files,
    interrupted_runs,
    lock_is_free,
    refuse_when_locked,
)
from sales_etl.settings import Settings
from sales_etl.storage import open_store
from sales_etl.summary import build_summary
from sales_etl.timing import StageClock

#: The summary's stage name for the whole check (listing + journal + lock).
IDLE_CHECK_STAGE = "idle check (no Prefect, no Spark)"


def idle_summary(settings: Settings) -> dict[str, Any] | None:
    """The run summary of an idle run, or None when the flow has work (or a lock to report).

    Returns the shape of :func:`sales_etl.summary.build_summary` with no batch, no files and
    ``stage_seconds`` = ``{IDLE_CHECK_STAGE: seconds}``. Nothing is written: no table is created,
    no lock taken. Call it after :func:`sales_etl.preflight.run_preflight` (the settings, the
    landing zone and the database were checked there).

    Raises:
        StorageError, SQLAlchemyError: listing the landing zone or reading the journal failed
            (the CLI reports it as a failed run, as the flow would).
    """
    clock = StageClock()
    with clock.stage(IDLE_CHECK_STAGE):
        if incoming_files(open_store(settings.landing)):  # hidden names are never taken
            return None
        engine = make_engine(settings.database_url)
        try:
            tables = set(inspect(engine).get_table_names())
            # A missing journal table has nothing in it (the flow would create it empty).
            if etl_runs.name in tables and interrupted_runs(engine):
                return None
            if etl_lock.name in tables and not lock_is_free(engine):
                return None  # the flow reports who holds it
        finally:
            engine.dispose()
    return build_summary(
        run_id=uuid.uuid4().hex,
        batch_id=None,
        files=[],
        stats=None,
        reporting=None,
        recovered=[],
        stage_seconds=dict(clock.seconds),
    ).to_json()


def refuse_when_run_in_progress(settings: Settings) -> None:
    """Refuse at once, before Prefect and Spark start, when another run holds the lock.

    Raises:
        sales_etl.journal.RunLockedError: a live run holds the lock (one line and a hint).
    """
    engine = make_engine(settings.database_url)
    try:
        if etl_lock.name in set(inspect(engine).get_table_names()):
            refuse_when_locked(engine)
    finally:
        engine.dispose()
