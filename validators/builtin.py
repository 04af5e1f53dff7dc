"""The built-in validators, written as ordinary pluggy plugins.

They run in this order (pluggy order, set by ``tryfirst``/``trylast``), each seeing only files
the previous ones accepted:

1. ``builtin.file_type`` (``tryfirst``): a ``.csv`` name and UTF-8 text bytes.
2. ``builtin.header_schema``: a non-empty file whose header has every mandatory column and at
   most Spark's ``maxColumns`` (20,480) columns, and no line wider than the Spark stage reads.
3. ``builtin.extra_columns`` (``trylast``): no duplicate or empty column names, so every
   extra column can be kept unambiguously in ``additional_column``.

Any of them can be switched off with ``SALES_ETL_DISABLE_PLUGINS``, e.g.
``builtin.extra_columns``.
"""

from __future__ import annotations

from collections import Counter

from sales_etl.validators.hookspecs import hookimpl
from sales_etl.validators.model import (
    BAD_SCHEMA,
    MAX_RECORD_FIELDS,
    SPARK_CSV_MAX_COLUMNS,
    WRONG_FILE_TYPE,
    IncomingFile,
    Rejection,
)
from sales_etl.validators.schemas import check_header


class FileTypeValidator:
    """Only ``.csv`` files (any case) of UTF-8 text are sales files."""

    @hookimpl(tryfirst=True)
    def sales_etl_validate_file(self, file: IncomingFile) -> Rejection | None:
        """Reject a file that is not named ``*.csv`` or whose bytes are not UTF-8 text."""
        if file.extension != ".csv":
            if not file.extension:
                return Rejection(WRONG_FILE_TYPE, f"{file.name!r} has no extension, not .csv")
            return Rejection(WRONG_FILE_TYPE, f"extension {file.extension!r} is not .csv")
        if file.utf8_error is not None:
            return Rejection(WRONG_FILE_TYPE, f"not UTF-8 text: {file.utf8_error}")
        if file.has_nul:
            return Rejection(
                WRONG_FILE_TYPE, "not UTF-8 text: contains NUL bytes (binary, UTF-16 or UTF-32)"
            )
        return None


class HeaderSchemaValidator:
    """The header must hold every mandatory column (any order, exact names), and the file must
    be narrow enough for Spark's CSV reader."""

    @hookimpl
    def sales_etl_validate_file(self, file: IncomingFile) -> Rejection | None:
        """Reject an empty file, an unreadable header, one missing mandatory columns or wider
        than Spark's ``maxColumns`` (:data:`SPARK_CSV_MAX_COLUMNS`), or a file with a line of
        more than :data:`MAX_RECORD_FIELDS` fields."""
        if file.size == 0:
            return Rejection(BAD_SCHEMA, "empty file (0 bytes)")
        try:
            header = file.header
        except ValueError as exc:
            return Rejection(BAD_SCHEMA, f"unreadable header: {exc}")
        if len(header) > SPARK_CSV_MAX_COLUMNS:
            return Rejection(
                BAD_SCHEMA,
                f"header has {len(header):,} columns, more than the {SPARK_CSV_MAX_COLUMNS:,} "
                "Spark's CSV reader accepts (its maxColumns option)",
            )
        if file.max_line_fields > MAX_RECORD_FIELDS:
            return Rejection(
                BAD_SCHEMA,
                f"a line has up to {file.max_line_fields:,} fields, more than the "
                f"{MAX_RECORD_FIELDS:,} the Spark stage reads (a record that wide is not sales "
                "data): fix the file and send it again",
            )
        problems = check_header(header)
        if problems:
            return Rejection(BAD_SCHEMA, "; ".join(problems))
        return None


class ExtraColumnsValidator:
    """Extra columns are kept, so their names must be unambiguous."""

    @hookimpl(trylast=True)
    def sales_etl_validate_file(self, file: IncomingFile) -> Rejection | None:
        """Reject a header with duplicate or empty column names."""
        try:
            header = file.header
        except ValueError as exc:
            return Rejection(BAD_SCHEMA, f"unreadable header: {exc}")
        problems = []
        counts = Counter(name for name in header if name.strip())  # blanks are reported below
        duplicates = [name for name, count in counts.items() if count > 1]
        if duplicates:
            listed = ", ".join(f"{name!r} ({counts[name]} times)" for name in duplicates)
            problems.append(f"duplicate column names: {listed}")
        empty = [str(i + 1) for i, name in enumerate(header) if name.strip() == ""]
        if empty:
            where = "position" if len(empty) == 1 else "positions"
            problems.append(f"empty column name at {where} {', '.join(empty)}")
        if problems:
            return Rejection(BAD_SCHEMA, "ambiguous header: " + "; ".join(problems))
        return None


#: The built-in validators, ``(plugin name, plugin)``, registered by ``get_plugin_manager``.
DEFAULT_PLUGINS: tuple[tuple[str, object], ...] = (
    ("builtin.file_type", FileTypeValidator()),
    ("builtin.header_schema", HeaderSchemaValidator()),
    ("builtin.extra_columns", ExtraColumnsValidator()),
)
