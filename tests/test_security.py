"""Security checks (issue 6): secrets never leak, SQL is parameterised, keys cannot escape.

The container's non-root user is checked in tests/test_dockerfile.py (not repeated here).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from ops_helpers import assert_task_failed_without_retries, wait_for_run_logs

REPO = Path(__file__).resolve().parent.parent
PRODUCT_DIRS = ("sales_etl", "tasks", "flows", "validators")
SECRET = "S3cr3t-pa55word-do-not-leak"


def _product_sources() -> list[Path]:
    return [p for d in PRODUCT_DIRS for p in (REPO / d).rglob("*.py")]


def test_sql_is_never_built_with_string_formatting() -> None:
    """SQL only with bound parameters: no f-string/format/% SQL handed to execute()/text()."""
    pattern = re.compile(
        r"(execute|text|exec_driver_sql)\(\s*(f[\"']|[\"'][^\"']*[\"']\s*(%|\.format\())"
    )
    offenders = [
        f"{path.relative_to(REPO)}:{n}: {line.strip()}"
        for path in _product_sources()
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "key",
    ["../x.csv", "to_process/../../x.csv", "/etc/passwd", "a//b.csv", "./a.csv", "a\x00.csv", ""],
)
def test_unsafe_keys_are_refused(tmp_path: Path, key: str) -> None:
    from sales_etl.storage import StorageError, safe_key
    from sales_etl.storage.local import LocalStore

    with pytest.raises(StorageError):
        safe_key(key)
    store = LocalStore(tmp_path / "landing")
    with pytest.raises(StorageError):
        store.write_bytes(key, b"x")
    with pytest.raises(StorageError):
        store.read_bytes(key)
    assert not (tmp_path / "x.csv").exists()


def test_symlink_in_to_process_is_not_followed(tmp_path: Path) -> None:
    """A link in to_process/ pointing outside the landing zone is ignored, never read or moved."""
    from sales_etl.journal import incoming_files
    from sales_etl.storage.local import LocalStore

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("customer_id\n1\n")
    inbox = tmp_path / "landing" / "to_process"
    inbox.mkdir(parents=True)
    (inbox / "link.csv").symlink_to(outside / "secret.csv")
    (inbox / "dirlink").symlink_to(outside, target_is_directory=True)
    (inbox / "real.csv").write_text("x")
    keys = [o.key for o in incoming_files(LocalStore(tmp_path / "landing"))]
    assert keys == ["to_process/real.csv"]
    assert (outside / "secret.csv").read_text() == "customer_id\n1\n"


def test_redact_url_hides_the_password() -> None:
    from sales_etl.secrets import redact_url
    from sales_etl.settings import Settings

    url = f"mysql+pymysql://etl:{SECRET}@db.example:3306/sales"
    assert SECRET not in redact_url(url)
    assert SECRET not in repr(Settings(database_url=url).redacted())


def _complete_run_logs(flow_run_id: str) -> list[dict]:
    """The logs of an in-process flow run once all have reached the test API: a background
    thread ships them in batches, so reading them once right after the run can miss the last
    ones, and a leak check over a partial log proves nothing."""
    from prefect.settings import PREFECT_API_URL

    return wait_for_run_logs(PREFECT_API_URL.value(), flow_run_id)


@pytest.mark.slow
def test_failed_flow_with_a_password_in_the_url_leaks_it_nowhere(
    prefect_api, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch
) -> None:
    """Database unreachable, URL holds a known password: the error, every log record and the
    Prefect logs/artifacts of the run must not contain it."""
    from prefect.client.orchestration import get_client

    from sales_etl.flows.sales_flow import sales_etl_flow

    monkeypatch.setenv("SALES_ETL_TASK_RETRIES", "0")
    # Secrets come from the environment, never from flow parameters (visible in the UI).
    url = f"mysql+pymysql://etl:{SECRET}@127.0.0.1:1/sales"  # nothing listens on port 1
    monkeypatch.setenv("SALES_ETL_DATABASE_URL", url)
    (tmp_path / "landing" / "to_process").mkdir(parents=True)
    caplog.set_level(logging.DEBUG)
    state = sales_etl_flow(
        landing=str(tmp_path / "landing"),
        marts=str(tmp_path / "marts"),
        return_state=True,
    )
    assert state.is_failed()
    with pytest.raises(Exception) as raised:
        state.result()
    texts = [str(raised.value), repr(raised.value), caplog.text]
    chain = raised.value
    while chain is not None:
        texts.append(str(chain))
        chain = chain.__cause__ or chain.__context__
    flow_run_id = state.state_details.flow_run_id
    logs = _complete_run_logs(str(flow_run_id))
    texts += [log["message"] for log in logs]
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        texts.append(repr(run.parameters))
        texts.append(str(run.state.message if run.state else ""))
        for artifact in client.read_artifacts():
            texts.append(repr(artifact.data))
            texts.append(str(artifact.description))
    leaks = [t for t in texts if SECRET in t]
    assert leaks == [], leaks[0][:500] if leaks else ""
    assert_task_failed_without_retries(logs)  # SALES_ETL_TASK_RETRIES=0 holds for this run


@pytest.mark.slow
def test_successful_mariadb_run_leaks_the_password_nowhere(
    spark, prefect_api, mysql_url: str, tmp_path: Path, caplog, monkeypatch
) -> None:
    """A real run on MariaDB with a password from the environment: grep every output for it."""
    from corpus import lines, load_corpus_dimensions, rec
    from prefect.client.orchestration import get_client
    from sqlalchemy.engine import make_url

    from sales_etl.flows.sales_flow import sales_etl_flow

    password = make_url(mysql_url).password
    assert password and len(password) >= 16
    monkeypatch.setenv("SALES_ETL_DATABASE_URL", mysql_url)
    load_corpus_dimensions(tmp_path / "dims", mysql_url)
    inbox = tmp_path / "landing" / "to_process"
    inbox.mkdir(parents=True)
    (inbox / "good.csv").write_bytes(lines([rec(), rec(quantity="0", total="0.00")]).encode())
    (inbox / "bad.txt").write_bytes(b"x")
    caplog.set_level(logging.DEBUG)
    state = sales_etl_flow(
        landing=str(tmp_path / "landing"), marts=str(tmp_path / "marts"), return_state=True
    )
    summary = state.result()
    assert summary["rows_loaded"] == 1 and summary["files_rejected"] == 1
    texts = [repr(summary), caplog.text]
    from helpers import read_table

    for table in ("etl_runs", "staging_files"):
        texts += [repr(row) for row in read_table(mysql_url, table)]
    flow_run_id = state.state_details.flow_run_id
    logs = _complete_run_logs(str(flow_run_id))
    assert logs
    texts += [log["message"] for log in logs]
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        texts += [repr(run.parameters), str(run.state)]
        artifacts = client.read_artifacts()
        assert artifacts
        texts += [repr(a.data) + str(a.description) for a in artifacts]
    leaks = [t[:300] for t in texts if password in t]
    assert leaks == []
