"""Shared fixtures: one SparkSession for the whole test session, a Prefect test API, and
small landing/marts/SQLite environments built from hand-written dimension rows."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# moto_server, s3_bucket, mariadb, mysql_url, spark_cluster (tests/services.py); timings,
# cli_env, spark_env of the SIGKILL tests (tests/crash_fixtures.py)
pytest_plugins = ["services", "crash_fixtures"]

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Keep retry back-off short in tests; the retry behaviour itself is tested explicitly.
os.environ.setdefault("SALES_ETL_RETRY_DELAY_SECONDS", "0.2")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fail-on-skip",
        action="store_true",
        help="a skipped test fails (make test and CI pass it: nothing there is skipped silently)",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    report = yield
    if (
        report.skipped
        and not hasattr(report, "wasxfail")
        and item.config.getoption("--fail-on-skip")
    ):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under --fail-on-skip (make test runs everything): {reason}"
    return report


@pytest.fixture(scope="session")
def spark():
    """The session's SparkSession, made by the product's own builder (local[2])."""
    from sales_etl import spark as spark_module
    from sales_etl.settings import Settings

    session = spark_module.start_spark(
        Settings(spark_master="local[2]", spark_shuffle_partitions=2, spark_driver_memory="2g")
    )
    # The flow must not stop this shared session between tests: hand ownership to the fixture.
    spark_module._owned = False
    spark_module._session = None
    yield session
    session.stop()


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """A temporary Prefect API (SQLite) for flows run inside the test process."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def ws(template, tmp_path: Path):
    """A copy of the requesting module's ``template`` workspace (``ops_helpers.ops_workspace``)."""
    import shutil

    from ops_helpers import ops_workspace

    shutil.copytree(template.root, tmp_path / "ws")
    return ops_workspace(tmp_path / "ws")


@pytest.fixture
def env(ws, tmp_path: Path) -> dict[str, str]:
    """``sales-etl`` subprocess environment (``crash_helpers.base_env``) pointing at ``ws``."""
    from crash_helpers import base_env

    return {**base_env(tmp_path / "prefect-home", None), **ws.env()}


@pytest.fixture
def workspace(tmp_path: Path):
    """Settings of a ``harness.Workspace`` under ``tmp_path`` (folders made, nothing in them)."""
    from harness import Workspace

    from sales_etl.settings import Settings

    ws = Workspace(tmp_path).create()
    return Settings(
        landing=str(ws.landing),
        marts=str(ws.marts),
        database_url=ws.database_url,
        spark_master="local[2]",
        spark_shuffle_partitions=2,
        spark_driver_memory="2g",
    )


@pytest.fixture
def flow_env(workspace, spark, prefect_api, monkeypatch: pytest.MonkeyPatch):
    """``workspace``'s settings in the environment (the flows read ``SALES_ETL_*``), with no
    crash point or incentive override and no file held whole (fraction 1.0); returns them."""
    for name in ("SALES_ETL_CRASH_AT", "SALES_ETL_INCENTIVE_SCOPE", "SALES_ETL_INCENTIVE_RATE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SALES_ETL_LANDING", workspace.landing)
    monkeypatch.setenv("SALES_ETL_MARTS", workspace.marts)
    monkeypatch.setenv("SALES_ETL_DATABASE_URL", workspace.database_url.get_secret_value())
    monkeypatch.setenv("SALES_ETL_MAX_BAD_ROW_FRACTION", "1.0")
    return workspace
