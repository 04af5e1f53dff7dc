"""Issue 13 §1: a file replaced, deleted, truncated or re-created while a run is in progress.

Every run claims the listed version of each file (a run-owned copy) and removes the original
only if it is still that version, so what is checksummed, read by Spark and archived are the
same bytes, and a version that arrives during a run is the next run's delivery. The races are
made at the exact instant with ``sales_etl.faults.at_point`` (an uploader acting inside the
run), on local folders and on S3 (the suite's moto server). Expected values are computed in
plain Python from the rows the test wrote; outputs are read back with pathlib / boto3 /
pyarrow / SQLAlchemy.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from harness import decimal_money, expected_reporting_tuples
from helpers import (
    SALES_COLUMNS,
    csv_bytes,
    csv_records,
    load_dimension_folder,
    read_parquet_rows,
    read_table,
    reporting_table_rows,
    sha256_bytes,
    write_dimensions,
)

pytestmark = pytest.mark.slow

BATCH = re.compile(r"[0-9]{8}_[0-9]{6}")
CENT = Decimal("0.01")
PERSON_OF = {1: 100, 2: 100, 3: 101}  # customer -> the salesperson who sold to them
CUSTOMER_NAMES = {c: (f"C{c}", "X") for c in (1, 2, 3)}
PERSON_NAMES = {p: (f"P{p}", "Y") for p in (100, 101)}


def row(customer: int, day: int, price: str, quantity: int) -> list[object]:
    total = (Decimal(price) * quantity).quantize(CENT)
    return [customer, 10, "pen", f"2024-03-{day:02d}", PERSON_OF[customer], price, quantity, total]


def sales(*rows: list[object]) -> bytes:
    return csv_bytes(SALES_COLUMNS, rows)


# The input: v1 = header + one good row; v2 = v1 + one more good row.
V1 = sales(row(1, 5, "75.00", 2))
V2 = sales(row(1, 5, "75.00", 2), row(2, 6, "10.00", 1))
DELETED = sales(row(3, 7, "3.00", 3))
TRUNCATED_FULL = sales(row(2, 8, "4.00", 1), row(3, 9, "5.00", 2))
TRUNCATED = TRUNCATED_FULL[: TRUNCATED_FULL.index(b"\n", len(sales())) + 1]  # first row only
RECREATED_OLD = sales(row(1, 10, "6.00", 1))
RECREATED_NEW = sales(row(3, 11, "7.00", 1))
RACED_OLD = sales(row(2, 12, "8.00", 1))
RACED_NEW = sales(row(2, 12, "8.00", 1), row(3, 13, "9.00", 1))
FIRST = sales(row(3, 14, "2.00", 1))  # claimed first (keys are claimed in sorted order)


@dataclass
class Landing:
    """The landing zone as the test sees it, without the product's code."""

    url: str
    put: Callable[[str, bytes], None]
    delete: Callable[[str], None]
    truncate: Callable[[str, int], None]  # keep the first n bytes
    objects: Callable[[], dict[str, bytes]]  # every object, key relative to the landing root


def local_landing(root: Path) -> Landing:
    def put(key: str, data: bytes) -> None:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)  # in place, as an uploader overwriting the file would

    def truncate(key: str, size: int) -> None:
        os.truncate(root / key, size)  # same inode: only size and mtime tell

    def objects() -> dict[str, bytes]:
        return {
            p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    return Landing(str(root), put, lambda key: (root / key).unlink(), truncate, objects)


def s3_landing(client: Any, bucket: str) -> Landing:
    prefix = "landing/"

    def put(key: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=prefix + key, Body=data)

    def truncate(key: str, size: int) -> None:
        body = client.get_object(Bucket=bucket, Key=prefix + key)["Body"].read()
        put(key, body[:size])  # S3 has no truncate: a shorter object replaces it

    def objects() -> dict[str, bytes]:
        found = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", ()):
                body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                found[item["Key"][len(prefix) :]] = body
        return found

    return Landing(
        f"s3://{bucket}/landing",
        put,
        lambda key: client.delete_object(Bucket=bucket, Key=prefix + key),
        truncate,
        objects,
    )


@pytest.fixture(params=["local", "s3"])
def landing(request: pytest.FixtureRequest, tmp_path: Path) -> Landing:
    if request.param == "local":
        return local_landing(tmp_path / "landing")
    moto = request.getfixturevalue("moto_server")
    return s3_landing(moto.client(), request.getfixturevalue("s3_bucket"))


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'etl.db'}"
    write_dimensions(
        tmp_path / "dims",
        customer=[
            {"customer_id": c, "first_name": first, "last_name": last}
            for c, (first, last) in CUSTOMER_NAMES.items()
        ],
        store=[{"id": 10, "store_manager_name": "M"}],
        sales_team=[
            {"id": p, "first_name": first, "last_name": last, "is_manager": "N"}
            for p, (first, last) in PERSON_NAMES.items()
        ],
        product=[{"id": 1, "name": "pen", "current_price": "1.00"}],
    )
    load_dimension_folder(url, tmp_path / "dims")
    return url


@pytest.fixture
def run_flow(
    landing: Landing,
    database_url: str,
    tmp_path: Path,
    spark,
    prefect_api,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[], dict[str, Any]]:
    for name in ("SALES_ETL_CRASH_AT", "SALES_ETL_PLUGINS_DIR", "SALES_ETL_MAX_BAD_ROW_FRACTION"):
        monkeypatch.delenv(name, raising=False)
    third_party = sorted({ep.name for ep in importlib.metadata.entry_points(group="sales_etl")})
    monkeypatch.setenv("SALES_ETL_DISABLE_PLUGINS", ",".join(third_party))

    def run() -> dict[str, Any]:
        from sales_etl.flows.sales_flow import sales_etl_flow

        return sales_etl_flow(
            landing=landing.url, marts=str(tmp_path / "marts"), database_url=database_url
        )

    return run


def expected_loaded(*versions: bytes) -> Counter[tuple[int, str, Decimal]]:
    """(customer, date, total_cost) of every record of the versions that must load once each."""
    return Counter(
        (int(r[0]), r[3], Decimal(r[7]).quantize(CENT)) for v in versions for r in csv_records(v)
    )


def expected_reporting(loaded: Counter[tuple[int, str, Decimal]]) -> dict[str, list[tuple]]:
    """Both reporting tables of the loaded sales, from the shared plain-Decimal oracle."""
    sales = [
        {
            "customer_id": customer,
            "sales_person_id": PERSON_OF[customer],
            "sales_date": date,
            "total_cost": total,
        }
        for (customer, date, total), n in loaded.items()
        for _ in range(n)
    ]
    return expected_reporting_tuples(sales, CUSTOMER_NAMES, PERSON_NAMES, decimal_money)


def inbox(landing: Landing) -> dict[str, bytes]:
    return {
        k.removeprefix("to_process/"): v
        for k, v in landing.objects().items()
        if k.startswith("to_process/")
    }


def placed(landing: Landing) -> dict[str, list[str]]:
    """File name -> every place it is in the landing zone (batch folders as <batch>)."""
    places: dict[str, list[str]] = {}
    for key in landing.objects():
        places.setdefault(key.rsplit("/", 1)[-1], []).append(BATCH.sub("<batch>", key))
    return {k: sorted(v) for k, v in places.items()}


def test_versions_that_arrive_during_a_run_load_once_each_in_the_next_run(
    landing: Landing, run_flow: Callable[[], dict[str, Any]], database_url: str, tmp_path: Path
) -> None:
    from sales_etl.faults import at_point

    for key, data in {
        "to_process/a_first.csv": FIRST,
        "to_process/reupload.csv": V1,
        "to_process/deleted.csv": DELETED,
        "to_process/truncated.csv": TRUNCATED_FULL,
        "to_process/recreated.csv": RECREATED_OLD,
        "to_process/raced.csv": RACED_OLD,
    }.items():
        landing.put(key, data)

    def while_claiming() -> None:  # listed but not claimed yet: replaced before its copy
        landing.put("to_process/raced.csv", RACED_NEW)

    def after_claiming() -> None:  # claimed: deleted and created again under the same name
        landing.delete("to_process/recreated.csv")
        landing.put("to_process/recreated.csv", RECREATED_NEW)

    def after_validation() -> None:  # validated: replaced, deleted, truncated before Spark
        landing.put("to_process/reupload.csv", V2)
        landing.delete("to_process/deleted.csv")
        landing.truncate("to_process/truncated.csv", len(TRUNCATED))

    calls: Counter[str] = Counter()

    def once(name: str, action: Callable[[], None]) -> Callable[[], None]:
        def callback() -> None:
            calls[name] += 1
            if calls[name] == 1:
                action()

        return callback

    with (
        at_point("during_claim", once("during_claim", while_claiming)),
        at_point("after_claim", once("after_claim", after_claiming)),
        at_point("after_validation", once("after_validation", after_validation)),
    ):
        first = run_flow()
    assert calls == {"during_claim": 1, "after_claim": 1, "after_validation": 1}

    # Run 1 loaded and archived exactly the versions it claimed; the new ones wait.
    batch1 = first["batch_id"]
    everything = landing.objects()
    assert {k: v for k, v in everything.items() if k.startswith(f"processed/{batch1}/")} == {
        f"processed/{batch1}/a_first.csv": FIRST,
        f"processed/{batch1}/reupload.csv": V1,
        f"processed/{batch1}/deleted.csv": DELETED,
        f"processed/{batch1}/truncated.csv": TRUNCATED_FULL,
        f"processed/{batch1}/recreated.csv": RECREATED_OLD,
    }
    assert inbox(landing) == {
        "reupload.csv": V2,
        "truncated.csv": TRUNCATED,
        "recreated.csv": RECREATED_NEW,
        "raced.csv": RACED_NEW,
    }
    # The summary names every file that waits for the next run, and why.
    from sales_etl.journal import NEW_VERSION, NOT_CLAIMED

    assert sorted((f["file"], f["reason"]) for f in first["files_left_waiting"]) == [
        ("to_process/raced.csv", NOT_CLAIMED),
        ("to_process/recreated.csv", NEW_VERSION),
        ("to_process/reupload.csv", NEW_VERSION),
        ("to_process/truncated.csv", NEW_VERSION),
    ]
    # No claim copy, no tombstone, nothing else anywhere.
    archived_now = ("a_first", "reupload", "deleted", "truncated", "recreated")
    waiting = ("reupload", "truncated", "recreated", "raced")
    assert sorted(everything) == sorted(
        [f"processed/{batch1}/{n}.csv" for n in archived_now]
        + [f"to_process/{n}.csv" for n in waiting]
    )

    second = run_flow()
    batch2 = second["batch_id"]
    assert inbox(landing) == {}
    for name, data in {
        "reupload.csv": V2,
        "truncated.csv": TRUNCATED,
        "recreated.csv": RECREATED_NEW,
        "raced.csv": RACED_NEW,
    }.items():
        assert landing.objects()[f"processed/{batch2}/{name}"] == data

    landing.put("to_process/reupload.csv", V2)  # the same bytes again: a duplicate
    third = run_flow()
    assert landing.objects()[f"error_files/duplicates/{third['batch_id']}/reupload.csv"] == V2

    # Nothing lost, every version in exactly one place.
    assert placed(landing) == {
        "a_first.csv": ["processed/<batch>/a_first.csv"],
        "deleted.csv": ["processed/<batch>/deleted.csv"],
        "raced.csv": ["processed/<batch>/raced.csv"],
        "recreated.csv": ["processed/<batch>/recreated.csv"] * 2,
        "reupload.csv": ["error_files/duplicates/<batch>/reupload.csv"]
        + ["processed/<batch>/reupload.csv"] * 2,
        "truncated.csv": ["processed/<batch>/truncated.csv"] * 2,
    }

    # Archived bytes == checksummed bytes == rows in the marts == the reporting tables.
    loaded_versions = (FIRST, V1, DELETED, TRUNCATED_FULL, RECREATED_OLD)
    loaded_versions += (V2, TRUNCATED, RECREATED_NEW, RACED_NEW)
    archived = {k: v for k, v in landing.objects().items() if k.startswith("processed/")}
    assert sorted(archived.values()) == sorted(loaded_versions)
    staging = read_table(database_url, "staging_files")
    completed = {(r["batch_id"], r["file_name"]): r for r in staging if r["status"] == "COMPLETED"}
    assert {f"processed/{b}/{n}" for b, n in completed} == set(archived)
    for (batch, name), r in completed.items():
        data = archived[f"processed/{batch}/{name}"]
        assert r["checksum"] == sha256_bytes(data), name
        assert r["rows_loaded"] == len(csv_records(data)), name
    assert [r["status"] for r in staging].count("REJECTED") == 1  # the duplicate

    want = expected_loaded(*loaded_versions)
    mart = read_parquet_rows(tmp_path / "marts" / "customer_data_mart")
    assert (
        Counter(
            (int(m["customer_id"]), str(m["sales_date"]), Decimal(m["total_cost"])) for m in mart
        )
        == want
    )
    assert reporting_table_rows(database_url) == expected_reporting(want)
