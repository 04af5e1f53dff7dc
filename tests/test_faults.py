"""Faults in dependencies (issue 6): a clear failure, nothing lost, a clean recovery on rerun.

In-process flow runs on the session SparkSession. Faults are real, not mocks of the flow:
- the database is unreachable for the whole run (its folder is a plain file), then comes back;
- the object store fails every move into ``processed/`` after the first one (fault injected at
  the ``ObjectStore.move`` boundary), then works again;
- the marts file system is full (a 1 MiB tmpfs, root only), then grows.
After the rerun each case must equal what the inputs say: every file once under
``processed/``, staging COMPLETED, reporting tables = a plain ``Decimal`` recomputation.
(SIGKILL crashes are covered by tests/test_crash_recovery.py.)
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from corpus import HEADER, lines, load_corpus_dimensions, rec
from harness import Workspace
from helpers import files_under, read_parquet_rows, read_table, sha256_bytes
from ops_helpers import assert_task_failed_without_retries, wait_for_run_logs

from sales_etl.storage.local import LocalStore

pytestmark = pytest.mark.slow  # the nightly flow through injected outages and a full disk


def _inputs(n_files: int, rows_per_file: int, seed: int) -> dict[str, bytes]:
    rnd = random.Random(seed)
    files = {}
    for f in range(n_files):
        records = []
        for _ in range(rows_per_file):
            price = Decimal(rnd.randint(1, 9999)) / 100
            qty = rnd.randint(1, 5)
            records.append(
                rec(
                    customer=str(rnd.randint(1, 3)),
                    product=f"p-{rnd.getrandbits(128):032x}",  # defeats compression
                    date=f"2024-0{rnd.randint(3, 4)}-{rnd.randint(10, 28)}",
                    person=str(rnd.choice([100, 101])),
                    price=str(price),
                    quantity=str(qty),
                    total=str(price * qty),
                )
            )
        records.append(rec(quantity="0", total="0.00"))  # one quarantined row per file
        files[f"sales_{f}.csv"] = lines(records).encode()
    return files


def _expected_totals(files: dict[str, bytes]) -> dict[tuple[int, int, int], Decimal]:
    totals: dict[tuple[int, int, int], Decimal] = defaultdict(Decimal)
    for data in files.values():
        for line in data.decode().splitlines()[1:]:
            v = dict(zip(HEADER, line.split(","), strict=True))
            if v["quantity"] == "0":
                continue
            year, month = int(v["sales_date"][:4]), int(v["sales_date"][5:7])
            totals[(int(v["customer_id"]), year, month)] += Decimal(v["total_cost"])
    return dict(totals)


def workspace(root: Path) -> Workspace:
    """The shared workspace (database under ``db/``, so the test can take its folder away),
    the corpus dimensions loaded."""
    ws = Workspace(root, database_file="db/etl.db").create()
    load_corpus_dimensions(root / "dims", ws.database_url)
    return ws


def assert_nothing_lost(ws: Workspace, sent: dict[str, bytes]) -> None:
    """Every sent file exactly once in the landing zone, bytes unchanged.

    A run's claimed copies (``_incoming/<batch>/claimed/``) are its working copies, not a
    place a file ends in: a committed run that failed keeps them to finish archiving.
    """
    found = [p for p in files_under(ws.landing) if not p.startswith("_incoming/")]
    assert len(found) == len(sent), found
    for name, data in sent.items():
        places = [p for p in found if p.endswith("/" + name)]
        assert len(places) == 1, (name, places)
        assert sha256_bytes((ws.landing / places[0]).read_bytes()) == sha256_bytes(data)


def assert_equals_clean_run(ws: Workspace, sent: dict[str, bytes]) -> None:
    """What one clean run of ``sent`` leaves: archived once, staging COMPLETED, the reporting
    table and the row counts as the inputs say, no working copy left."""
    assert_nothing_lost(ws, sent)
    assert files_under(ws.inbox) == []
    assert files_under(ws.landing / "_incoming") == []  # no claimed copy left
    processed = files_under(ws.landing / "processed")
    assert sorted(p.split("/", 1)[1] for p in processed) == sorted(sent)
    rows = read_table(ws.database_url, "customer_monthly_purchase")
    got = {(r["customer_id"], r["year"], r["month"]): r["monthly_total"] for r in rows}
    assert got == _expected_totals(sent)
    mart = read_parquet_rows(ws.marts / "customer_data_mart")
    quarantine = read_parquet_rows(ws.marts / "quarantine")
    n_rows = sum(d.count(b"\n") - 1 for d in sent.values())
    assert len(mart) + len(quarantine) == n_rows
    assert len(quarantine) == len(sent)
    staging = read_table(ws.database_url, "staging_files")
    final = {}
    for row in staging:  # a failed run leaves FAILED rows; the last row per file counts
        final[row["file_name"]] = row["status"]
    assert set(final.values()) == {"COMPLETED"}, final
    assert not (ws.marts / "_incoming").exists()


def test_database_down_for_the_whole_run_then_back(
    spark, prefect_api, tmp_path: Path, monkeypatch
) -> None:
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("SALES_ETL_TASK_RETRIES", "0")
    ws = workspace(tmp_path)
    sent = _inputs(2, 20, seed=1)
    ws.drop(sent)
    # The database disappears: its folder is moved away and a plain file stands in its place,
    # so SQLite cannot open (or create) it.
    shutil.move(ws.db_dir, tmp_path / "db_away")
    ws.db_dir.write_text("not a folder")
    state = ws.run_flow(return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception) as failure:
        state.result()
    assert str(ws.db_dir) in str(failure.value)  # the error names the database location
    logs = wait_for_run_logs(PREFECT_API_URL.value(), str(state.state_details.flow_run_id))
    assert_task_failed_without_retries(logs)  # SALES_ETL_TASK_RETRIES=0 holds for this run
    assert_nothing_lost(ws, sent)
    assert len(files_under(ws.landing / "to_process")) == 2  # untouched, waiting
    assert files_under(ws.marts) == []

    ws.db_dir.unlink()
    shutil.move(tmp_path / "db_away", ws.db_dir)
    ws.run_flow()
    assert_equals_clean_run(ws, sent)


def test_storage_fails_mid_archive_then_rerun_finishes(
    spark, prefect_api, tmp_path: Path, monkeypatch
) -> None:
    ws = workspace(tmp_path)
    sent = _inputs(3, 20, seed=2)
    ws.drop(sent)
    real_move = LocalStore.move
    archived: list[str] = []

    def flaky_move(self: LocalStore, src: str, dst: str) -> bool:
        if dst.startswith("processed/"):
            if archived:  # the first archive move works, every later one fails
                raise OSError(5, "Input/output error (injected)")
            archived.append(dst)
        return real_move(self, src, dst)

    monkeypatch.setattr(LocalStore, "move", flaky_move)
    with pytest.raises(Exception, match="injected"):
        ws.run_flow()
    assert_nothing_lost(ws, sent)  # one file archived, two still in to_process/
    assert len(files_under(ws.landing / "processed")) == 1
    assert len(files_under(ws.landing / "to_process")) == 2
    # The committed run keeps its claims of the two files it could not archive yet.
    claims = [ws.landing / "_incoming" / p for p in files_under(ws.landing / "_incoming")]
    waiting = [ws.landing / "to_process" / p for p in files_under(ws.landing / "to_process")]
    assert sorted(p.read_bytes() for p in claims) == sorted(p.read_bytes() for p in waiting)
    run = read_table(ws.database_url, "etl_runs")[-1]
    assert run["status"] != "COMPLETED"

    monkeypatch.setattr(LocalStore, "move", real_move)
    summary = ws.run_flow()  # recovery finishes the archive; nothing new to load
    assert summary["rows_total"] == 0
    assert_equals_clean_run(ws, sent)
    batches = {p.split("/")[0] for p in files_under(ws.landing / "processed")}
    assert len(batches) == 1  # archived into the committed run's folder


def _mount_tmpfs(target: Path, size: str) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)], check=True)


@pytest.fixture
def tiny_disk(tmp_path: Path):
    if os.geteuid() != 0:
        pytest.fail("the disk-full test needs root (mount -t tmpfs)")
    target = tmp_path / "marts"
    target.mkdir()
    _mount_tmpfs(target, "1m")
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=False)


def test_disk_full_on_the_marts_then_space_freed(
    spark, prefect_api, tmp_path: Path, tiny_disk: Path
) -> None:
    ws = workspace(tmp_path)
    assert ws.marts == tiny_disk
    sent = _inputs(2, 15_000, seed=3)
    ws.drop(sent)
    with pytest.raises(Exception) as failure:
        ws.run_flow()
    text = str(failure.value)
    runs = read_table(ws.database_url, "etl_runs")
    text += " " + str(runs[-1]["error"])
    assert "No space left on device" in text or "ENOSPC" in text, text[:2000]
    assert_nothing_lost(ws, sent)
    assert len(files_under(ws.landing / "to_process")) == 2
    assert files_under(ws.marts, ".parquet") == []  # the batch was rolled back
    assert read_table(ws.database_url, "customer_monthly_purchase") == []

    subprocess.run(["mount", "-o", "remount,size=256m", str(tiny_disk)], check=True)
    ws.run_flow()
    assert_equals_clean_run(ws, sent)
