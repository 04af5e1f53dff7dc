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
from helpers import SALES_COLUMNS
from test_three_configurations import Config, parquet_rows

from sales_etl.faults import at_point

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


def _timed_run(config: Config) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    summary = config.run_flow()
    return summary, time.monotonic() - started


def test_an_over_wide_line_is_quarantined_as_malformed_row(config: Config) -> None:
    good, poison = _csv(GOOD_ROWS), _csv([GOOD_ROWS[0]], WIDE_LINE)
    config.put("to_process/good.csv", good)
    config.put("to_process/wide_line.csv", poison)
    summary, seconds = _timed_run(config)
    print(f"{config.kind}: over-wide line run took {seconds:.1f} s", summary["stage_details"])
    batch = summary["batch_id"]

    # Both files are accepted and archived, each exactly once, bytes unchanged.
    landing = config.landing_snapshot()
    assert set(landing) == {f"processed/{batch}/good.csv", f"processed/{batch}/wide_line.csv"}
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
    config.put("to_process/good.csv", _csv(GOOD_ROWS))
    config.put("to_process/wide_header.csv", wide)
    summary, seconds = _timed_run(config)
    print(f"{config.kind}: over-wide header run took {seconds:.1f} s")
    batch = summary["batch_id"]

    landing = config.landing_snapshot()
    assert set(landing) == {
        f"processed/{batch}/good.csv",
        f"error_files/bad_schema/{batch}/wide_header.csv",
    }
    reason = f"header has 20,508 columns, more than the {MAX_COLUMNS:,} Spark's CSV reader accepts"
    row = _staging(config)["to_process/wide_header.csv"]
    assert (row["status"], row["category"]) == ("REJECTED", "bad_schema")
    assert row["reason"].startswith(reason) and "\n" not in row["reason"]
    entry = _summary_entry(summary, "to_process/wide_header.csv")
    assert (entry["outcome"], entry["reason"]) == ("bad_schema", row["reason"])
    assert summary["rows_total"] == summary["rows_loaded"] == len(GOOD_ROWS)
    _check_tables(config, GOOD_ROWS)


def _corrupt_after_validation(config: Config, original: bytes, corrupted: bytes):
    """At ``after_validation``: overwrite every landing object (outside processed/ and
    error_files/) whose bytes equal ``original`` — the file in to_process/ or a run-owned
    claimed copy of it, wherever Spark will read it from."""

    def corrupt() -> None:
        hits = [
            rel
            for rel, data in config._objects(config.landing)
            if data == original and not rel.startswith(("processed/", "error_files/"))
        ]
        assert hits, "nothing to corrupt: the validated bytes are gone"
        for rel in hits:
            config.put(rel, corrupted)

    return at_point("after_validation", corrupt)


def test_a_file_spark_fails_on_after_validation_goes_to_unknown(config: Config) -> None:
    original = _csv([POISON_ROW])
    corrupted = original + f"{WIDE_LINE}\n".encode()  # wider than the maxColumns validation set
    config.put("to_process/good.csv", _csv(GOOD_ROWS))
    config.put("to_process/poison.csv", original)
    with _corrupt_after_validation(config, original, corrupted):
        summary, seconds = _timed_run(config)
    print(f"{config.kind}: Spark failure pinned to one file, run took {seconds:.1f} s")
    batch = summary["batch_id"]

    landing = config.landing_snapshot()
    assert set(landing) == {
        f"processed/{batch}/good.csv",
        f"error_files/unknown/{batch}/poison.csv",
    }
    row = _staging(config)["to_process/poison.csv"]
    assert (row["status"], row["category"]) == ("REJECTED", "unknown")
    assert "Index 20480 out of bounds" in row["reason"] and "\n" not in row["reason"]
    assert row["rows_loaded"] is None  # none were read
    entry = _summary_entry(summary, "to_process/poison.csv")
    assert (entry["outcome"], entry["reason"]) == ("unknown", row["reason"])
    assert summary["files_by_outcome"] == {"accepted": 1, "unknown": 1}
    # Nothing of the poison file in any mart; the good file whole.
    assert {r["source_file"] for r in parquet_rows(config.mart_files()["customer_data_mart"])} == {
        "to_process/good.csv"
    }
    assert parquet_rows(config.mart_files()["quarantine"]) == []
    assert summary["rows_total"] == summary["rows_loaded"] == len(GOOD_ROWS)
    _check_tables(config, GOOD_ROWS)
