"""Issue 16 §1 with Spark: a file read split by line gives exactly the rows ``multiLine`` gives.

The same files (the bad-input corpus of tests/corpus.py plus larger files built here) go through
the flow twice in this process (local[2]): once as shipped, where the files the validation scan
found splittable are read in line mode, and once with the scan made to find no file splittable,
so every file is read with ``multiLine`` as before issue 16. The marts, the quarantine
(``raw_record`` included), the reporting tables and the per-file row counts must be identical.
During both runs ``spark.sql.files.maxPartitionBytes`` is 4 KiB, so line-mode reads really cut
the files into many tasks (cuts fall inside CRLF pairs, quoted fields, after a BOM...). The
product reads a splittable file in line mode only when Spark cuts it into several tasks; here
every splittable file is, so the parser of each mode meets every corpus case.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from corpus import HEADER_LINE, PROCESSED, build_corpus, lines, load_corpus_dimensions, rec
from harness import Workspace
from helpers import count_csv_records, read_parquet_rows, read_table, write_bytes

from sales_etl.validators import model

csv.field_size_limit(1 << 30)  # long_line.csv: a 2 MiB field

SPLIT_BYTES = 4096
MARTS = ("customer_data_mart", "sales_team_data_mart", "quarantine")
GOOD_DATE = "2024-03-05"


def _built_files() -> dict[str, bytes]:
    """Files of several Spark splits each, and files that must keep multiLine."""
    records = []
    for i in range(400):
        row = rec(customer=str(1 + i % 3), product=f"item {i}", quantity=str(1 + i % 4))
        row[7] = f"{10 * (1 + i % 4)}.00"
        if i % 5 == 0:
            row[2] = f'box "{i}", large'  # quoted comma and doubled quotes
        if i % 13 == 0:
            row[6], row[7] = "0", "0.00"  # non_positive_quantity
        note = f"n{i}" if i % 3 else 'a "note", with a comma'
        if i % 37 == 0:
            records.append([*row, note, "one too many"])
        elif i % 41 == 0:
            records.append(row[:5])
        else:
            records.append([*row, note])
    crlf = lines(records, HEADER_LINE + ",note", end="\r\n").encode()
    quoted_lf = "\n".join(
        ",".join(f'"{v}"' for v in r) for r in [HEADER_LINE.split(","), *[rec()] * 300]
    )
    return {
        "split_bom_crlf_extra.csv": b"\xef\xbb\xbf" + crlf.removesuffix(b"\r\n"),
        "split_all_quoted.csv": quoted_lf.encode(),
        "split_malformed.csv": lines(
            [
                rec(),
                [*rec(), "x"],
                rec()[:-1],
                [" 1 ", " 10 ", "pen", GOOD_DATE, "100", "10", "2", "20"],
            ]
            * 60
        ).encode(),
        "whole_spaces_line.csv": (lines([rec()]) + "   \n" + ",".join(rec()) + "\n").encode(),
        "whole_mixed_ends.csv": lines([rec()] * 40, end="\r\n").encode() + b"1,10,pen\n",
    }


#: Files the scan must find splittable / not splittable (the rest of the corpus is not pinned).
SPLIT = {
    "split_bom_crlf_extra.csv",
    "split_all_quoted.csv",
    "split_malformed.csv",
    "crlf.csv",
    "bom.csv",
    "no_final_newline.csv",
    "quoted_all.csv",
    "reordered_extra_columns.csv",
    "malformed_rows.csv",
    "long_line.csv",
    "blank_lines.csv",
}
WHOLE = {"quoted_fields.csv", "whole_spaces_line.csv", "whole_mixed_ends.csv"}


def _inputs() -> dict[str, bytes]:
    corpus = {f.name: f.data for f in build_corpus() if f.outcome == PROCESSED}
    return {**corpus, **_built_files()}


def _run(spark, root: Path, every_file_whole: bool) -> dict[str, Any]:
    ws = Workspace(root).create()
    database_url, marts = ws.database_url, ws.marts
    load_corpus_dimensions(ws.root / "dims", database_url)
    ws.drop(_inputs())
    with pytest.MonkeyPatch.context() as patch:
        if every_file_whole:  # the product before issue 16: multiLine for every file
            patch.setattr(model._LineModeCheck, "finish", lambda self: False)
        else:
            # Every splittable file in line mode, not only those big enough to be worth it
            # (test_line_mode_only_for_files_spark_cuts): the small corpus files too.
            patch.setattr(
                "sales_etl.tasks.marts.line_mode_files", lambda spark, sizes, keys: set(keys)
            )
        summary = ws.run_flow(max_bad_row_fraction=1.0)
    marts_rows = {}
    for mart in MARTS:
        rows = [
            {k: v for k, v in r.items() if k != "batch_id"} for r in read_parquet_rows(marts / mart)
        ]
        marts_rows[mart] = sorted(rows, key=repr)
    tables = {
        "customer_monthly_purchase": read_table(
            database_url, "customer_monthly_purchase", ["year", "month", "customer_id"]
        ),
        "sales_team_incentive": read_table(
            database_url, "sales_team_incentive", ["year", "month", "sales_person_id"]
        ),
    }
    return {"summary": summary, "marts": marts_rows, "tables": tables}


@pytest.fixture(scope="module")
def runs(spark, prefect_api, tmp_path_factory) -> dict[str, dict[str, Any]]:
    before = spark.conf.get("spark.sql.files.maxPartitionBytes")
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(SPLIT_BYTES))
    try:
        return {
            mode: _run(spark, tmp_path_factory.mktemp(mode.replace(" ", "_")), mode == "multiLine")
            for mode in ("detected", "multiLine")
        }
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", before)


def _per_file(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f["file"].removeprefix("to_process/"): {k: v for k, v in f.items() if k != "spark_read"}
        for f in summary["files"]
    }


@pytest.mark.slow
def test_the_scan_chose_line_mode_where_it_is_safe(runs: dict[str, dict[str, Any]]) -> None:
    read = {
        f["file"].removeprefix("to_process/"): f.get("spark_read")
        for f in runs["detected"]["summary"]["files"]
    }
    assert {name for name in SPLIT if read[name] != "split by line"} == set()
    assert {name for name in WHOLE if read[name] != "multiLine"} == set()
    forced = {f.get("spark_read") for f in runs["multiLine"]["summary"]["files"]}
    assert forced == {"multiLine"}
    assert len(read) == len(_inputs())


@pytest.mark.slow
def test_both_modes_give_the_same_rows_everywhere(runs: dict[str, dict[str, Any]]) -> None:
    detected, whole = runs["detected"], runs["multiLine"]
    assert _per_file(detected["summary"]) == _per_file(whole["summary"])
    for key in ("rows_total", "rows_loaded", "rows_quarantined", "quarantine_reasons"):
        assert detected["summary"][key] == whole["summary"][key], key
    for mart in MARTS:
        assert detected["marts"][mart] == whole["marts"][mart], mart
    assert detected["tables"] == whole["tables"]
    # Not vacuous: the built files' rows are there, malformed ones quarantined with their text.
    quarantine = detected["marts"]["quarantine"]
    built = [r for r in quarantine if r["source_file"].endswith("split_bom_crlf_extra.csv")]
    too_many = sum(1 for i in range(400) if i % 37 == 0)
    too_few = sum(1 for i in range(400) if i % 41 == 0 and i % 37)
    assert sum(r["reason"].startswith("malformed_row") for r in built) == too_many + too_few
    assert any(r["raw_record"] == ",".join(rec()) + ",x" for r in quarantine)
    spaces = [r for r in quarantine if r["source_file"].endswith("whole_spaces_line.csv")]
    assert [r["raw_record"] for r in spaces] == ["   "]
    # Every record of a file read split by line is counted (the csv module's count).
    inputs = _inputs()
    totals = {name: entry["rows_total"] for name, entry in _per_file(detected["summary"]).items()}
    assert {name: totals[name] for name in SPLIT} == {
        name: count_csv_records(inputs[name]) for name in SPLIT
    }
    assert sum(totals[name] for name in SPLIT) > 900  # 400 + 300 + 240 built, + the corpus


def test_a_splittable_file_is_read_in_several_tasks(spark, tmp_path: Path) -> None:
    from sales_etl.storage import open_store
    from sales_etl.tasks.marts import read_accepted_files

    data = _built_files()["split_bom_crlf_extra.csv"]
    write_bytes(tmp_path / "to_process" / "f.csv", data)
    store = open_store(str(tmp_path))
    header = [*HEADER_LINE.split(","), "note"]
    files = [("to_process/f.csv", header)]
    before = spark.conf.get("spark.sql.files.maxPartitionBytes")
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(SPLIT_BYTES))
    try:
        split = read_accepted_files(spark, store, files, splittable={"to_process/f.csv"})
        whole = read_accepted_files(spark, store, files)
        assert split.rdd.getNumPartitions() == -(-len(data) // SPLIT_BYTES) > 1
        assert whole.rdd.getNumPartitions() == 1
        assert sorted(map(tuple, split.drop("file_path").collect())) == sorted(
            map(tuple, whole.drop("file_path").collect())
        )
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", before)


def test_line_mode_only_for_files_spark_cuts(spark, tmp_path: Path) -> None:
    """Line mode costs more per byte than multiLine: only a file Spark cuts into two tasks or
    more is read that way. The split size is Spark's (FilePartition.maxSplitBytes), checked
    here against the partitions Spark really makes."""
    from pyspark.sql import functions as F

    from sales_etl.tasks.marts import line_mode_files

    sizes = {"big.csv": 10 * 1024, "small.csv": 1024}
    line = (",".join(rec()) + "\n").encode()
    for name, size in sizes.items():  # whole lines, just under ``size`` bytes
        data = HEADER_LINE.encode() + b"\n" + line * (size // len(line))
        data = data[: data.rfind(b"\n", 0, size) + 1]
        write_bytes(tmp_path / name, data)
        sizes[name] = len(data)
    settings = {
        "spark.sql.files.maxPartitionBytes": "4096",
        "spark.sql.files.openCostInBytes": "1024",
    }
    before = {k: spark.conf.get(k) for k in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        # (10 KiB + 1 KiB + 2 open costs) / 2 cores > 4096: the split size is 4096 bytes.
        assert line_mode_files(spark, sizes, set(sizes)) == {"big.csv"}
        assert line_mode_files(spark, sizes, {"small.csv"}) == set()
        frame = spark.read.option("header", "true").csv([str(tmp_path / n) for n in sizes])
        spread = dict(
            frame.select(F.input_file_name().alias("f"), F.spark_partition_id().alias("p"))
            .groupBy("f")
            .agg(F.countDistinct("p"))
            .collect()
        )
        tasks = {Path(f).name: n for f, n in spread.items()}
        assert tasks["small.csv"] == 1
        assert tasks["big.csv"] == -(-sizes["big.csv"] // 4096) > 1
    finally:
        for key, value in before.items():
            spark.conf.set(key, value)
