"""Load the four dimension CSV files into their tables (insert or update by primary key).

Each file is streamed with the :mod:`csv` module, every value is converted by its column's type
(and checked against the size of the column as the database really has it, so SQLite, our own
MySQL tables and a user's tutorial-made tables accept and refuse the same input), and rows are
upserted in batches inside one transaction per table: a bad value anywhere in a file raises
:class:`DimensionLoadError` ("file, line N, column 'c': reason") and nothing of that file is written.

Accepted as a MySQL export holds it (README "Loading dimensions"):

* empty, ``NULL`` and ``\\N`` (mysqldump --tab / SELECT ... INTO OUTFILE) -> SQL NULL in every
  column except the primary key;
* timestamps ``YYYY-MM-DD HH:MM:SS`` or ``YYYY-MM-DDTHH:MM:SS``, optionally with up to 6
  fractional digits, or a bare date (midnight), in TIMESTAMP/DATETIME columns; no time-zone
  suffix (values are UTC, the session time zone of :func:`sales_etl.db.engine.make_engine`);
* the same timestamps in DATE columns when the time is midnight; any other time of day is refused
  (a DATE keeps no time, and dropping it silently would change the data);
* money written ``212``, ``212.0`` or ``212.000`` (digits past the column's scale must be zeros).
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    inspect,
)
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.sql.dml import Insert
from sqlalchemy.types import TypeEngine

from sales_etl.db.schema import DIMENSION_TABLES, check_dimension_columns
from sales_etl.db.types import Money
from sales_etl.errors import InputError

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DIMENSION_FILES",
    "DimensionLoadError",
    "MissingDimensionFilesError",
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

#: How a MySQL export writes SQL NULL besides an empty field: ``\N`` (mysqldump --tab,
#: SELECT ... INTO OUTFILE) and ``NULL`` (Workbench and most GUI exports).
NULL_MARKERS = frozenset({"", "NULL", "\\N"})

_INT_RE = re.compile(r"[+-]?[0-9]+", re.ASCII)
_DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", re.ASCII)
# A date, optionally followed by a time (space or 'T') with up to 6 fractional digits.
_TIMESTAMP_RE = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})"
    r"(?:[ T](?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.(?P<fraction>[0-9]{1,6}))?)?",
    re.ASCII,
)
# MySQL TIMESTAMP holds 1970-01-01 00:00:01 .. 2038-01-19 03:14:07 UTC (MySQL manual, 13.2.2).
_MYSQL_TIMESTAMP_RANGE = (
    dt.datetime(1970, 1, 1, 0, 0, 1),
    dt.datetime(2038, 1, 19, 3, 14, 7, 999999),
)

_SUPPORTED_DIALECTS = ("sqlite", "mysql", "mariadb")


class DimensionLoadError(InputError):
    """A dimension file could not be loaded; nothing of that file was written (exit 2).

    ``file_name``, ``line`` (1-based physical line where the record starts) and ``column``
    locate the problem when it is about one value; they are ``None`` otherwise. The message
    reads "customer.csv, line 6, column 'customer_joining_date': reason" (one line).
    """

    def __init__(
        self,
        message: str,
        *,
        file_name: str | None = None,
        line: int | None = None,
        column: str | None = None,
        hint: str | None = None,
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
        super().__init__(f"{', '.join(where)}: {message}" if where else message, hint=hint)


class MissingDimensionFilesError(DimensionLoadError):
    """One or more of the four dimension files is not in the folder (nothing was loaded)."""

    def __init__(self, directory: Path, missing: list[str]) -> None:
        self.directory = directory
        self.missing = missing
        where = f"dimension folder {str(directory)!r} (load-dimensions DIR, {directory.resolve()})"
        super().__init__(
            f"{where} is missing {', '.join(missing)}"
            if directory.is_dir()
            else f"{where} does not exist or is not a folder",
            hint=f"the folder must hold all of {', '.join(DIMENSION_FILES.values())}",
        )


# --- value conversion --------------------------------------------------------------------------

Converter = Callable[[str], Any]

# Signed ranges of MySQL's integer types by bits (MySQL manual, "Integer Types").
_MYSQL_INT_BITS = {"TINYINT": 8, "SMALLINT": 16, "MEDIUMINT": 24, "INTEGER": 32, "INT": 32}


def _int_converter(low: int, high: int) -> Converter:
    def convert(value: str) -> int:
        text = value.strip()
        if not _INT_RE.fullmatch(text):
            raise ValueError(f"not an integer: {value!r}")
        number = int(text)
        if not low <= number <= high:
            raise ValueError(f"integer {value!r} is outside the column's range {low}..{high}")
        return number

    return convert


def _parse_timestamp(value: str) -> dt.datetime:
    """``YYYY-MM-DD``, ``YYYY-MM-DD HH:MM:SS[.ffffff]`` or with ``T``: a naive datetime."""
    text = value.strip()
    match = _TIMESTAMP_RE.fullmatch(text)
    if match is None:
        raise ValueError(
            f"not an ISO date or timestamp (YYYY-MM-DD or YYYY-MM-DD HH:MM:SS[.ffffff]): {value!r}"
        )
    if match["date"] == "0000-00-00":
        raise ValueError(f"MySQL's zero date is not a real date (export it as NULL): {value!r}")
    try:
        day = dt.date.fromisoformat(match["date"])
        clock = dt.time.fromisoformat(match["time"]) if match["time"] else dt.time()
    except ValueError:
        raise ValueError(f"not a real date or time: {value!r}") from None
    micro = int((match["fraction"] or "0").ljust(6, "0"))
    return dt.datetime.combine(day, clock.replace(microsecond=micro))


def _to_date(value: str) -> dt.date:
    stamp = _parse_timestamp(value)
    if stamp.time() != dt.time():
        raise ValueError(
            f"{value!r} has a time of day, but the column is a DATE, which keeps none "
            "(only midnight, 00:00:00, is accepted; export the date alone)"
        )
    return stamp.date()


def _datetime_converter(
    fraction_digits: int, bounds: tuple[dt.datetime, dt.datetime] | None
) -> Converter:
    def convert(value: str) -> dt.datetime:
        stamp = _parse_timestamp(value)
        if stamp.microsecond % 10 ** (6 - fraction_digits):
            raise ValueError(
                f"{value!r} has more fractional-second digits than the column keeps "
                f"({fraction_digits})"
            )
        if bounds is not None and not bounds[0] <= stamp <= bounds[1]:
            raise ValueError(
                f"{value!r} is outside the range of a MySQL TIMESTAMP "
                f"({bounds[0]:%Y-%m-%d %H:%M:%S} .. {bounds[1]:%Y-%m-%d %H:%M:%S} UTC)"
            )
        return stamp

    return convert


def _money_converter(precision: int, scale: int) -> Converter:
    int_digits = precision - scale
    step = Decimal(1).scaleb(-scale)

    def convert(value: str) -> Decimal:
        text = value.strip()
        if not _DECIMAL_RE.fullmatch(text):
            raise ValueError(f"not a decimal number: {value!r}")
        number = Decimal(text)
        if number != 0 and number.adjusted() >= int_digits:
            raise ValueError(f"more than {int_digits} digits before the decimal point: {value!r}")
        exact = number.quantize(step)  # 212 and 212.0 -> 212.00
        if exact != number:
            raise ValueError(f"more than {scale} decimal places: {value!r}")
        return exact

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


def _is_mysql(dialect_name: str) -> bool:
    return dialect_name in ("mysql", "mariadb")


def _converter_for(
    declared: TypeEngine[Any], actual: TypeEngine[Any] | None, dialect_name: str
) -> Converter:
    """The text -> Python converter for one dimension column.

    ``declared`` (schema.py) says what the value means; ``actual`` (the type the database
    reports, e.g. a tutorial table's ``VARCHAR(50)``, ``INT``, ``DECIMAL(10,2)``, ``TIMESTAMP``)
    sets its size, so a value the table cannot hold is refused here with its line and column
    instead of failing inside the database.
    """
    if isinstance(declared, Money):
        sized = isinstance(actual, Numeric) and not isinstance(actual, Float)
        if sized and actual.precision is not None and actual.scale is not None:
            return _money_converter(actual.precision, actual.scale)
        return _money_converter(declared.precision, declared.scale)
    if isinstance(declared, Integer):
        bits = 64
        if _is_mysql(dialect_name) and actual is not None:
            bits = _MYSQL_INT_BITS.get(type(actual).__name__.upper(), 64)
        if _is_mysql(dialect_name) and getattr(actual, "unsigned", False):
            return _int_converter(0, 2**bits - 1)
        return _int_converter(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    if isinstance(declared, Date | DateTime):
        if isinstance(actual, DateTime) or (actual is None and isinstance(declared, DateTime)):
            mysql_timestamp = _is_mysql(dialect_name) and isinstance(actual, mysql.TIMESTAMP)
            # SQLite keeps microseconds; a MySQL column keeps its fsp (TIMESTAMP = TIMESTAMP(0)).
            digits = (getattr(actual, "fsp", None) or 0) if _is_mysql(dialect_name) else 6
            return _datetime_converter(digits, _MYSQL_TIMESTAMP_RANGE if mysql_timestamp else None)
        return _to_date
    if isinstance(declared, String):
        if isinstance(actual, Text) or (actual is None and isinstance(declared, Text)):
            long_text = type(actual).__name__.upper() in ("MEDIUMTEXT", "LONGTEXT")
            return _string_converter(None) if long_text else _text
        if isinstance(actual, String) and actual.length is not None:
            return _string_converter(actual.length)
        if isinstance(declared, Text):
            return _text
        return _string_converter(declared.length)
    raise TypeError(f"no CSV converter for column type {declared!r}")


def _bind_type(declared: TypeEngine[Any], actual: TypeEngine[Any] | None) -> TypeEngine[Any]:
    """The type to bind a converted value with: a date/time column follows the real table."""
    if isinstance(declared, Date | DateTime) and actual is not None:
        if isinstance(actual, DateTime):
            return DateTime()
        if isinstance(actual, Date):
            return Date()
    return declared


def _table_as_it_is(table: Table, actual: Mapping[str, TypeEngine[Any]]) -> Table:
    """``table`` with the date/time types of the database's real table (for the upsert)."""
    return Table(
        table.name,
        MetaData(),
        *[
            Column(
                c.name,
                _bind_type(c.type, actual.get(c.name)),
                primary_key=c.primary_key,
                autoincrement=False,
            )
            for c in table.columns
        ],
    )


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


@dataclass(frozen=True)
class _ColumnRule:
    """How one CSV column becomes a value of the real table."""

    convert: Converter
    nullable: bool  # False for the primary key and for columns the table declares NOT NULL


def _column_rules(
    table: Table, real: Mapping[str, Any], dialect_name: str
) -> dict[str, _ColumnRule]:
    """Per column of ``table``: its converter and nullability, from the table as it really is
    (``real``: column name -> the reflected column of :meth:`sqlalchemy.Inspector.get_columns`)."""
    rules = {}
    for column in table.columns:
        found = real.get(column.name)
        actual = found["type"] if found else None
        nullable = not column.primary_key and (found is None or bool(found["nullable"]))
        rules[column.name] = _ColumnRule(
            _converter_for(column.type, actual, dialect_name), nullable
        )
    return rules


def _convert_record(
    names: list[str], rules: list[_ColumnRule], record: list[str], file_name: str, line: int
) -> list[Any]:
    """The converted values of one record; :class:`DimensionLoadError` at the first bad one."""
    values = []
    for name, rule, raw in zip(names, rules, record, strict=True):
        if raw in NULL_MARKERS:
            if not rule.nullable:
                raise DimensionLoadError(
                    f"value is {'empty' if raw == '' else raw!r} (NULL), but the column is "
                    "the primary key or NOT NULL in the table",
                    file_name=file_name,
                    line=line,
                    column=name,
                )
            values.append(None)
            continue
        try:
            values.append(rule.convert(raw))
        except ValueError as exc:
            raise DimensionLoadError(
                str(exc), file_name=file_name, line=line, column=name
            ) from None
    return values


def _read_rows(
    path: Path, table: Table, rules: Mapping[str, _ColumnRule]
) -> Iterator[dict[str, Any]]:
    """Stream ``path`` as converted row dicts; raises :class:`DimensionLoadError` on bad input."""
    file_name = path.name
    expected = [c.name for c in table.columns]
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
                headerless = not set(names) & set(expected)  # e.g. SELECT ... INTO OUTFILE
                raise DimensionLoadError(
                    f"header does not match table {table.name!r} ({'; '.join(problems)}); "
                    f"expected columns: {', '.join(expected)}",
                    file_name=file_name,
                    line=1,
                    hint=f"the file has no header row: make its first line {','.join(expected)}"
                    if headerless
                    else "name the columns exactly as the table's (any order)",
                )
            rules_in_order = [rules[name] for name in names]
            width = len(names)
            key_columns = [c.name for c in table.primary_key.columns]
            first_line_of_key: dict[tuple[Any, ...], int] = {}
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
                values = _convert_record(names, rules_in_order, record, file_name, line)
                row = dict(zip(names, values, strict=True))
                # An upsert would keep the last of two rows with one key, silently.
                key = tuple(row[c] for c in key_columns)
                first = first_line_of_key.setdefault(key, line)
                if first != line:
                    raise DimensionLoadError(
                        f"repeats {', '.join(key_columns)} {', '.join(map(str, key))} of line "
                        f"{first}: each row of a dimension file needs its own key",
                        file_name=file_name,
                        line=line,
                        column=key_columns[0],
                        hint="keep one row per key (the one that is right) and load again",
                    )
                yield row
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
    engine: Engine, table: Table, path: Path, dialect_name: str, batch_size: int
) -> int:
    """Upsert ``path`` into ``table`` in one transaction (rolled back on any error)."""
    real = {c["name"]: c for c in inspect(engine).get_columns(table.name)}
    rules = _column_rules(table, real, dialect_name)
    actual_types = {name: column["type"] for name, column in real.items()}
    statement = _upsert_statement(_table_as_it_is(table, actual_types), dialect_name)
    count = 0
    batch: list[dict[str, Any]] = []
    with engine.begin() as conn:
        for row in _read_rows(path, table, rules):
            batch.append(row)
            if len(batch) >= batch_size:
                conn.execute(statement, batch)
                count += len(batch)
                batch = []
        if batch:
            conn.execute(statement, batch)
            count += len(batch)
    return count


def _loaded_columns() -> dict[str, list[str]]:
    return {name: [c.name for c in table.columns] for name, table in DIMENSION_TABLES.items()}


def load_dimension_file(
    engine: Engine,
    table_name: str,
    path: str | Path,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> int:
    """Upsert one dimension file into ``table_name`` in a single transaction; returns rows read.

    Raises :class:`DimensionLoadError` (nothing written) on a bad header or value,
    :class:`sales_etl.errors.ConfigError` when the table lacks a column the file fills,
    :class:`NotImplementedError` for a database other than SQLite or MySQL/MariaDB.
    """
    if table_name not in DIMENSION_TABLES:
        raise ValueError(
            f"unknown dimension table {table_name!r}; expected one of {', '.join(DIMENSION_FILES)}"
        )
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    dialect_name = _check_dialect(engine)
    check_dimension_columns(engine, {table_name: _loaded_columns()[table_name]})
    return _load_table(engine, DIMENSION_TABLES[table_name], Path(path), dialect_name, batch_size)


def load_dimensions(
    engine: Engine,
    directory: str | Path,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict[str, int]:
    """Load ``customer.csv``, ``store.csv``, ``sales_team.csv`` and ``product.csv`` from ``directory``.

    Every row is inserted, or updated when its primary key already exists; the tables are used
    as they are (the product's own, or a user's made by the tutorial's DDL; extra columns are
    left alone). Checked before anything is written: the four files are present
    (:class:`MissingDimensionFilesError`) and every table has every column the files fill
    (:class:`sales_etl.errors.ConfigError`, see :func:`~sales_etl.db.schema.check_dimension_columns`).
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
    check_dimension_columns(engine, _loaded_columns())
    counts: dict[str, int] = {}
    for table_name, file_name in DIMENSION_FILES.items():
        counts[table_name] = _load_table(
            engine, DIMENSION_TABLES[table_name], folder / file_name, dialect_name, batch_size
        )
    return counts
