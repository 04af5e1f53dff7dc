"""The bad-input corpus (tests/corpus.py) in ONE in-process flow run, plus a resend run.

Checked for every file: where it ended (exactly one place, bytes unchanged), its staging row,
and for a loaded file every record's fate (mart row or quarantine reason). Then conservation:
input records = mart rows + quarantine rows, and the reporting tables equal a plain ``Decimal``
recomputation over the loaded records.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from corpus import (
    BAD_SCHEMA,
    CUSTOMERS,
    DUPLICATES,
    IGNORED,
    PROCESSED,
    SALES_TEAM,
    WRONG_TYPE,
    CorpusFile,
    build_corpus,
    expected_reason,
    load_corpus_dimensions,
)
from harness import Workspace, assert_reporting_tables_match
from helpers import (
    files_under,
    read_parquet_rows,
    read_table,
    sha256_bytes,
)

csv.field_size_limit(1 << 30)


def _records(data: bytes) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    return rows[0], [r for r in rows[1:] if r]


def _name(source_file: str) -> str:
    return source_file.removeprefix("to_process/")


@pytest.fixture(scope="module")
def corpus_run(spark, prefect_api, tmp_path_factory) -> dict[str, Any]:
    ws = Workspace(tmp_path_factory.mktemp("corpus")).create()
    load_corpus_dimensions(ws.root / "dims", ws.database_url)
    files = build_corpus()
    ws.drop({f.name: f.data for f in files})
    # Many corpus files are mostly bad rows (dates.csv: 9 of 10): the mass-quarantine guard would
    # hold them whole (tests/test_end_to_end.py tests it); here each record's fate is checked.
    summary = ws.run_flow(max_bad_row_fraction=1.0)
    return {
        "files": files,
        "summary": summary,
        "landing": ws.landing,
        "marts": ws.marts,
        "database_url": ws.database_url,
        "root": ws.root,
    }


def test_corpus_is_big_enough_and_covers_every_outcome() -> None:
    files = build_corpus()
    assert len(files) >= 40
    assert {f.outcome for f in files} == {PROCESSED, WRONG_TYPE, BAD_SCHEMA, DUPLICATES, IGNORED}
    assert len({f.name for f in files}) == len(files)


def test_expected_reasons_agree_with_the_rule_oracle() -> None:
    """The hand-written reasons and the independent oracle agree (well-formed records)."""
    for f in build_corpus():
        if f.outcome != PROCESSED:
            continue
        header, records = _records(f.data)
        assert len(records) == len(f.reasons), f.name
        for record, reason in zip(records, f.reasons, strict=True):
            if len(record) == len(header):
                assert expected_reason(dict(zip(header, record, strict=True))) == reason, (
                    f.name,
                    record[:8],
                )


@pytest.mark.slow
def test_every_file_ends_in_exactly_one_documented_place(corpus_run: dict[str, Any]) -> None:
    files: list[CorpusFile] = corpus_run["files"]
    landing: Path = corpus_run["landing"]
    batch = corpus_run["summary"]["batch_id"]
    everything = files_under(landing)
    assert len(everything) == len(files), everything  # nothing made, nothing lost
    for f in files:
        if f.outcome == IGNORED:
            where = f"to_process/{f.name}"
        elif f.outcome == PROCESSED:
            where = f"processed/{batch}/{f.name}"
        else:
            where = f"error_files/{f.outcome}/{batch}/{f.name}"
        assert where in everything, (f.name, f.outcome, everything)
        assert sha256_bytes((landing / where).read_bytes()) == sha256_bytes(f.data), f.name
    outcomes = {entry["file"]: entry["outcome"] for entry in corpus_run["summary"]["files"]}
    for f in files:
        if f.outcome != IGNORED:
            assert outcomes[f"to_process/{f.name}"] == (
                "accepted" if f.outcome == PROCESSED else f.outcome
            ), f.name


@pytest.mark.slow
def test_staging_rows_match_each_file(corpus_run: dict[str, Any]) -> None:
    rows = read_table(corpus_run["database_url"], "staging_files")
    by_name = {r["file_location"].removeprefix("to_process/"): r for r in rows}
    expected = {f.name: f for f in corpus_run["files"] if f.outcome != IGNORED}
    assert set(by_name) == set(expected)
    for name, f in expected.items():
        row = by_name[name]
        if f.outcome == PROCESSED:
            assert (row["status"], row["category"]) == ("COMPLETED", None), name
            assert row["rows_total"] == len(f.reasons), name
            assert row["rows_loaded"] == f.reasons.count(None), name
        else:
            assert (row["status"], row["category"]) == ("REJECTED", f.outcome), name
            assert row["reason"], name


@pytest.mark.slow
def test_every_record_is_loaded_or_quarantined_with_its_reason(
    corpus_run: dict[str, Any],
) -> None:
    marts: Path = corpus_run["marts"]
    accepted = [f for f in corpus_run["files"] if f.outcome == PROCESSED]
    quarantine = read_parquet_rows(marts / "quarantine")
    customer = read_parquet_rows(marts / "customer_data_mart")
    team = read_parquet_rows(marts / "sales_team_data_mart")

    want_q = Counter((f.name, r) for f in accepted for r in f.reasons if r is not None)
    got_q = Counter((_name(r["source_file"]), r["reason"]) for r in quarantine)
    assert got_q == want_q
    want_loaded = Counter(f.name for f in accepted for r in f.reasons if r is None)
    assert Counter(_name(r["source_file"]) for r in customer) == want_loaded
    assert Counter(_name(r["source_file"]) for r in team) == want_loaded

    total_in = sum(len(f.reasons) for f in accepted)
    summary = corpus_run["summary"]
    assert summary["rows_total"] == total_in == len(customer) + len(quarantine)
    assert summary["rows_loaded"] == len(customer)
    assert summary["rows_quarantined"] == len(quarantine)

    # Text is data: names come back verbatim (formulas, SQL, HTML, quotes, newlines, 2 MiB).
    names = defaultdict(list)
    for r in customer:
        names[_name(r["source_file"])].append(r["product_name"])
    for f in accepted:
        for product in f.products:
            assert product in names[f.name], (f.name, product[:40])


@pytest.mark.slow
def test_quarantine_keeps_the_original_values(corpus_run: dict[str, Any]) -> None:
    quarantine = read_parquet_rows(corpus_run["marts"] / "quarantine")
    nan = [r for r in quarantine if _name(r["source_file"]) == "nan_infinity.csv"]
    assert {r["price"] for r in nan} >= {"NaN", "Infinity", "-Infinity", "1e309"}
    big = [r for r in quarantine if _name(r["source_file"]) == "big_ids.csv"]
    assert "9223372036854775808" in {r["customer_id"] for r in big}
    malformed = [r for r in quarantine if r["reason"].startswith("malformed_row")]
    assert len(malformed) == 3 and all(r["raw_record"] for r in malformed)
    # The 20,481-field line: its raw text is kept, cut to 4,096 characters with a note.
    wide = next(f for f in build_corpus() if f.name == "wide_line.csv")
    line = wide.data.decode().splitlines()[-1]
    (cut,) = [r for r in malformed if _name(r["source_file"]) == "wide_line.csv"]
    assert cut["raw_record"] == line[:4096] + f" [cut: {len(line)} characters in all]"


@pytest.mark.slow
def test_reporting_tables_equal_a_decimal_recomputation(corpus_run: dict[str, Any]) -> None:
    """Both reporting tables equal the harness oracle (names, monthly totals, incentives) over
    the records the rule oracle loads."""
    loaded = []
    for f in corpus_run["files"]:
        if f.outcome != PROCESSED:
            continue
        header, records = _records(f.data)
        for record, reason in zip(records, f.reasons, strict=True):
            if reason is None:
                loaded.append({k: v.strip(" ") for k, v in zip(header, record, strict=True)})
    assert loaded
    url = corpus_run["database_url"]
    assert_reporting_tables_match(
        lambda table: read_table(url, table), loaded, CUSTOMERS, SALES_TEAM
    )


@pytest.mark.slow
def test_resending_the_corpus_loads_nothing_twice(
    corpus_run: dict[str, Any], tmp_path: Path
) -> None:
    """Second run: every loaded file again -> duplicates; tables and marts unchanged. On a copy
    of the corpus run's workspace: the other tests read that one as the first run left it."""
    ws = Workspace(tmp_path / "ws")
    shutil.copytree(corpus_run["root"], ws.root)
    landing, marts, url = ws.landing, ws.marts, ws.database_url
    loaded = [f for f in corpus_run["files"] if f.outcome == PROCESSED]
    before = (
        read_table(url, "customer_monthly_purchase"),
        read_table(url, "sales_team_incentive"),
        files_under(marts, ".parquet"),
    )
    ws.drop({f.name: f.data for f in loaded})
    summary = ws.run_flow(max_bad_row_fraction=1.0)
    assert summary["files_by_outcome"] == {DUPLICATES: len(loaded)}
    assert summary["rows_total"] == 0
    after = (
        read_table(url, "customer_monthly_purchase"),
        read_table(url, "sales_team_incentive"),
        files_under(marts, ".parquet"),
    )
    assert after == before
    for f in loaded:
        where = landing / "error_files" / DUPLICATES / summary["batch_id"] / f.name
        assert where.read_bytes() == f.data
    assert files_under(landing / "to_process") == [
        f.name for f in corpus_run["files"] if f.outcome == IGNORED
    ]
