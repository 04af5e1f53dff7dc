"""Settling a run's files (sales_etl/journal.py ``_settle_all``): on S3 several moves at once.

Archiving and routing move each file with 3-4 HTTP requests on S3; one at a time, 1,200 rejected
files took ~50 s against the local S3 server. They now run ``S3Store.concurrent_moves`` at a
time, after the first file has moved alone (the ``during_archive`` crash point sees exactly one
moved file). Every check reads the bucket with the fixture's own boto3 client.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from sales_etl.journal import _settle_all
from sales_etl.storage.local import LocalStore
from sales_etl.storage.s3 import S3Store

BATCH = "20240301_000000"


def _rows(names: list[str]) -> list[SimpleNamespace]:
    """Staging rows as ``_settle`` reads them: an original moved to its archive place (rows
    from before claims existed: no claim, no version)."""
    return [
        SimpleNamespace(
            file_location=f"to_process/{name}",
            claim_location=None,
            source_version=None,
            target_location=f"processed/{BATCH}/{name}",
        )
        for name in names
    ]


class InFlight:
    """Wraps a store's ``move``: counts the moves running at the same time; can fail one key."""

    def __init__(self, store, fail_on: str | None = None) -> None:
        self.real_move, self.fail_on = store.move, fail_on
        self.lock = threading.Lock()
        self.now = self.most = 0
        store.move = self.move

    def move(self, src: str, dst: str) -> bool:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            if src == self.fail_on:
                raise OSError(f"injected failure moving {src}")
            return self.real_move(src, dst)
        finally:
            with self.lock:
                self.now -= 1


def _keys(client, bucket: str) -> dict[str, bytes]:
    keys = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", ()):
            body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            keys[item["Key"]] = body
    return keys


def _waiting_files(client, bucket: str, count: int) -> tuple[list[str], S3Store]:
    """``count`` files in the bucket's ``landing/to_process/`` (each holding its own name)."""
    names = [f"sales_{i:03d}.csv" for i in range(count)]
    for name in names:
        client.put_object(Bucket=bucket, Key=f"landing/to_process/{name}", Body=name.encode())
    return names, S3Store(f"s3://{bucket}/landing")


def test_s3_moves_run_at_once_after_the_first_and_all_land(moto_server, s3_bucket):
    client = moto_server.client()
    names, store = _waiting_files(client, s3_bucket, 60)
    in_flight = InFlight(store)
    archived_at_first_move = []

    def first_moved() -> None:  # where archive_files calls crash_point("during_archive")
        archived_at_first_move.append(
            sorted(k for k in _keys(client, s3_bucket) if "/processed/" in k)
        )

    moved = _settle_all(store, _rows(names), on_first_move=first_moved)

    assert moved == 60
    assert archived_at_first_move == [[f"landing/processed/{BATCH}/{names[0]}"]]
    assert _keys(client, s3_bucket) == {
        f"landing/processed/{BATCH}/{name}": name.encode() for name in names
    }
    assert 1 < in_flight.most <= S3Store.concurrent_moves
    # Idempotent: settling the same rows again moves nothing and changes nothing.
    assert _settle_all(store, _rows(names)) == 0
    assert len(_keys(client, s3_bucket)) == 60


def test_a_failed_s3_move_stops_the_rest_and_a_retry_finishes(moto_server, s3_bucket):
    client = moto_server.client()
    names, store = _waiting_files(client, s3_bucket, 200)
    in_flight = InFlight(store, fail_on=f"to_process/{names[7]}")

    with pytest.raises(OSError) as failure:
        _settle_all(store, _rows(names))

    assert str(failure.value) == "injected failure moving to_process/sales_007.csv"
    after = _keys(client, s3_bucket)
    waiting = {k.rsplit("/", 1)[1] for k in after if k.startswith("landing/to_process/")}
    archived = {k.rsplit("/", 1)[1] for k in after if k.startswith(f"landing/processed/{BATCH}/")}
    # Nothing lost or doubled: each file is in exactly one place, with its own bytes.
    assert waiting | archived == set(names) and not waiting & archived and len(after) == 200
    assert all(body == key.rsplit("/", 1)[1].encode() for key, body in after.items())
    # The failure stopped the moves not yet started (200 files, 16 at a time).
    assert names[7] in waiting and len(waiting) > 1 and in_flight.most > 1
    # The task's retry settles exactly what was left.
    assert _settle_all(S3Store(f"s3://{s3_bucket}/landing"), _rows(names)) == len(waiting)
    assert set(_keys(client, s3_bucket)) == {f"landing/processed/{BATCH}/{n}" for n in names}


def test_local_moves_stay_one_at_a_time(tmp_path: Path):
    store = LocalStore(str(tmp_path))
    names = [f"sales_{i:03d}.csv" for i in range(20)]
    (tmp_path / "to_process").mkdir()
    for name in names:
        (tmp_path / "to_process" / name).write_text(name)
    in_flight = InFlight(store)

    assert _settle_all(store, _rows(names)) == 20

    assert in_flight.most == 1
    assert sorted(p.name for p in (tmp_path / "processed" / BATCH).iterdir()) == names
    assert list((tmp_path / "to_process").iterdir()) == []
