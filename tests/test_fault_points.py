"""The named fault points the exactly-once tests drive (sales_etl.faults)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sales_etl.faults import CRASH_POINTS, at_point, crash_point


def test_at_point_calls_back_only_at_its_point_and_only_while_registered() -> None:
    calls: list[str] = []
    with at_point("after_validation", lambda: calls.append("a")):
        crash_point("after_validation")
        crash_point("after_db_load")
        crash_point("after_validation")
    crash_point("after_validation")
    assert calls == ["a", "a"]


def test_unknown_point_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown crash point 'after_lunch'"):
        crash_point("after_lunch")
    with pytest.raises(ValueError, match="unknown crash point"), at_point("nope", lambda: None):
        pass


def test_crash_at_kills_the_process_with_sigkill() -> None:
    point = CRASH_POINTS[0]
    code = f"from sales_etl.faults import crash_point; crash_point({point!r}); print('alive')"
    env_run = subprocess.run(
        [sys.executable, "-c", code],
        env={"SALES_ETL_CRASH_AT": point, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert env_run.returncode == -9 and "alive" not in env_run.stdout
    other = subprocess.run(
        [sys.executable, "-c", code],
        env={"SALES_ETL_CRASH_AT": CRASH_POINTS[-1], "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert other.returncode == 0 and other.stdout.strip() == "alive"
