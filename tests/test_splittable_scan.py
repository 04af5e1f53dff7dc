"""Issue 16 §1, without Spark: the validation scan's ``splittable`` flag (validators/model.py
``_LineModeCheck``) against plain references, under any chunking of the bytes.

The Spark side (both read modes give the same rows) is tests/test_splittable_reads.py.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from helpers import feed_in_chunks
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sales_etl.storage import open_store
from sales_etl.validators import model
from sales_etl.validators.model import IncomingFile


def _splittable(data: bytes, cuts: list[int]) -> bool:
    """The check fed ``data`` cut at ``cuts`` (as the scan feeds it 1 MiB chunks)."""
    check = model._LineModeCheck()
    feed_in_chunks(check.feed, data, cuts)
    return check.finish()


def _records(text: str) -> list[list[str]]:
    """The csv module's records, empty lines left out (both Spark modes skip them)."""
    return [r for r in csv.reader(io.StringIO(text, newline="")) if r]


def _quote(value: str) -> str:
    """RFC 4180 quoting where needed (the csv module's writer would not quote a CR when its
    line terminator is LF)."""
    if any(ch in value for ch in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


_FIELD = st.text(alphabet=st.sampled_from(list('ab ,"\r\n')), max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(st.lists(_FIELD, min_size=2, max_size=4), min_size=1, max_size=8),
    terminator=st.sampled_from(["\n", "\r\n", "\r"]),
    bom=st.booleans(),
    final_line_end=st.booleans(),
    cuts=st.lists(st.integers(0, 120), max_size=8),
)
def test_well_formed_csv_is_splittable_exactly_when_no_field_holds_a_line_break(
    rows: list[list[str]],
    terminator: str,
    bom: bool,
    final_line_end: bool,
    cuts: list[int],
) -> None:
    """RFC 4180 text (two fields or more per record, so no line is blank): splittable iff the
    csv module, reading it back, finds no field with a CR or LF."""
    text = "".join(",".join(_quote(v) for v in row) + terminator for row in rows)
    if not final_line_end:
        text = text.removesuffix(terminator)
    data = ("\ufeff" if bom else "").encode() + text.encode()
    breaks_in_fields = any("\n" in f or "\r" in f for r in _records(text) for f in r)
    assert _splittable(data, cuts) is (not breaks_in_fields)


@settings(max_examples=500, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from(list('a ,"\t\r\n')), max_size=40),
    cuts=st.lists(st.integers(0, 45), max_size=8),
)
@example(text='h\nx"y,"z\nw",a"b\n', cuts=[])  # every line's parity is even
@example(text='"a"b,"c\nd"\n', cuts=[7])
def test_a_splittable_file_reads_the_same_line_by_line(text: str, cuts: list[int]) -> None:
    """Any text: the answer does not depend on the chunking, and when it is "splittable",
    reading the text whole gives the records of reading each physical line on its own (the
    csv module standing in for Spark's two modes), and no line is only whitespace (a line
    Spark's line mode would drop)."""
    data = text.encode()
    answer = _splittable(data, [])
    assert _splittable(data, cuts) is answer
    if answer:
        lines = re.split(r"\r\n|\r|\n", text)
        assert not any(line and not line.strip(" \t") for line in lines)
        assert len({m.group() for m in re.finditer(r"\r\n|\r|\n", text)}) <= 1
        assert _records(text) == [r for line in lines for r in _records(line)]


@pytest.mark.parametrize(
    ("data", "expected", "why"),
    [
        (b"a,b\n1,2\n", True, "plain lines"),
        (b'a,b\n"1, ""x""",2\n', True, "quoted comma and doubled quotes"),
        (b'\xef\xbb\xbf"a",b\r\n1,2', True, "BOM, quoted header, CRLF, no final line end"),
        (b'a,b\n"1\n2",3\n', False, "a quoted field holds a line break"),
        (b"a,b\n1,2\n   \n3,4\n", False, "a line of spaces (line mode drops it)"),
        (b"a,b\n1,2\n\x0c\n", False, "a line of a form feed (Java's trim removes it)"),
        (b"a,b\r\n1,2\n", False, "CRLF and LF in one file"),
        (b'a,b\nx"y,"z\nw",2\n', False, "a quote inside an unquoted field: parity is misled"),
        (b'a,b\n"x" ,2\n', False, "text after a closing quote"),
        (b"a,b\n\n\n1,2\n", True, "empty lines (both modes skip them)"),
    ],
)
def test_examples(data: bytes, expected: bool, why: str) -> None:
    assert _splittable(data, []) is expected, why


def test_the_scan_records_it_across_chunks(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(model, "CHUNK_BYTES", 64)  # every record spans chunk boundaries
    (tmp_path / "to_process").mkdir()
    store = open_store(str(tmp_path))
    rows = "".join(f'{i},"name, {i}",x\r\n' for i in range(50))
    (tmp_path / "to_process" / "a.csv").write_bytes(f"h1,h2,h3\r\n{rows}".encode())
    (tmp_path / "to_process" / "b.csv").write_bytes(
        f'h1,h2,h3\r\n{rows}7,"two\r\nlines",x\r\n'.encode()
    )
    assert IncomingFile.scan(store, "to_process/a.csv").splittable is True
    assert IncomingFile.scan(store, "to_process/b.csv").splittable is False


def test_a_line_open_past_the_limit_keeps_multiline(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(model, "MAX_SPLITTABLE_LINE_BYTES", 1000)
    long_line = b"a,b\n" + b"x" * 1500 + b",1\n"
    assert _splittable(long_line, [10, 600, 1200]) is False  # 1,196 bytes open, no line end yet
    assert _splittable(long_line, [10, 600]) is True  # at most 596 bytes open
