"""Module-scoped fixtures of the tests that run `sales-etl` subprocesses (test_crash_recovery.py,
test_replay_crash.py, test_spark_cluster.py):
one Prefect server per module, a class-data-sharing archive of Spark's classes, and the table of
every subprocess's timing printed at the module's end. A pytest plugin (conftest.py
``pytest_plugins``), so each module names them as parameters without importing them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from crash_helpers import base_env, dump_class_archive, with_class_archive
from harness import PrefectServer


@dataclass
class Timing:
    label: str
    seconds: float
    returncode: int
    note: str = ""


@pytest.fixture(scope="module")
def timings(request: pytest.FixtureRequest) -> Iterator[list[Timing]]:
    """Every subprocess of the module, printed as a table at the end."""
    found: list[Timing] = []
    start = time.monotonic()
    yield found
    lines = [f"{'run':<46} {'rc':>4} {'seconds':>8}  note"]
    lines += [f"{t.label:<46} {t.returncode:>4} {t.seconds:>8.1f}  {t.note}" for t in found]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines.append(f"module total: {time.monotonic() - start:.0f} s (load average now {load})")
    capman = request.config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled():
        print("\n\ncrash-recovery runs:\n" + "\n".join(lines))


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory, timings: list[Timing]) -> Iterator[dict]:
    """Environment for `sales-etl` subprocesses, pointing at one Prefect server for the module."""
    home = tmp_path_factory.mktemp("prefect_home")
    server = PrefectServer(home)
    server.start()
    timings.append(Timing("prefect server start (once)", server.startup_seconds, 0))
    try:
        yield base_env(home, server.api_url)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def spark_env(
    tmp_path_factory: pytest.TempPathFactory, cli_env: dict, timings: list[Timing]
) -> dict[str, str]:
    """``cli_env`` plus a class-data-sharing archive of Spark's classes for every JVM."""
    work = tmp_path_factory.mktemp("jvm")
    archive = work / "spark-classes.jsa"
    seconds = dump_class_archive(archive, cli_env, work)
    timings.append(Timing("JVM class archive dump (once)", seconds, 0, f"ok: {archive.is_file()}"))
    return with_class_archive(cli_env, archive)
