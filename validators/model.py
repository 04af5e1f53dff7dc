"""What a validator sees (:class:`IncomingFile`) and what it may answer (:class:`Rejection`).

An :class:`IncomingFile` is built once per landed object by :meth:`IncomingFile.scan`, which
streams the object a single time and records everything the built-in validators need (size,
checksum, whether the bytes are UTF-8 text, the first 64 KiB). Plugins that need the whole file
call :meth:`IncomingFile.open`.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import posixpath
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from sales_etl.settings import Settings

if TYPE_CHECKING:
    from sales_etl.storage.base import ObjectStore

#: The columns every sales file must have, in any order, with exactly these names. The one
#: definition of the input contract: validators, Spark transforms and the generator import it.
MANDATORY_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "store_id",
    "product_name",
    "sales_date",
    "sales_person_id",
    "price",
    "quantity",
    "total_cost",
)

#: Rejection categories; each is also the ``error_files/<category>/`` folder name.
WRONG_FILE_TYPE = "wrong_file_types"
BAD_SCHEMA = "bad_schema"
DUPLICATE = "duplicates"
UNKNOWN = "unknown"
#: Not a validator verdict: the Spark stage holds a file whose share of bad rows exceeds
#: ``SALES_ETL_MAX_BAD_ROW_FRACTION`` (``sales_etl.tasks.marts.bad_row_hold``).
TOO_MANY_BAD_ROWS = "too_many_bad_rows"

#: How many leading bytes of the object :attr:`IncomingFile.head` keeps.
HEAD_BYTES = 64 * 1024
#: Chunk size used when streaming an object.
CHUNK_BYTES = 1024 * 1024
#: A header record longer than this (in characters) is refused rather than read into memory.
MAX_HEADER_CHARS = 1024 * 1024

#: Spark's CSV reader refuses a record of more fields than its ``maxColumns`` option, default
#: 20,480 (Spark's "CSV Files" data source options,
#: https://spark.apache.org/docs/latest/sql-data-sources-csv.html; the same default in pyspark
#: 4.3's ``CSVOptions``): "TextParsingException ... Index 20480 out of bounds for length 20480".
SPARK_CSV_MAX_COLUMNS = 20_480

#: The widest record the Spark stage reads (it raises ``maxColumns`` per read group to cover a
#: file's widest line, so that line is quarantined as ``malformed_row``); a file with a wider
#: line is rejected whole (``bad_schema``). univocity allocates an array slot per allowed column
#: for each parser: 1,000,000 columns cost ~8 MB of heap per reading task and no measurable
#: time (docs/reliability.md "Poison files").
MAX_RECORD_FIELDS = 1_000_000

#: The line-mode check keeps the line left open at the end of a chunk in memory until it ends;
#: past this many bytes it gives up and :attr:`IncomingFile.splittable` is False (the file is
#: read with ``multiLine``, as before).
MAX_SPLITTABLE_LINE_BYTES = 16 * CHUNK_BYTES

#: Longest rejection category (``staging_files.category`` is ``VARCHAR(64)``).
MAX_CATEGORY_CHARS = 64

_SLUG = re.compile(r"[a-z0-9_]+")
_CR_TO_LF = bytes.maketrans(b"\r", b"\n")
_BOM = "\ufeff"


@dataclass(frozen=True)
class Rejection:
    """A validator's verdict that a file must not be loaded.

    Attributes:
        category: Slug (``[a-z0-9_]+``, at most 64 characters) naming the ``error_files/<category>/`` folder the file
            is moved to; usually one of :data:`WRONG_FILE_TYPE`, :data:`BAD_SCHEMA`,
            :data:`DUPLICATE`, :data:`UNKNOWN`.
        reason: A short human-readable sentence saying what is wrong with the file.
    """

    category: str
    reason: str

    def __post_init__(self) -> None:
        # The category becomes a folder name: refuse anything that is not a plain slug.
        if not isinstance(self.category, str) or not _SLUG.fullmatch(self.category):
            raise ValueError(
                f"rejection category must be a slug matching [a-z0-9_]+, got {self.category!r}"
            )
        if len(self.category) > MAX_CATEGORY_CHARS:
            raise ValueError(
                f"rejection category must be at most {MAX_CATEGORY_CHARS} characters, "
                f"got {len(self.category)}"
            )
        if not isinstance(self.reason, str) or not self.reason.strip():
            raise ValueError("rejection reason must be a non-empty string")


class IncomingFile:
    """One landed object, described for validators.

    Build it with :meth:`scan`, which reads the object exactly once. Validators read the
    attributes below; those that need every byte call :meth:`open`.

    Attributes:
        key: The object's key in its store (``to_process/sales_1.csv``).
        name: The key's last segment (``sales_1.csv``).
        extension: The name's extension, lower-case, with the dot (``.csv``; ``""`` if none).
        size: Size in bytes.
        checksum: Hex SHA-256 of the bytes (how duplicates are recognised).
        utf8_error: ``None`` if the bytes are valid UTF-8 (a leading byte-order mark is fine),
            else where and why decoding failed (``"byte 0xe9 at offset 12: invalid
            continuation byte"``).
        has_nul: Whether a NUL byte occurs anywhere (binary data, or UTF-16/32 text).
        head: The first 64 KiB of the object (all of it when smaller).
        max_line_fields: An upper bound of the fields of the widest line that is at least
            :data:`SPARK_CSV_MAX_COLUMNS` bytes long (its commas + 1; exact for a line without
            quotes), ``0`` when every line is shorter: a line of n fields holds n - 1 commas,
            so only such a line can be wider than Spark's default ``maxColumns``. Lines end at
            LF, CR or CRLF. A quoted field holding line breaks splits its record into several
            lines here; a record that is wider than the limit only across such lines is missed
            (Spark then fails on the file, and the Spark stage holds it in
            ``error_files/unknown/``: ``sales_etl.tasks.marts.classify_without_poison_files``).
        splittable: Whether Spark may read the file in line mode, split into many tasks, and
            get exactly the rows its ``multiLine`` mode gives (issue 16 §1): every record is one
            physical line. False when a quoted field holds a line break (RFC 4180), and also,
            to be safe, when the two modes are known to differ or might: a line of only
            whitespace (line mode drops it, ``multiLine`` quarantines it), line ends of more
            than one kind (CRLF and LF...), a ``"`` that is not RFC 4180 quoting (inside an
            unquoted field, or text after a closing quote), a line that stays open
            across more than :data:`MAX_SPLITTABLE_LINE_BYTES`. See :class:`_LineModeCheck`.
        settings: The run's :class:`~sales_etl.settings.Settings`.
    """

    def __init__(
        self,
        *,
        store: ObjectStore,
        key: str,
        size: int,
        checksum: str,
        utf8_error: str | None,
        has_nul: bool,
        head: bytes,
        max_line_fields: int = 0,
        splittable: bool = False,
        settings: Settings | None = None,
        read_from: str | None = None,
    ) -> None:
        if settings is None:
            settings = Settings()
        self._store = store
        self._read_key = read_from or key
        self.key = key
        self.name = posixpath.basename(key)
        self.extension = posixpath.splitext(self.name)[1].lower()
        self.size = size
        self.checksum = checksum
        self.utf8_error = utf8_error
        self.has_nul = has_nul
        self.head = head
        self.max_line_fields = max_line_fields
        self.splittable = splittable
        self.settings = settings
        self._header: list[str] | None = None
        self._header_error: str | None = None

    @classmethod
    def scan(
        cls,
        store: ObjectStore,
        key: str,
        settings: Settings | None = None,
        *,
        read_from: str | None = None,
    ) -> IncomingFile:
        """Stream ``key`` from ``store`` once and describe it.

        Args:
            store: The object store holding the file (the landing zone).
            key: The object's key, e.g. ``to_process/sales_1.csv``: what validators see as
                :attr:`key` and :attr:`name`.
            settings: The run's settings; defaults to ``Settings()``.
            read_from: Where the bytes are read from, if not ``key``: the run's claimed copy
                of it (``sales_etl.journal.claim_files``), so validators judge the original
                name and the bytes Spark will load. :meth:`open` reads it too.

        Returns:
            The file's description: size, SHA-256, UTF-8 validity, NUL bytes, its head, its
            widest line and whether Spark may split it.

        Raises:
            sales_etl.storage.StorageError: The object cannot be read.
        """
        digest = hashlib.sha256()
        decoder = codecs.getincrementaldecoder("utf-8")()
        head = bytearray()
        size = 0
        utf8_error: str | None = None
        has_nul = False
        widest = _WidestLine(SPARK_CSV_MAX_COLUMNS)
        line_mode = _LineModeCheck()
        with store.open(read_from or key) as stream:
            while chunk := stream.read(CHUNK_BYTES):
                digest.update(chunk)
                if len(head) < HEAD_BYTES:
                    head += chunk[: HEAD_BYTES - len(head)]
                has_nul = has_nul or b"\x00" in chunk
                widest.feed(chunk)
                line_mode.feed(chunk)
                if utf8_error is None:
                    utf8_error = _decode_step(decoder, chunk, offset=size, final=False)
                size += len(chunk)
        if utf8_error is None:  # a multi-byte sequence cut off by the end of the file
            utf8_error = _decode_step(decoder, b"", offset=size, final=True)
        return cls(
            store=store,
            key=key,
            size=size,
            checksum=digest.hexdigest(),
            utf8_error=utf8_error,
            has_nul=has_nul,
            head=bytes(head),
            max_line_fields=widest.finish(),
            splittable=line_mode.finish(),
            settings=settings,
            read_from=read_from,
        )

    @property
    def header(self) -> list[str]:
        """The file's first CSV record: its column names, exactly as written.

        Parsed with :mod:`csv` (RFC 4180: ``"`` quotes, doubled quotes, commas and line breaks
        inside quoted names); a leading UTF-8 byte-order mark is dropped and CRLF line ends are
        fine. Names are not trimmed or case-folded. A header longer than the 64 KiB head is
        read from the store.

        Raises:
            ValueError: The file is not UTF-8 text, is empty, its first line is blank, the
                first record is malformed or longer than 1 MiB.
        """
        if self._header is None:
            if self._header_error is not None:  # do not re-read a long header to fail again
                raise ValueError(self._header_error)
            try:
                self._header = self._read_header()
            except ValueError as exc:
                self._header_error = str(exc)
                raise
        return list(self._header)

    def open(self) -> BinaryIO:
        """A fresh binary stream of the whole object, from the store (close it after use).

        During a run these are the bytes of the run's claimed copy: the ones checksummed.
        """
        return self._store.open(self._read_key)

    def __repr__(self) -> str:
        return (
            f"IncomingFile(key={self.key!r}, size={self.size}, checksum={self.checksum[:12]}..., "
            f"utf8_error={self.utf8_error!r}, has_nul={self.has_nul}, "
            f"splittable={self.splittable})"
        )

    def _read_header(self) -> list[str]:
        if self.utf8_error is not None:
            raise ValueError(f"not UTF-8 text ({self.utf8_error}): no CSV header can be read")
        if self.has_nul:
            raise ValueError("contains NUL bytes (binary data): no CSV header can be read")
        if self.size == 0:
            raise ValueError("empty file (0 bytes): no header record")
        whole = len(self.head) >= self.size
        # final=False drops a multi-byte character cut in two by the 64 KiB boundary.
        text = codecs.getincrementaldecoder("utf-8")().decode(self.head, final=whole)
        record = _first_record(io.StringIO(text, newline="").readline, whole_file=whole)
        if record is None:  # the head ends inside the first record: read on from the store
            with self.open() as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as text_io:
                try:
                    record = _first_record(text_io.readline, whole_file=True)
                except UnicodeDecodeError as exc:  # the object changed since the scan
                    raise ValueError(f"not UTF-8 text: {exc.reason}") from None
        if record is None:
            raise ValueError("no header record")
        if not record:
            raise ValueError("the first line is blank: no header record")
        return record


def _decode_step(
    decoder: codecs.IncrementalDecoder, chunk: bytes, *, offset: int, final: bool
) -> str | None:
    """Feed ``chunk`` (starting at byte ``offset``) to ``decoder``; describe the first error."""
    pending = len(decoder.getstate()[0])  # bytes of an unfinished character from earlier chunks
    try:
        decoder.decode(chunk, final)
    except UnicodeDecodeError as exc:
        position = offset - pending + exc.start
        return f"byte 0x{exc.object[exc.start]:02x} at offset {position}: {exc.reason}"
    return None


class _WidestLine:
    """:attr:`IncomingFile.max_line_fields`, learnt chunk by chunk at C speed.

    A pre-filter first: the bytes between a chunk's first and last line break are cut into
    blocks of ``floor // 2`` bytes, and each is searched for a line break (``bytes.find`` with
    bounds: no copy, and it stops at the first hit, usually within ~100 bytes). A line of at
    least ``floor`` bytes covers one whole block, so when every block holds a line break no
    line there is that long. Only a block without one (a long line, or its edge) sends that
    stretch to the exact path: split it into lines and count the commas of the long ones.
    The line left open across a chunk boundary is followed by its length and commas.
    Measured on a 111 MB file: docs/reliability.md ("Poison files").
    """

    def __init__(self, floor: int) -> None:
        self.floor = floor
        self.block = max(1, floor // 2)
        self.widest = 0
        self._open_bytes = 0  # the line still open at the end of the last chunk
        self._open_commas = 0

    def feed(self, chunk: bytes) -> None:
        first = _first_break(chunk)
        if first < 0:  # the open line goes on through the whole chunk
            self._extend(chunk)
            return
        self._extend(chunk[:first])
        self._close()
        last = _last_break(chunk)
        if self._has_long_stretch(chunk, first + 1, last):
            for line in chunk[first + 1 : last].translate(_CR_TO_LF).split(b"\n"):
                if len(line) >= self.floor:
                    self.widest = max(self.widest, line.count(b",") + 1)
        self._extend(chunk[last + 1 :])

    def finish(self) -> int:
        self._close()
        return self.widest

    def _has_long_stretch(self, chunk: bytes, start: int, end: int) -> bool:
        if end - start < self.floor:
            return False
        for i in range(start, end, self.block):
            stop = min(i + self.block, end)
            if chunk.find(b"\n", i, stop) < 0 and chunk.find(b"\r", i, stop) < 0:
                return True
        return False

    def _extend(self, part: bytes) -> None:
        self._open_bytes += len(part)
        self._open_commas += part.count(b",")

    def _close(self) -> None:
        if self._open_bytes >= self.floor:
            self.widest = max(self.widest, self._open_commas + 1)
        self._open_bytes = self._open_commas = 0


def _first_break(chunk: bytes) -> int:
    """Index of the first LF or CR in ``chunk``, -1 if none."""
    lf = chunk.find(b"\n")
    cr = chunk.find(b"\r", 0, lf if lf >= 0 else len(chunk))  # only before the first LF
    return cr if cr >= 0 else lf


def _last_break(chunk: bytes) -> int:
    """Index of the last LF or CR in ``chunk``, -1 if none."""
    lf = chunk.rfind(b"\n")
    cr = chunk.rfind(b"\r", lf + 1)  # only after the last LF
    return cr if cr >= 0 else lf


_LF, _CR, _QUOTE, _COMMA = 0x0A, 0x0D, 0x22, 0x2C
_UTF8_BOM = b"\xef\xbb\xbf"


class _LineModeCheck:
    """:attr:`IncomingFile.splittable`, learnt chunk by chunk with numpy (C speed).

    Spark's line mode (Hadoop's line reader, then univocity per line) and its ``multiLine``
    mode (univocity over the stream) give the same rows when every record is one physical line
    and no line is dropped by one mode only. Measured (pyspark 4.3, this product's CSV options):
    the modes differ on a quoted field holding a line break, a non-empty line of only bytes
    <= 0x20 (Java's ``String.trim``: line mode drops it, ``multiLine`` parses a one-field
    record), and on mixed line ends (``multiLine`` takes the first one it sees as the
    separator). So a file is splittable when, for every line:

    - its quotes are RFC 4180 quoting within the line: quotes pair up in order, no line break
      between an opening and its closing quote (the quote parity of every line end is even),
      an opening quote starts a field (after a comma or at the line start) or is the second
      half of a ``""`` escape, a closing quote ends one (before a comma or the line end) or
      is the first half of an escape. A quote anywhere else (``ab"c``, ``"a"b``) is not
      RFC 4180; univocity's handling of it could open a quoted field the parity does not see,
      so such a file keeps ``multiLine``;
    - it is empty or holds a byte above 0x20;
    and all line ends are of one kind (LF, CRLF or CR).

    Work per 1 MiB chunk: ``bytes.rfind`` for the last line break, a copy joining the open line,
    two byte comparisons and a mask for the blank-line candidates, ``b'"' in`` (memchr); only a
    chunk holding quotes gets the pairing check over its quote positions, only a chunk holding
    a CR gets three ``bytes.count``. Cost: bench/scan_overhead.py, bench/RESULTS.md ("One big file").
    """

    def __init__(self) -> None:
        self.splittable = True
        self._open: list[bytes] = []  # the line still open at the end of the last chunk
        self._open_bytes = 0
        self._first = True  # before the first complete line (a BOM may lead it)
        self._pending_cr = False  # the last chunk ended in CR: CRLF if the next starts with LF
        self._line_ends: set[str] = set()

    def feed(self, chunk: bytes) -> None:
        if not self.splittable:
            return
        self._note_line_ends(chunk)
        last = _last_break(chunk)
        if last < 0:
            self._keep_open(chunk)
            return
        lines = b"".join([*self._open, chunk[: last + 1]]) if self._open else chunk[: last + 1]
        self._open, self._open_bytes = [], 0
        self._check(lines)
        self._keep_open(chunk[last + 1 :])

    def finish(self) -> bool:
        if self.splittable and self._open:
            self._check(b"".join(self._open))
        if self._pending_cr:
            self._line_ends.add("CR")
        if len(self._line_ends) > 1:
            self.splittable = False
        return self.splittable

    def _keep_open(self, part: bytes) -> None:
        if not part:
            return
        self._open.append(part)
        self._open_bytes += len(part)
        if self._open_bytes > MAX_SPLITTABLE_LINE_BYTES:
            self.splittable = False
            self._open = []

    def _note_line_ends(self, chunk: bytes) -> None:
        start, end = 0, len(chunk)
        if self._pending_cr:
            self._pending_cr = False
            if chunk.startswith(b"\n"):
                self._line_ends.add("CRLF")
                start = 1
            else:
                self._line_ends.add("CR")
        if chunk.endswith(b"\r"):
            self._pending_cr = True
            end -= 1
        if chunk.find(b"\r", start, end) < 0:
            if chunk.find(b"\n", start, end) >= 0:
                self._line_ends.add("LF")
            return
        crlf = chunk.count(b"\r\n", start, end)
        for kind, count in (
            ("CRLF", crlf),
            ("CR", chunk.count(b"\r", start, end) - crlf),
            ("LF", chunk.count(b"\n", start, end) - crlf),
        ):
            if count:
                self._line_ends.add(kind)

    def _check(self, lines: bytes) -> None:
        """``lines``: whole lines (the last one may lack its line end at the end of the file)."""
        if self._first:
            self._first = False
            lines = lines.removeprefix(_UTF8_BOM)
        if not lines:
            return
        a = np.frombuffer(lines, np.uint8)
        is_break = a == _LF
        if b"\r" in lines:
            is_break |= a == _CR
        breaks = np.flatnonzero(is_break)
        starts = np.concatenate(([0], breaks[breaks < a.size - 1] + 1))  # of every line
        quotes_ok = b'"' not in lines or _quotes_within_lines(a, breaks)
        self.splittable = quotes_ok and not _any_blank_line(a, starts, breaks)


def _any_blank_line(a: np.ndarray, starts: np.ndarray, breaks: np.ndarray) -> bool:
    """Whether a non-empty line of ``a`` holds only bytes <= 0x20 (``starts``: line starts,
    ``breaks``: line-end positions, both ascending)."""
    first = a[starts]
    candidates = starts[(first <= 0x20) & (first != _LF) & (first != _CR)]
    ends = np.searchsorted(breaks, candidates)
    for start, k in zip(candidates.tolist(), ends.tolist(), strict=True):
        end = int(breaks[k]) if k < breaks.size else a.size
        if bool((a[start:end] <= 0x20).all()):
            return True
    return False


def _quotes_within_lines(a: np.ndarray, breaks: np.ndarray) -> bool:
    """Whether every quote of ``a`` (whole lines; ``breaks``: its line-end positions) is
    RFC 4180 quoting inside one line."""
    quotes = np.flatnonzero(a == _QUOTE)
    if quotes.size % 2 or (np.searchsorted(quotes, breaks) % 2).any():
        return False  # a line ends at odd quote parity: inside a quoted field
    opens, closes = quotes[0::2], quotes[1::2]
    padded = np.empty(a.size + 2, np.uint8)  # a line end before the first byte and after the last
    padded[0] = padded[-1] = _LF
    padded[1:-1] = a
    before, after = padded[opens], padded[closes + 2]  # padded[i + 1] is a[i]
    opens_field = (before == _COMMA) | (before == _LF) | (before == _CR)
    ends_field = (after == _COMMA) | (after == _LF) | (after == _CR)
    escape = closes[:-1] + 1 == opens[1:]  # "" inside a quoted field
    opens_field[1:] |= escape
    ends_field[:-1] |= escape
    return bool(opens_field.all() and ends_field.all())


class _LineCounter:
    """Physical lines for :func:`csv.reader`, with a size cap and an 'ended cleanly' flag."""

    def __init__(self, readline: Callable[[int], str]) -> None:
        self._readline = readline
        self.chars = 0
        self.last_line_ended = True

    def __iter__(self) -> Iterator[str]:
        first = True
        while line := self._next_line():
            if first:
                line = line.removeprefix(_BOM)
                first = False
            yield line

    def _next_line(self) -> str:
        parts: list[str] = []
        while True:
            part = self._readline(MAX_HEADER_CHARS - self.chars + 1)
            self.chars += len(part)
            if self.chars > MAX_HEADER_CHARS:
                raise ValueError(
                    f"header record longer than {MAX_HEADER_CHARS // 1024} KiB: refusing to read on"
                )
            parts.append(part)
            if not part or part.endswith(("\n", "\r")):
                break
        line = "".join(parts)
        self.last_line_ended = line.endswith(("\n", "\r"))
        return line


def _first_record(readline: Callable[[int], str], *, whole_file: bool) -> list[str] | None:
    """Parse the first CSV record from ``readline``.

    Returns ``None`` when the text ran out before the record could be known complete and
    ``whole_file`` is false (the caller then reads from the store), or when there is no record.
    """
    lines = _LineCounter(readline)
    try:
        record = next(csv.reader(lines, strict=True), None)
    except csv.Error as exc:
        if not whole_file:  # perhaps only cut off by the end of the head
            return None
        raise ValueError(f"malformed CSV header: {exc}") from None
    if not whole_file and not lines.last_line_ended:
        return None
    return record
