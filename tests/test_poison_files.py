"""One file that makes Spark's CSV reader throw never blocks the rest (issue 13 §2).

Each scenario sends one poison file beside an ordinary good file, on local folders + SQLite and
on S3 (the session's moto server) + SQLite, runs the flow once in-process and checks: the good
file loads in the same run, the poison file ends in exactly one place with its reason, the
staging row and the run summary agree, and the tables equal a plain ``Decimal`` sum over the
rows written here (no product code computes the expectations).

- an over-wide line (20,481 fields) -> quarantined as ``malformed_row``, raw text capped;
- an over-wide header (20,508 columns) -> ``error_files/bad_schema/`` in validation;
- bytes that make Spark throw after validation passed (the same over-wide line written in at
  the ``after_validation`` fault point, so validation never saw it) -> ``error_files/unknown/``;
- a storage outage during the Spark stage fails the run and quarantines nothing.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from corpus import expected_reason
from helpers import SALES_COLUMNS, read_table, sha256_bytes
from test_three_configurations import Config, parquet_rows

from sales_etl.faults import at_point
from sales_etl.layout import INCOMING

pytestmark = pytest.mark.slow  # the nightly flow on local and S3 configurations

KINDS = ("local+sqlite", "s3+sqlite")
MAX_COLUMNS = 20_480  # Spark's documented maxColumns default (sql-data-sources-csv.html)
RAW_CAP = 4096  # the documented cap of a quarantined raw_record (docs/reliability.md)
HEADER = ",".join(SALES_COLUMNS)

GOOD_ROWS = [  # customer, store, product, date, person, price, quantity, total (known ids)
    ["1", "10", "pen", "2024-03-05", "100", "10.00", "2", "20.00"],
    ["2", "11", "ink", "2024-03-09", "101", "2.50", "3", "7.50"],
    ["1", "10", "pad", "2024-04-01", "100", "4.25", "1", "4.25"],
]
POISON_ROW = ["3", "10", "pen", "2024-03-20", "101", "1.50", "1", "1.50"]
WIDE_LINE = ",".join(POISON_ROW) + "," * 20_473  # one good row's 8 values + 20,473 commas


def _csv(rows: list[list[str]], *tail: str) -> bytes:
    return "".join(f"{line}\n" for line in [HEADER, *(",".join(r) for r in rows), *tail]).encode()


def _expected_totals(rows: list[list[str]]) -> tuple[dict, dict]:
    """customer_monthly_purchase and sales_team_incentive totals by plain Python."""
    per_customer: dict[tuple[int, int, int], Decimal] = defaultdict(Decimal)
    per_person: dict[tuple[int, int, int], Decimal] = defaultdict(Decimal)
    for row in rows:
        values = dict(zip(SALES_COLUMNS, row, strict=True))
        day = dt.date.fromisoformat(values["sales_date"])
        cost = Decimal(values["total_cost"])
        per_customer[(int(values["customer_id"]), day.year, day.month)] += cost
        per_person[(int(values["sales_person_id"]), day.year, day.month)] += cost
    return dict(per_customer), dict(per_person)


def _check_tables(config: Config, loaded: list[list[str]]) -> None:
    customers, people = _expected_totals(loaded)
    got_c = {
        (r["customer_id"], r["year"], r["month"]): r["monthly_total"]
        for r in config.table("customer_monthly_purchase")
    }
    got_p = {
        (r["sales_person_id"], r["year"], r["month"]): r["total_sales"]
        for r in config.table("sales_team_incentive")
    }
    assert (got_c, got_p) == (customers, people)


def _staging(config: Config) -> dict[str, dict[str, Any]]:
    return {r["file_location"]: r for r in config.table("staging_files")}


def _summary_entry(summary: dict[str, Any], key: str) -> dict[str, Any]:
    return next(f for f in summary["files"] if f["file"] == key)


@pytest.fixture(params=KINDS)
def config(request, tmp_path: Path, spark, prefect_api) -> Config:
    moto = request.getfixturevalue("moto_server") if request.param.startswith("s3") else None
    return Config(request.param, tmp_path / request.param.replace("+", "_"), moto=moto)


def _run_beside_good_file(config: Config, name: str, data: bytes, what: str) -> dict[str, Any]:
    """Send ``data`` as ``to_process/<name>`` beside good.csv; one flow run; its summary."""
    config.put("to_process/good.csv", _csv(GOOD_ROWS))
    config.put(f"to_process/{name}", data)
    started = time.monotonic()
    summary = config.run_flow()
    print(f"{config.kind}: {what}: run took {time.monotonic() - started:.1f} s")
    return summary


def _check_taken_out(config: Config, summary: dict[str, Any], name: str, category: str) -> str:
    """good.csv archived, ``name`` in error_files/<category>/ only, staging and summary agree
    on its one-line reason; returns that reason."""
    batch = summary["batch_id"]
    assert set(config.landing_snapshot()) == {
        f"processed/{batch}/good.csv",
        f"error_files/{category}/{batch}/{name}",
    }
    row = _staging(config)[f"to_process/{name}"]
    assert (row["status"], row["category"]) == ("REJECTED", category)
    assert row["reason"] and "\n" not in row["reason"]
    entry = _summary_entry(summary, f"to_process/{name}")
    assert (entry["outcome"], entry["reason"]) == (category, row["reason"])
    assert summary["files_by_outcome"] == {"accepted": 1, category: 1}
    assert summary["rows_total"] == summary["rows_loaded"] == len(GOOD_ROWS)
    _check_tables(config, GOOD_ROWS)
    return row["reason"]


def test_an_over_wide_line_is_quarantined_as_malformed_row(config: Config) -> None:
    poison = _csv([GOOD_ROWS[0]], WIDE_LINE)
    summary = _run_beside_good_file(config, "wide_line.csv", poison, "over-wide line")
    batch = summary["batch_id"]

    # Both files are accepted and archived, each exactly once, bytes unchanged.
    assert config.landing_snapshot() == {
        f"processed/{batch}/good.csv": sha256_bytes(_csv(GOOD_ROWS)),
        f"processed/{batch}/wide_line.csv": sha256_bytes(poison),
    }
    assert summary["files_by_outcome"] == {"accepted": 2}

    # The wide line is one quarantined record; its raw text is capped with a note.
    quarantine = parquet_rows(config.mart_files()["quarantine"])
    assert len(quarantine) == 1
    row = quarantine[0]
    values = dict(zip(SALES_COLUMNS, POISON_ROW, strict=True))
    assert row["reason"] == expected_reason(values, malformed=True) == "malformed_row"
    assert row["source_file"] == "to_process/wide_line.csv"
    assert row["raw_record"] == WIDE_LINE[:RAW_CAP] + f" [cut: {len(WIDE_LINE)} characters in all]"

    loaded = [*GOOD_ROWS, GOOD_ROWS[0]]
    customer_mart = parquet_rows(config.mart_files()["customer_data_mart"])
    assert len(customer_mart) == len(loaded)
    staging = _staging(config)
    assert (staging["to_process/wide_line.csv"]["rows_total"],
            staging["to_process/wide_line.csv"]["rows_loaded"]) == (2, 1)  # fmt: skip
    assert staging["to_process/good.csv"]["rows_loaded"] == len(GOOD_ROWS)
    assert {r["status"] for r in staging.values()} == {"COMPLETED"}
    assert (summary["rows_total"], summary["rows_loaded"], summary["rows_quarantined"]) == (
        len(loaded) + 1,
        len(loaded),
        1,
    )
    assert summary["quarantine_reasons"] == {"malformed_row": 1}
    _check_tables(config, loaded)


def test_an_over_wide_header_is_bad_schema_before_spark(config: Config) -> None:
    columns = [*SALES_COLUMNS, *(f"x{i}" for i in range(20_500))]
    assert len(columns) == 20_508
    wide = (",".join(columns) + "\n" + ",".join(GOOD_ROWS[0] + [""] * 20_500) + "\n").encode()
    summary = _run_beside_good_file(config, "wide_header.csv", wide, "over-wide header")
    reason = _check_taken_out(config, summary, "wide_header.csv", "bad_schema")
    assert reason == (
        f"header has 20,508 columns, more than the {MAX_COLUMNS:,} Spark's CSV reader accepts "
        "(its maxColumns option)"
    )


def _corrupt_after_validation(config: Config, original: bytes, corrupted: bytes):
    """At ``after_validation``: overwrite the run's claimed copy of the file (the bytes Spark
    reads, under ``_incoming/<batch>/claimed/``), as a disk or a bug might, after validation
    passed it. The original in to_process/ is left as it is: changing it too would be a new
    version, which the claim step rightly leaves waiting for the next run."""

    def corrupt() -> None:
        hits = [
            rel
            for rel, data in config._objects(config.landing)
            if data == original and rel.startswith(INCOMING + "/")
        ]
        assert len(hits) == 1, f"expected one claimed copy of the file, found {hits}"
        config.put(hits[0], corrupted)

    return at_point("after_validation", corrupt)


def test_a_file_spark_fails_on_after_validation_goes_to_unknown(config: Config) -> None:
    original = _csv([POISON_ROW])
    corrupted = original + f"{WIDE_LINE}\n".encode()  # wider than the maxColumns validation set
    with _corrupt_after_validation(config, original, corrupted):
        summary = _run_beside_good_file(config, "poison.csv", original, "Spark failure pinned")
    reason = _check_taken_out(config, summary, "poison.csv", "unknown")
    assert "Index 20480 out of bounds" in reason
    assert _staging(config)["to_process/poison.csv"]["rows_loaded"] is None  # none were read
    # Nothing of the poison file in any mart; the good file whole.
    assert {r["source_file"] for r in parquet_rows(config.mart_files()["customer_data_mart"])} == {
        "to_process/good.csv"
    }
    assert parquet_rows(config.mart_files()["quarantine"]) == []


#: s3a's own retries, cut short for the outage test (the flow's task retries still run).
_FAST_S3A_FAILURE = {
    "fs.s3a.retry.limit": "1",
    "fs.s3a.retry.interval": "100ms",
    "fs.s3a.attempts.maximum": "1",
    "fs.s3a.connection.establish.timeout": "2s",
}


def test_a_storage_outage_in_the_spark_stage_fails_the_run_and_holds_nothing(
    spark, prefect_api, moto_server, tmp_path: Path, monkeypatch
) -> None:
    """S3 goes away after validation and the reject moves: the Spark read cannot reach it. That
    is an outage for the retries, not a poison file: the run fails, no file is held."""
    from harness import stop_process, write_shared_dimensions
    from helpers import load_dimension_folder
    from services import start_moto_server

    from sales_etl.flows.sales_flow import sales_etl_flow
    from sales_etl.storage.s3 import clear_s3_cache
    from sales_etl.tasks.retry import is_transient

    outage = start_moto_server(tmp_path)  # its own server, so stopping it harms no other test
    for name, value in {
        "AWS_ENDPOINT_URL_S3": outage.endpoint,
        "AWS_ACCESS_KEY_ID": outage.access_key,
        "AWS_SECRET_ACCESS_KEY": outage.secret_key,
    }.items():
        monkeypatch.setenv(name, value)
    clear_s3_cache()
    bucket = f"outage-{time.time_ns() % 10**9}"  # a new bucket: s3a makes a new file system
    outage.client().create_bucket(Bucket=bucket)
    for name, rows in (("good.csv", GOOD_ROWS), ("other.csv", [POISON_ROW])):
        outage.client().put_object(Bucket=bucket, Key=f"landing/to_process/{name}", Body=_csv(rows))
    url = f"sqlite:///{tmp_path / 'etl.db'}"
    load_dimension_folder(url, write_shared_dimensions(tmp_path / "dims"))
    saved = {key: spark.conf.get(key, None) for key in _FAST_S3A_FAILURE}
    try:
        for key, value in _FAST_S3A_FAILURE.items():
            spark.conf.set(key, value)
        with (
            at_point("after_reject_moves", lambda: stop_process(outage.process)),
            pytest.raises(Exception) as failure,
        ):
            sales_etl_flow(
                landing=f"s3://{bucket}/landing",
                marts=f"s3://{bucket}/marts",
                database_url=url,
                max_bad_row_fraction=1.0,
            )
    finally:
        for key, value in saved.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
        stop_process(outage.process)
        clear_s3_cache()
    assert is_transient(failure.value), str(failure.value)[:2000]
    staging = read_table(url, "staging_files")
    assert len(staging) == 2
    # Neither file was taken out of the batch as a poison file (nor as anything else).
    assert [(r["category"], r["status"]) for r in staging if r["status"] == "REJECTED"] == []
    assert all(r["category"] is None for r in staging)
