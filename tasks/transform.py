"""Pure Spark transforms: DataFrames in, DataFrames out, configuration as arguments.

Nothing here reads or writes storage or the database, so every rule is tested with tiny
in-memory frames (tests/test_transform.py).

Row rules (DESIGN.md "Input rules"): a row is quarantined with a ``reason`` listing every rule
it breaks, in a fixed order; every other row is loaded. The reason codes are:

``malformed_row``            wrong number of fields for the file's header
``missing_<column>``         a mandatory value is empty
``invalid_<column>``         a value does not parse (ids: non-negative integers up to 18 digits;
                             ``sales_date``: a real ``YYYY-MM-DD`` date; ``price``/``total_cost``:
                             decimals with at most 2 fractional digits; ``quantity``: an integer)
``non_positive_quantity``    quantity <= 0
``negative_price``           price < 0
``total_cost_mismatch``      |total_cost - price * quantity| > 0.01
``unknown_<id column>``      customer, store or sales person not in its dimension table
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sales_etl.validators.model import MANDATORY_COLUMNS

ID_COLUMNS = ("customer_id", "store_id", "sales_person_id")
MONEY = T.DecimalType(18, 2)
CORRUPT_COLUMN = "_corrupt_record"

_ID_PATTERN = r"^[0-9]{1,18}$"
_MONEY_PATTERN = r"^-?[0-9]{1,16}(\.[0-9]{1,2})?$"
_QUANTITY_PATTERN = r"^-?[0-9]{1,9}$"
_DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"

CUSTOMER_MART_COLUMNS = (
    "customer_id",
    "first_name",
    "last_name",
    "address",
    "pincode",
    "phone_number",
    "sales_date",
    "total_cost",
    "store_id",
    "product_name",
    "price",
    "quantity",
    "additional_column",
    "source_file",
    "batch_id",
    "sales_month",
)
SALES_TEAM_MART_COLUMNS = (
    "sales_person_id",
    "first_name",
    "last_name",
    "address",
    "pincode",
    "manager_id",
    "is_manager",
    "store_id",
    "store_address",
    "store_manager_name",
    "customer_id",
    "product_name",
    "sales_date",
    "price",
    "quantity",
    "total_cost",
    "additional_column",
    "source_file",
    "batch_id",
    "sales_month",
)
QUARANTINE_COLUMNS = (
    *MANDATORY_COLUMNS,
    "additional_column",
    "raw_record",
    "reason",
    "source_file",
    "batch_id",
)


@dataclass(frozen=True)
class Dimensions:
    """The dimension tables as Spark frames, already renamed for joining.

    ``customer``: customer_id, first_name, last_name, address, pincode, phone_number.
    ``store``: store_id, store_address, store_manager_name.
    ``sales_team``: sales_person_id, first_name, last_name, manager_id, is_manager, address, pincode.
    """

    customer: DataFrame
    store: DataFrame
    sales_team: DataFrame


def _raw_field(position: int) -> str:
    """Spark-side name of the file's column at ``position`` (0-based)."""
    return f"_c{position}"


def raw_sales_schema(header: Sequence[str]) -> T.StructType:
    """All-string schema, one positional field per header column, plus the corrupt-record column.

    The CSV reader applies it by position (``enforceSchema``), so the file's own column names
    never reach Spark's analyser: a name like ``_corrupt_record``, ``_metadata`` or one with a
    backtick cannot clash or break parsing. :func:`normalise_raw_columns` restores the names.
    """
    fields = [T.StructField(_raw_field(i), T.StringType(), True) for i in range(len(header))]
    fields.append(T.StructField(CORRUPT_COLUMN, T.StringType(), True))
    return T.StructType(fields)


def normalise_raw_columns(df: DataFrame, header: Sequence[str]) -> DataFrame:
    """Project one header group (read with :func:`raw_sales_schema`) to the common raw shape.

    Output: the mandatory columns (strings), ``additional_column`` (JSON object of the extra
    columns in header order, null when the file has none), ``raw_record`` (the line Spark could
    not split, else null) and ``file_path`` (Spark's path of the source file).
    """
    position = {name: i for i, name in enumerate(header)}
    extras = [(i, name) for i, name in enumerate(header) if name not in MANDATORY_COLUMNS]
    if extras:
        additional = F.to_json(
            F.struct(*[F.col(_raw_field(i)).alias(name) for i, name in extras]),
            {"ignoreNullFields": "false"},
        )
    else:
        additional = F.lit(None).cast(T.StringType())
    return df.select(
        *[F.col(_raw_field(position[name])).alias(name) for name in MANDATORY_COLUMNS],
        additional.alias("additional_column"),
        F.col(CORRUPT_COLUMN).alias("raw_record"),
        F.col("_metadata.file_path").alias("file_path"),
    )


def _clean(name: str) -> Column:
    """The trimmed value, null when empty."""
    trimmed = F.trim(F.col(name))
    return F.when(trimmed == "", None).otherwise(trimmed)


def _parse_if(pattern: str, value: Column, parsed: Column) -> Column:
    return F.when(value.rlike(pattern), parsed)


def parse_sales(raw: DataFrame) -> DataFrame:
    """Add typed ``p_<column>`` columns (null where missing or unparsable) to the raw frame."""
    cleaned = {name: _clean(name) for name in MANDATORY_COLUMNS}
    typed = {
        "p_customer_id": _parse_if(
            _ID_PATTERN, cleaned["customer_id"], cleaned["customer_id"].try_cast(T.LongType())
        ),
        "p_store_id": _parse_if(
            _ID_PATTERN, cleaned["store_id"], cleaned["store_id"].try_cast(T.LongType())
        ),
        "p_sales_person_id": _parse_if(
            _ID_PATTERN,
            cleaned["sales_person_id"],
            cleaned["sales_person_id"].try_cast(T.LongType()),
        ),
        "p_product_name": cleaned["product_name"],
        "p_sales_date": _parse_if(
            _DATE_PATTERN,
            cleaned["sales_date"],
            F.expr("try_to_date(trim(sales_date), 'yyyy-MM-dd')"),
        ),
        "p_price": _parse_if(_MONEY_PATTERN, cleaned["price"], cleaned["price"].try_cast(MONEY)),
        "p_quantity": _parse_if(
            _QUANTITY_PATTERN, cleaned["quantity"], cleaned["quantity"].try_cast(T.IntegerType())
        ),
        "p_total_cost": _parse_if(
            _MONEY_PATTERN, cleaned["total_cost"], cleaned["total_cost"].try_cast(MONEY)
        ),
    }
    return raw.select("*", *[expr.alias(name) for name, expr in typed.items()])


def _rule(condition: Column, code: str) -> Column:
    return F.when(condition, F.lit(code))


def row_rule_reasons(parsed: DataFrame) -> list[Column]:
    """The per-row rule checks that need no dimension table, in reason order."""
    checks = [_rule(F.col("raw_record").isNotNull(), "malformed_row")]
    for name in MANDATORY_COLUMNS:
        checks.append(_rule(_clean(name).isNull(), f"missing_{name}"))
    for name in MANDATORY_COLUMNS:
        checks.append(
            _rule(_clean(name).isNotNull() & F.col(f"p_{name}").isNull(), f"invalid_{name}")
        )
    checks.append(_rule(F.col("p_quantity") <= 0, "non_positive_quantity"))
    checks.append(_rule(F.col("p_price") < 0, "negative_price"))
    mismatch = F.abs(F.col("p_total_cost") - F.col("p_price") * F.col("p_quantity"))
    checks.append(_rule(mismatch > F.lit(0.01).cast(MONEY), "total_cost_mismatch"))
    return checks


def classify_sales(raw: DataFrame, dims: Dimensions, batch_id: str) -> DataFrame:
    """Parse, enrich and judge every row.

    Returns one row per input row with the raw strings, the typed values, the dimension
    attributes, ``sales_month`` and ``reason`` (null for a row to load). Unknown ids are found
    with left joins, so no row can vanish in a join.
    """
    parsed = parse_sales(raw)
    customers = dims.customer.select(
        F.col("customer_id").alias("d_customer_id"),
        F.col("first_name").alias("c_first_name"),
        F.col("last_name").alias("c_last_name"),
        F.col("address").alias("c_address"),
        F.col("pincode").alias("c_pincode"),
        F.col("phone_number").alias("c_phone_number"),
    )
    stores = dims.store.select(
        F.col("store_id").alias("d_store_id"), "store_address", "store_manager_name"
    )
    team = dims.sales_team.select(
        F.col("sales_person_id").alias("d_sales_person_id"),
        F.col("first_name").alias("s_first_name"),
        F.col("last_name").alias("s_last_name"),
        F.col("manager_id").alias("s_manager_id"),
        F.col("is_manager").alias("s_is_manager"),
        F.col("address").alias("s_address"),
        F.col("pincode").alias("s_pincode"),
    )
    joined = (
        parsed.join(F.broadcast(stores), F.col("p_store_id") == F.col("d_store_id"), "left")
        .join(F.broadcast(team), F.col("p_sales_person_id") == F.col("d_sales_person_id"), "left")
        .join(customers, F.col("p_customer_id") == F.col("d_customer_id"), "left")
    )
    checks = row_rule_reasons(parsed)
    for name in ID_COLUMNS:
        unknown = F.col(f"p_{name}").isNotNull() & F.col(f"d_{name}").isNull()
        checks.append(_rule(unknown, f"unknown_{name}"))
    reason = F.concat_ws(",", *checks)
    return joined.select(
        "*",
        F.when(reason == "", None).otherwise(reason).alias("reason"),
        F.date_format(F.col("p_sales_date"), "yyyy-MM").alias("sales_month"),
        F.lit(batch_id).alias("batch_id"),
    )


def with_source_file(classified: DataFrame, path_to_key: DataFrame) -> DataFrame:
    """Replace Spark's ``file_path`` by the landing key, via a small mapping frame."""
    return classified.join(F.broadcast(path_to_key), "file_path", "left").drop("file_path")


def quarantine_rows(classified: DataFrame) -> DataFrame:
    """Rejected rows: original values, the reason and the source file."""
    return classified.where(F.col("reason").isNotNull()).select(*QUARANTINE_COLUMNS)


def _loaded(classified: DataFrame) -> DataFrame:
    return classified.where(F.col("reason").isNull())


def _typed_sale_columns() -> list[Column]:
    return [
        F.col("p_customer_id").alias("customer_id"),
        F.col("p_store_id").alias("store_id"),
        F.col("p_product_name").alias("product_name"),
        F.col("p_sales_date").alias("sales_date"),
        F.col("p_sales_person_id").alias("sales_person_id"),
        F.col("p_price").alias("price"),
        F.col("p_quantity").alias("quantity"),
        F.col("p_total_cost").alias("total_cost"),
    ]


def customer_mart(classified: DataFrame) -> DataFrame:
    """One row per loaded sale, with the customer's attributes."""
    return (
        _loaded(classified)
        .select(
            *_typed_sale_columns(),
            F.col("c_first_name").alias("first_name"),
            F.col("c_last_name").alias("last_name"),
            F.col("c_address").alias("address"),
            F.col("c_pincode").alias("pincode"),
            F.col("c_phone_number").alias("phone_number"),
            "additional_column",
            "source_file",
            "batch_id",
            "sales_month",
        )
        .select(*CUSTOMER_MART_COLUMNS)
    )


def sales_team_mart(classified: DataFrame) -> DataFrame:
    """One row per loaded sale, with the sales person's and the store's attributes."""
    return (
        _loaded(classified)
        .select(
            *_typed_sale_columns(),
            F.col("s_first_name").alias("first_name"),
            F.col("s_last_name").alias("last_name"),
            F.col("s_address").alias("address"),
            F.col("s_pincode").alias("pincode"),
            F.col("s_manager_id").alias("manager_id"),
            F.col("s_is_manager").alias("is_manager"),
            "store_address",
            "store_manager_name",
            "additional_column",
            "source_file",
            "batch_id",
            "sales_month",
        )
        .select(*SALES_TEAM_MART_COLUMNS)
    )


def row_outcomes(classified: DataFrame) -> DataFrame:
    """Counts per (file_path, reason, sales_month): the run's statistics in one small frame."""
    return classified.groupBy("file_path", "reason", "sales_month").count()


def customer_month_totals(customer_mart_rows: DataFrame) -> DataFrame:
    """Total spend per customer and month (``sales_month``, ``customer_id``, ``monthly_total``)."""
    return customer_mart_rows.groupBy("sales_month", "customer_id").agg(
        F.sum("total_cost").cast(T.DecimalType(20, 2)).alias("monthly_total")
    )


def sales_person_store_month_totals(sales_team_rows: DataFrame) -> DataFrame:
    """Sales per (sales_month, store_id, sales_person_id): the input of incentive ranking."""
    return sales_team_rows.groupBy("sales_month", "store_id", "sales_person_id").agg(
        F.sum("total_cost").cast(T.DecimalType(20, 2)).alias("total_sales")
    )
