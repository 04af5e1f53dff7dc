"""Over-wide records without Spark: the scan's widest-line figure, the validator's limits, and
the rule that pins a Spark failure on one file (issue 13 §2).

The end-to-end runs (Spark, local folders and S3) are in tests/test_poison_files.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import feed_in_chunks
from hypothesis import given, settings
from hypothesis import strategies as st

from sales_etl.storage import open_store
from sales_etl.tasks.poison import classify_without_poison_files, named_paths
from sales_etl.validators import model
from sales_etl.validators.builtin import HeaderSchemaValidator
from sales_etl.validators.model import IncomingFile

HEADER = "customer_id,store_id,product_name,sales_date,sales_person_id,price,quantity,total_cost"
ROW = "1,10,pen,2024-03-05,100,10.00,2,20.00"


def _oracle(data: bytes, floor: int) -> int:
    """Fields (commas + 1) of the widest line of at least ``floor`` bytes; 0 if none."""
    lines = re.split(rb"\r\n|\r|\n", data)
    return max((line.count(b",") + 1 for line in lines if len(line) >= floor), default=0)


def _widest(data: bytes, floor: int, cuts: list[int]) -> int:
    widest = model._WidestLine(floor)
    feed_in_chunks(widest.feed, data, cuts)
    return widest.finish()


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(st.sampled_from([b"a", b",", b"\n", b"\r", b'"', b",,,,", b"xxxxxxx"])).map(
        b"".join
    ),
    floor=st.integers(1, 12),
    cuts=st.lists(st.integers(0, 200), max_size=8),
)
def test_widest_line_equals_a_plain_split_under_any_chunking(
    data: bytes, floor: int, cuts: list[int]
) -> None:
    assert _widest(data, floor, cuts) == _oracle(data, floor)


def _scan(tmp_path: Path, data: bytes) -> IncomingFile:
    (tmp_path / "to_process").mkdir(exist_ok=True)
    (tmp_path / "to_process" / "f.csv").write_bytes(data)
    return IncomingFile.scan(open_store(str(tmp_path)), "to_process/f.csv")


def test_scan_counts_a_wide_line_across_chunk_boundaries(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(model, "CHUNK_BYTES", 4096)  # the wide line spans 6 chunks
    wide = ROW + "," * 20_473  # 20,481 fields
    assert _scan(tmp_path, f"{HEADER}\n{ROW}\r\n{wide}\r\n{ROW}\n".encode()).max_line_fields == (
        20_481
    )
    assert _scan(tmp_path, f"{HEADER}\n{ROW}\n".encode()).max_line_fields == 0
    long_text = "L" * 30_000  # a long line without commas: 1 field
    assert _scan(tmp_path, f"{HEADER}\n{long_text}\n".encode()).max_line_fields == 1


def _verdict(tmp_path: Path, data: bytes):
    return HeaderSchemaValidator().sales_etl_validate_file(file=_scan(tmp_path, data))


def test_a_header_wider_than_spark_accepts_is_bad_schema(tmp_path: Path) -> None:
    extras = ",".join(f"x{i}" for i in range(20_480 - 8 + 1))  # 20,481 columns
    rejection = _verdict(tmp_path, f"{HEADER},{extras}\n".encode())
    assert rejection is not None and rejection.category == "bad_schema"
    assert rejection.reason == (
        "header has 20,481 columns, more than the 20,480 Spark's CSV reader accepts "
        "(its maxColumns option)"
    )
    at_limit = ",".join(f"x{i}" for i in range(20_480 - 8))  # exactly 20,480: accepted
    assert _verdict(tmp_path, f"{HEADER},{at_limit}\n{ROW}\n".encode()) is None


def test_a_line_past_the_record_limit_rejects_the_file(tmp_path: Path) -> None:
    limit = model.MAX_RECORD_FIELDS
    past = ROW + "," * (limit - 8 + 1)  # limit + 1 fields
    rejection = _verdict(tmp_path, f"{HEADER}\n{past}\n".encode())
    assert rejection is not None and rejection.category == "bad_schema"
    assert f"a line has up to {limit + 1:,} fields, more than the {limit:,}" in rejection.reason
    at_limit = ROW + "," * (limit - 8)
    assert _verdict(tmp_path, f"{HEADER}\n{at_limit}\n".encode()) is None


# --- pinning a failure on one file (plain callables stand in for the Spark jobs) ------------------


class SparkLikeError(Exception):
    pass


def _stage(poison: set[str], broken: bool = False, transient: bool = False):
    """run/probe/control callables failing like Spark would, with a log of what ran."""
    calls: list[tuple[str, tuple[str, ...]]] = []

    def work(kind: str, keys: tuple[str, ...]) -> None:
        calls.append((kind, keys))
        if transient:
            raise ConnectionRefusedError("storage down")
        if broken:
            raise SparkLikeError("the stage is broken for every file")
        bad = [k for k in keys if k in poison]
        if bad:
            raise SparkLikeError(
                f"[FAILED_READ_FILE.NO_HINT] Encountered error while reading file "
                f"file:///landing/{bad[0]}.  SQLSTATE: KD001\nCaused by: Index 20480 out of bounds"
            )

    return (
        calls,
        lambda files: work("run", tuple(k for k, _ in files)),
        lambda files: work("probe", tuple(k for k, _ in files)),
        lambda header: work("control", ()),
    )


FILES = [(f"to_process/{n}.csv", ["h"]) for n in "abcdef"]


def _key(path: str) -> str | None:
    return path.removeprefix("file:///landing/") if path.startswith("file:///landing/") else None


def test_a_named_file_is_confirmed_alone_and_taken_out() -> None:
    calls, run, probe, control = _stage({"to_process/c.csv"})
    kept, held = classify_without_poison_files(FILES, run, probe, control, _key)
    assert [k for k, _ in kept] == [k for k, _ in FILES if k != "to_process/c.csv"]
    assert set(held) == {"to_process/c.csv"}
    assert held["to_process/c.csv"].category == "unknown"
    assert "Index 20480 out of bounds" in held["to_process/c.csv"].reason
    assert calls[1:3] == [("probe", ("to_process/c.csv",)), ("control", ())]


def test_an_unnamed_failure_is_bisected_to_its_file() -> None:
    calls, run, probe, control = _stage({"to_process/e.csv", "to_process/b.csv"})
    kept, held = classify_without_poison_files(FILES, run, probe, control, lambda p: None)
    assert set(held) == {"to_process/b.csv", "to_process/e.csv"}
    assert [k for k, _ in kept] == ["to_process/a.csv", "to_process/c.csv", "to_process/d.csv",
                                    "to_process/f.csv"]  # fmt: skip
    assert calls[-1] == ("run", tuple(k for k, _ in kept))


def test_a_stage_broken_for_every_file_holds_nothing() -> None:
    calls, run, probe, control = _stage(set(), broken=True)
    with pytest.raises(SparkLikeError, match="broken for every file"):
        classify_without_poison_files(FILES, run, probe, control, _key)
    # The control failed too: no file was blamed, the scan never ran without one.
    assert [c for c in calls if c[0] == "run"] == [("run", tuple(k for k, _ in FILES))]


def test_a_transient_fault_is_raised_without_probing() -> None:
    calls, run, probe, control = _stage(set(), transient=True)
    with pytest.raises(ConnectionRefusedError):
        classify_without_poison_files(FILES, run, probe, control, _key)
    assert calls == [("run", tuple(k for k, _ in FILES))]


def test_the_loop_is_bounded_and_never_holds_the_last_file() -> None:
    everything = {k for k, _ in FILES}
    calls, run, probe, control = _stage(everything)
    with pytest.raises(SparkLikeError):  # 5 taken out, the last one alone: raise, hold nothing
        classify_without_poison_files(FILES, run, probe, control, _key)
    calls, run, probe, control = _stage(everything)
    with pytest.raises(SparkLikeError):
        classify_without_poison_files(FILES, run, probe, control, _key, max_files=2)
    assert sum(kind == "run" for kind, _ in calls) == 3


def test_named_paths_reads_spark_messages() -> None:
    exc = SparkLikeError(
        "An error occurred\n[FAILED_READ_FILE.NO_HINT] Encountered error while reading file "
        "s3a://bucket/landing/to_process/a%20b.csv.  SQLSTATE: KD001"
    )
    assert named_paths(exc) == ["s3a://bucket/landing/to_process/a%20b.csv"]
    assert named_paths(SparkLikeError("no path here")) == []
