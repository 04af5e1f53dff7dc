"""pandera schemas: the sales file header (pandas) and the enriched mart frame (pyspark).

``SalesFileHeader`` checks a header cheaply, by validating an empty pandas frame that has the
file's column names. ``MartSale`` checks the enriched Spark frame before it is written to the
marts; it is built on first use, because ``pandera.pyspark`` needs pyspark's SQL types.

Importing pandera (any part of it) imports ``pyspark.pandas`` and sets ``SPARK_LOCAL_IP=127.0.0.1``
and ``PYARROW_IGNORE_TIMEZONE=1`` when they are unset. A driver bound to 127.0.0.1 cannot be
reached by the executors of a ``spark://`` cluster, so this module imports pandera with those two
variables restored afterwards: importing it leaves the environment as it was. Create the
SparkSession before calling :func:`validate_mart_frame`.
"""

# No ``from __future__ import annotations``: pandera reads the field annotations at class
# creation time, and the pyspark ones are DataType instances.

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

#: Variables pandera sets on import (pandera.external_config); restored after importing it.
_PANDERA_ENV_SIDE_EFFECTS = ("SPARK_LOCAL_IP", "PYARROW_IGNORE_TIMEZONE")


@contextmanager
def _environment_restored(names: tuple[str, ...] = _PANDERA_ENV_SIDE_EFFECTS) -> Iterator[None]:
    """Undo changes to the named environment variables made inside the block.

    Not ``unittest.mock.patch.dict(os.environ)``: that clears and refills the whole environment
    on exit, which the other threads of a running flow (Prefect's, Spark's launcher) could see.
    """
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


with _environment_restored():
    import pandera.pandas as pa
    from pandera.errors import SchemaErrorReason, SchemaErrors
    from pandera.typing import Series

from sales_etl.validators.model import MANDATORY_COLUMNS  # noqa: E402 (after pandera's import)

#: Validation depths :func:`validate_mart_frame` accepts (pandera's ``ValidationDepth`` names).
VALIDATION_DEPTHS = ("SCHEMA_ONLY", "DATA_ONLY", "SCHEMA_AND_DATA")


class SalesFileHeader(pa.DataFrameModel):
    """The header of a sales CSV file: the mandatory columns, any order, extras allowed.

    Values are not checked here (every column is a nullable string); rows are checked later in
    Spark, where a bad row is quarantined rather than failing its file.
    """

    customer_id: Series[str] = pa.Field(nullable=True)
    store_id: Series[str] = pa.Field(nullable=True)
    product_name: Series[str] = pa.Field(nullable=True)
    sales_date: Series[str] = pa.Field(nullable=True)
    sales_person_id: Series[str] = pa.Field(nullable=True)
    price: Series[str] = pa.Field(nullable=True)
    quantity: Series[str] = pa.Field(nullable=True)
    total_cost: Series[str] = pa.Field(nullable=True)

    class Config:
        """Extra columns are allowed (they are kept in ``additional_column``)."""

        name = "SalesFileHeader"
        strict = False


def _loose(name: str) -> str:
    """A column name with case, surrounding space and word separators ignored."""
    return "_".join(name.strip().lower().replace("-", " ").replace("_", " ").split())


def check_header(columns: list[str]) -> list[str]:
    """Check a file's column names against :class:`SalesFileHeader`.

    Args:
        columns: The header's column names, exactly as written in the file.

    Returns:
        Human-readable problems, one per missing mandatory column, in the order of
        :data:`MANDATORY_COLUMNS`; empty when the header is acceptable. A near miss names
        what was found, e.g. ``missing mandatory column 'price' (found 'Price': column
        names are case- and space-sensitive)``.
    """
    import pandas as pd

    # Duplicate names are reported by the ``extra_columns`` validator; pandera only needs
    # each name once to decide which mandatory columns are present.
    unique = list(dict.fromkeys(columns))
    frame = pd.DataFrame(columns=pd.Index(unique, dtype="object"), dtype="object")
    try:
        SalesFileHeader.validate(frame, lazy=True)
    except SchemaErrors as err:
        missing: set[str] = set()
        other: list[str] = []
        for error in err.schema_errors:
            if error.reason_code == SchemaErrorReason.COLUMN_NOT_IN_DATAFRAME:
                missing.add(str(error.failure_cases))
            else:
                other.append(f"{error.column_name or 'header'}: {error}")
        ordered = [name for name in MANDATORY_COLUMNS if name in missing]
        return [_missing_message(name, unique) for name in ordered] + other
    return []


def _missing_message(name: str, columns: list[str]) -> str:
    near = [c for c in columns if _loose(c) == _loose(name)]
    if not near:
        return f"missing mandatory column {name!r}"
    found = ", ".join(repr(c) for c in near)
    return (
        f"missing mandatory column {name!r} "
        f"(found {found}: column names are case- and space-sensitive)"
    )


@functools.cache
def _mart_sale_model() -> type:
    with _environment_restored():
        import pandera.pyspark as ps
    import pyspark.sql.types as T

    class MartSale(ps.DataFrameModel):
        """One enriched sale, as the Spark transform produces it before the marts are written.

        Extra columns (the dimension attributes joined in) are allowed.
        """

        customer_id: T.LongType() = ps.Field(nullable=False)
        store_id: T.LongType() = ps.Field(nullable=False)
        product_name: T.StringType() = ps.Field(nullable=False)
        sales_date: T.DateType() = ps.Field(nullable=False)
        sales_person_id: T.LongType() = ps.Field(nullable=False)
        price: T.DecimalType(18, 2) = ps.Field(nullable=False, ge=0)
        quantity: T.IntegerType() = ps.Field(nullable=False, gt=0)
        total_cost: T.DecimalType(18, 2) = ps.Field(nullable=False)
        sales_month: T.StringType() = ps.Field(
            nullable=False, str_matches=r"^[0-9]{4}-(0[1-9]|1[0-2])$"
        )
        source_file: T.StringType() = ps.Field(nullable=False)
        additional_column: T.StringType() = ps.Field(nullable=True)

        class Config:
            """Extra columns allowed."""

            name = "MartSale"
            strict = False

    return MartSale


def __getattr__(name: str) -> Any:
    # ``MartSale`` is built on first access so importing this module does not import pyspark.
    if name == "MartSale":
        return _mart_sale_model()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def validate_mart_frame(df: "DataFrame", depth: str = "SCHEMA_ONLY") -> list[str]:
    """Validate the enriched Spark frame against ``MartSale``.

    Args:
        df: The enriched pyspark DataFrame (create the SparkSession before calling this).
        depth: ``SCHEMA_ONLY`` (column presence and types; no Spark job) or
            ``SCHEMA_AND_DATA`` (also nulls and value checks such as ``price >= 0`` over every
            row; runs Spark jobs), or ``DATA_ONLY``.

    Returns:
        One line per problem, ``"<CATEGORY>/<REASON> column '<name>': <message>"``; empty when
        the frame is valid.

    Raises:
        ValueError: ``depth`` is not one of :data:`VALIDATION_DEPTHS`.
    """
    if depth not in VALIDATION_DEPTHS:
        raise ValueError(f"validation depth must be one of {VALIDATION_DEPTHS}, got {depth!r}")
    from pandera.config import config_context

    model = _mart_sale_model()
    if depth == "SCHEMA_ONLY":
        # Structure only: on the real frame pandera's nullable checks scan every row (~12 s
        # for 10M rows, measured); on an empty frame with the same schema they cost nothing.
        df = df.limit(0)
    with config_context(validation_depth=depth):
        checked = model.validate(df, lazy=True)
        report = checked.pandera.errors or {}
    problems = []
    for category, reasons in report.items():
        for reason, errors in reasons.items():
            for error in errors:
                column = error.get("column")
                if reason == SchemaErrorReason.COLUMN_NOT_IN_DATAFRAME.name:
                    # pandera appends a sample row to this message: keep data out of logs.
                    message = f"column {column!r} not in dataframe"
                else:
                    message = str(error.get("error"))
                problems.append(f"{category}/{reason} column {column!r}: {message}")
    return problems
