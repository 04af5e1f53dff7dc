"""Named fault points for the exactly-once tests.

``SALES_ETL_CRASH_AT=<point>`` makes the process SIGKILL itself when it reaches that point,
the harshest way a run can die (no ``finally``, no atexit, no flush). Unset in production.

:func:`at_point` lets an in-process test act at a point instead (an uploader replacing a file
right after validation, a file corrupted before Spark reads it): the race is then reproduced
at the exact instant, not hoped for with sleeps.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

CRASH_POINTS = (
    "during_claim",  # the first listed file claimed, the others not yet
    "after_claim",  # every file claimed, none validated
    "after_validation",
    "after_reject_moves",
    "after_marts_written",
    "after_files_held",
    "during_marts_publish",
    "after_marts_published",
    "after_db_load",
    "during_archive",
    "before_staging_complete",
)
#: Points only a replay reaches (``sales-etl replay``); a replay also passes
#: ``after_marts_written``, ``during_marts_publish``, ``after_marts_published``,
#: ``after_db_load`` and ``before_staging_complete`` (docs/architecture.md).
REPLAY_CRASH_POINTS = ("after_replay_opened",)
#: Reached only by a recompute that backfills the partial aggregates of batches published
#: before partials existed (sales_etl.tasks.partials.backfill_partials): after its first move.
BACKFILL_CRASH_POINTS = ("during_partials_backfill",)

_callbacks: dict[str, list[Callable[[], None]]] = {}


def _known(name: str) -> str:
    if name not in (*CRASH_POINTS, *REPLAY_CRASH_POINTS, *BACKFILL_CRASH_POINTS):
        raise ValueError(f"unknown crash point {name!r}")
    return name


@contextmanager
def at_point(name: str, callback: Callable[[], None]) -> Iterator[None]:
    """Test hook: call ``callback()`` each time this process reaches point ``name``.

    Raises:
        ValueError: ``name`` is not one of :data:`CRASH_POINTS`.
    """
    callbacks = _callbacks.setdefault(_known(name), [])
    callbacks.append(callback)
    try:
        yield
    finally:
        callbacks.remove(callback)


def crash_point(name: str) -> None:
    """Run the :func:`at_point` callbacks of ``name``, then SIGKILL this process if
    ``SALES_ETL_CRASH_AT`` names it (test hooks; both inert in production)."""
    for callback in list(_callbacks.get(_known(name), ())):
        callback()
    # Read from the environment here, not from Settings, on purpose: a test-only hook (listed
    # in sales_etl.settings.OTHER_VARIABLES), read at the very instant the point is reached,
    # deep in code (the journal, the stores) that holds no Settings; tests set it per process.
    if os.environ.get("SALES_ETL_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
