"""Named crash points for the exactly-once tests.

``SALES_ETL_CRASH_AT=<point>`` makes the process SIGKILL itself when it reaches that point,
the harshest way a run can die (no ``finally``, no atexit, no flush). Unset in production.
"""

from __future__ import annotations

import os
import signal

CRASH_POINTS = (
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


def crash_point(name: str) -> None:
    """SIGKILL this process if ``SALES_ETL_CRASH_AT`` names ``name`` (test hook)."""
    if name not in CRASH_POINTS:
        raise ValueError(f"unknown crash point {name!r}")
    if os.environ.get("SALES_ETL_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
