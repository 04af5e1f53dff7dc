"""Load the four dimension CSV files into their tables (insert or update by primary key).

Each file is streamed with the :mod:`csv` module, every value is converted by its column's type
(and checked against the column's size, so SQLite and MySQL accept and refuse the same input),
and rows are upserted in batches inside one transaction per table: a bad value anywhere in a file
raises :class:`DimensionLoadError` and nothing of that file is written.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Connection, Date, Engine, Integer, String, Table, Text
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.sql.dml import Insert

from sales_etl.db.schema import DIMENSION_TABLES
from sales_etl.db.types import Money

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DIMENSION_FILES",
    "DimensionLoadError",
    "MissingDimensionFilesError",
    "dimension_paths",
    "load_dimension_file",
    "load_dimensions",
]

#: Table name -> file name expected in the dimension folder (also the load order).
DIMENSION_FILES: dict[str, str] = {
    "customer": "customer.csv",
    "store": "store.csv",
    "sales_team": "sales_team.csv",
    "product": "product.csv",
}

DEFAULT_BATCH_SIZE = 10_000

# MySQL TEXT holds at most 65,535 bytes; SQLite has no limit. Checking here keeps both the same.
_TEXT_MAX_BYTES = 65_535

_INT_RE = re.compile(r"[+-]?[0-9]+", re.ASCII)
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", re.ASCII)

_SUPPORTED_DIALECTS = ("sqlite", "mysql", "mariadb")


class DimensionLoadError(Exception):
    """A dimension file could not be loaded; nothing of that file was written.

    ``file_name``, ``line`` (1-based physical line where the record starts) and ``column``
    locate the problem when it is about one value; they are ``None`` otherwise.
    """

    def __init__(
        self,
        message: str,
        *,
        file_name: str | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.file_name = file_name
        self.line = line
        self.column = column
        where = []
        if file_name is not None:
            where.append(file_name)
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class MissingDimensionFilesError(DimensionLoadError):
    """One or more of the four dimension files is not in the folder (nothing was loaded)."""

    def __init__(self, directory: Path, missing: list[str]) -> None:
        self.directory = directory
        self.missing = missing
        super().__init__(
            f"dimension folder {str(directory)!r} is missing {', '.join(missing)} "
            f"(expected all of: {', '.join(DIMENSION_FILES.values())})"
        )


# --- value conversion --------------------------------------------------------------------------

Converter = Callable[[str], Any]


def _to_int(value: str) -> int:
    text = value.strip()
    if not _INT_RE.fullmatch(text):
        raise ValueError(f"not an integer: {value!r}")
    number = int(text)
    if not -(2**63) <= number < 2**63:
        raise ValueError(f"integer out of the 64-bit range: {value!r}")
    return number


def _to_date(value: str) -> dt.date:
    text = value.strip()
    if not _DATE_RE.fullmatch(text):
        raise ValueError(f"not an ISO date (YYYY-MM-DD): {value!r}")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a real date: {value!r}") from None


def _money_converter(precision: int, scale: int) -> Converter:
    int_digits = precision - scale

    def convert(value: str) -> Decimal:
        text = value.strip()
        if not _DECIMAL_RE.fullmatch(text):
            raise ValueError(f"not a decimal number: {value!r}")
        number = Decimal(text)
        exponent = number.as_tuple().exponent
        assert isinstance(exponent, int)  # finite: the regex admits no NaN / Infinity
        if -exponent > scale:
            raise ValueError(f"more than {scale} decimal places: {value!r}")
        if number != 0 and number.adjusted() >= int_digits:
            raise ValueError(f"more than {int_digits} digits before the decimal point: {value!r}")
        return number

    return convert


def _string_converter(max_chars: int | None) -> Converter:
    def convert(value: str) -> str:
        if max_chars is not None and len(value) > max_chars:
            raise ValueError(f"longer than {max_chars} characters ({len(value)})")
        return value

    return convert


def _text(value: str) -> str:
    if len(value) * 4 > _TEXT_MAX_BYTES and len(value.encode("utf-8")) > _TEXT_MAX_BYTES:
        raise ValueError(f"longer than {_TEXT_MAX_BYTES} bytes of UTF-8")
    return value


def _converter_for(column_type: Any) -> Converter:
    """The text -> Python converter for a column type of the dimension tables."""
    if isinstance(column_type, Money):
        return _money_converter(column_type.precision, column_type.scale)
    if isinstance(column_type, BigInteger | Integer):
        return _to_int
    if isinstance(column_type, Date):
        return _to_date
    if isinstance(column_type, Text):
        return _text
    if isinstance(column_type, String):
        return _string_converter(column_type.length)
    raise TypeError(f"no CSV converter for column type {column_type!r}")


# --- upsert statements -------------------------------------------------------------------------


def _upsert_statement(table: Table, dialect_name: str) -> Insert:
    """``INSERT ... ON CONFLICT/DUPLICATE KEY UPDATE`` every non-key column, for the dialect."""
    key_names = [c.name for c in table.primary_key.columns]
    other_names = [c.name for c in table.columns if c.name not in key_names]
    if dialect_name == "sqlite":
        sqlite_stmt = sqlite.insert(table)
        return sqlite_stmt.on_conflict_do_update(
            index_elements=key_names,
            set_={name: sqlite_stmt.excluded[name] for name in other_names},
        )
    if dialect_name in ("mysql", "mariadb"):
        mysql_stmt = mysql.insert(table)
        return mysql_stmt.on_duplicate_key_update(
            {name: mysql_stmt.inserted[name] for name in other_names}
        )
    raise NotImplementedError(
        f"dimension upsert is implemented for SQLite and MySQL/MariaDB, not {dialect_name!r}"
    )


def _check_dialect(engine: Engine) -> str:
    name = engine.dialect.name
    if name not in _SUPPORTED_DIALECTS:
        raise NotImplementedError(
            f"dimension upsert is implemented for SQLite and MySQL/MariaDB, not {name!r}"
        )
    return name


# --- reading -----------------------------------------------------------------------------------


def _locate_bad_value(
    names: list[str],
    converters: list[Converter],
    record: list[str],
    file_name: str,
    line: int,
) -> DimensionLoadError:
    """The error for the first value of ``record`` its converter refuses."""
    for name, convert, raw in zip(names, converters, record, strict=True):
        if raw:
            try:
                convert(raw)
            except ValueError as exc:
                return DimensionLoadError(str(exc), file_name=file_name, line=line, column=name)
    return DimensionLoadError("bad value", file_name=file_name, line=line)  # pragma: no cover


def _read_rows(path: Path, table: Table) -> Iterator[dict[str, Any]]:
    """Stream ``path`` as converted row dicts; raises :class:`DimensionLoadError` on bad input."""
    file_name = path.name
    columns = list(table.columns)
    expected = [c.name for c in columns]
    key_names = {c.name for c in table.primary_key.columns}
    converters = {c.name: _converter_for(c.type) for c in columns}
    line = 1  # physical line where the current record starts
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, strict=True)
            header = next(reader, None)
            if header is None:
                raise DimensionLoadError("file is empty (no header)", file_name=file_name, line=1)
            names = [h.strip() for h in header]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            missing = [n for n in expected if n not in names]
            unknown = [n for n in names if n not in expected]
            if duplicates or missing or unknown:
                problems = []
                if missing:
                    problems.append(f"missing {', '.join(missing)}")
                if unknown:
                    problems.append(f"unknown {', '.join(unknown)}")
                if duplicates:
                    problems.append(f"repeated {', '.join(duplicates)}")
                raise DimensionLoadError(
                    f"header does not match table {table.name!r} ({'; '.join(problems)}); "
                    f"expected columns: {', '.join(expected)}",
                    file_name=file_name,
                    line=1,
                )
            converters_in_order = [converters[name] for name in names]
            key_positions = [(i, name) for i, name in enumerate(names) if name in key_names]
            width = len(names)
            line = reader.line_num + 1
            for record in reader:
                if not record:  # a blank line
                    line = reader.line_num + 1
                    continue
                if len(record) != width:
                    raise DimensionLoadError(
                        f"{len(record)} fields, the header has {width}",
                        file_name=file_name,
                        line=line,
                    )
                for position, name in key_positions:
                    if record[position] == "":
                        raise DimensionLoadError(
                            "primary key value is empty",
                            file_name=file_name,
                            line=line,
                            column=name,
                        )
                try:
                    values = [
                        convert(raw) if raw else None
                        for convert, raw in zip(converters_in_order, record, strict=True)
                    ]
                except ValueError:
                    raise _locate_bad_value(
                        names, converters_in_order, record, file_name, line
                    ) from None
                yield dict(zip(names, values, strict=True))
                line = reader.line_num + 1
    except csv.Error as exc:
        raise DimensionLoadError(f"malformed CSV: {exc}", file_name=file_name, line=line) from None
    except UnicodeDecodeError as exc:
        raise DimensionLoadError(
            f"not UTF-8 text: {exc.reason} at byte {exc.start} of a read block",
            file_name=file_name,
            line=line,
        ) from None


def _load_table(
    conn: Connection, table: Table, path: Path, dialect_name: str, batch_size: int
) -> int:
    statement = _upsert_statement(table, dialect_name)
    count = 0
    batch: list[dict[str, Any]] = []
    for row in _read_rows(path, table):
        batch.append(row)
        if len(batch) >= batch_size:
            conn.execute(statement, batch)
            count += len(batch)
            batch = []
    if batch:
        conn.execute(statement, batch)
        count += len(batch)
    return count


def load_dimension_file(
    engine: Engine,
    table_name: str,
    path: str | Path,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> int:
    """Upsert one dimension file into ``table_name`` in a single transaction; returns rows read.

    Raises :class:`DimensionLoadError` (nothing written) on a bad header or value,
    :class:`NotImplementedError` for a database other than SQLite or MySQL/MariaDB.
    """
    if table_name not in DIMENSION_TABLES:
        raise ValueError(
            f"unknown dimension table {table_name!r}; expected one of {', '.join(DIMENSION_FILES)}"
        )
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    dialect_name = _check_dialect(engine)
    table = DIMENSION_TABLES[table_name]
    with engine.begin() as conn:
        return _load_table(conn, table, Path(path), dialect_name, batch_size)


def load_dimensions(
    engine: Engine,
    directory: str | Path,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict[str, int]:
    """Load ``customer.csv``, ``store.csv``, ``sales_team.csv`` and ``product.csv`` from ``directory``.

    Every row is inserted, or updated when its primary key already exists. The four files must
    all be present (checked before anything is written: :class:`MissingDimensionFilesError`).
    Each table is loaded in its own transaction, so a bad value raises
    :class:`DimensionLoadError` with the file, line and column, leaves that table untouched and
    stops the load (tables loaded before it stay loaded). Returns rows read per table.
    """
    folder = Path(directory)
    dialect_name = _check_dialect(engine)
    missing = [name for name in DIMENSION_FILES.values() if not (folder / name).is_file()]
    if missing:
        raise MissingDimensionFilesError(folder, missing)
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    counts: dict[str, int] = {}
    for table_name, file_name in DIMENSION_FILES.items():
        table = DIMENSION_TABLES[table_name]
        with engine.begin() as conn:
            counts[table_name] = _load_table(
                conn, table, folder / file_name, dialect_name, batch_size
            )
    return counts


def dimension_paths(directory: str | Path) -> Mapping[str, Path]:
    """Table name -> expected file path inside ``directory``."""
    folder = Path(directory)
    return {table: folder / name for table, name in DIMENSION_FILES.items()}
