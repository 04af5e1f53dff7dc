"""Pure Spark transforms: DataFrames in, DataFrames out, configuration as arguments.

Nothing here reads or writes storage or the database, so every rule is tested with tiny
in-memory frames (tests/test_transform.py).

Row rules (DESIGN.md "Input rules"): a row is quarantined with a ``reason`` listing every rule
it breaks, in a fixed order; every other row is loaded. The reason codes are:

``malformed_row``            wrong number of fields for the file's header (``raw_record`` keeps
                             the line, cut to ``RAW_RECORD_MAX_CHARS`` with a note)
``missing_<column>``         a mandatory value is empty
``invalid_<column>``         a value does not parse (ids: non-negative integers up to 18 digits;
                             ``sales_date``: a real ``YYYY-MM-DD`` date; ``price``/``total_cost``:
                             decimals with at most 2 fractional digits; ``quantity``: an integer)
``non_positive_quantity``    quantity <= 0
``negative_price``           price < 0
``total_cost_mismatch``      |total_cost - price * quantity| > 0.01
``unknown_<id column>``      customer, store or sales person not in its dimension table

:func:`reason_codes` lists them all (``sales-etl replay --reason`` checks against it).
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
#: A quarantined ``raw_record`` keeps at most this many characters of the line Spark could not
#: split, then a note saying it was cut and how long the line was: a poison line can be
#: megabytes (up to ``MAX_RECORD_FIELDS`` commas), and the quarantine is read by people.
RAW_RECORD_MAX_CHARS = 4096

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


def reason_codes() -> tuple[str, ...]:
    """Every reason code :func:`classify_sales` can give, in reason order."""
    return (
        "malformed_row",
        *[f"missing_{name}" for name in MANDATORY_COLUMNS],
        *[f"invalid_{name}" for name in MANDATORY_COLUMNS],
        "non_positive_quantity",
        "negative_price",
        "total_cost_mismatch",
        *[f"unknown_{name}" for name in ID_COLUMNS],
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


def _clean(column: Column) -> Column:
    """The trimmed value, null when empty."""
    return F.nullif(F.trim(column), F.lit(""))


def _cleaned(name: str) -> str:
    return f"c_{name}"


# Shape checks. \z rather than $: Java's $ also matches before a final line break, and a quoted
# CSV field may end in one ("5<LF>" must not pass as an id).
_ID_PATTERN = r"^[0-9]{1,18}\z"
_QUANTITY_PATTERN = r"^-?[0-9]{1,9}\z"
_MONEY_PATTERN = r"^-?[0-9]{1,16}(\.[0-9]{1,2})?\z"
_DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\z"


def is_id(value: Column) -> Column:
    """``[0-9]{1,18}``: a non-negative integer that fits a BIGINT."""
    return value.rlike(_ID_PATTERN)


def is_quantity(value: Column) -> Column:
    """``-?[0-9]{1,9}``: an integer that fits an INT."""
    return value.rlike(_QUANTITY_PATTERN)


def is_money(value: Column) -> Column:
    r"""``-?[0-9]{1,16}(\.[0-9]{1,2})?``: fits a DECIMAL(18,2) without rounding."""
    return value.rlike(_MONEY_PATTERN)


def is_iso_date(value: Column) -> Column:
    """``[0-9]{4}-[0-9]{2}-[0-9]{2}`` (whether the day exists is left to the cast)."""
    return value.rlike(_DATE_PATTERN)


def _parse_if(valid: Column, parsed: Column) -> Column:
    """``parsed`` where the cleaned value has the right shape, else null (also for missing)."""
    return F.when(valid, parsed)


def parse_sales(raw: DataFrame) -> DataFrame:
    """Add cleaned ``c_<column>`` and typed ``p_<column>`` columns to the raw frame.

    Every value is trimmed once (``c_``); the typed value is null where the cleaned one is
    missing or does not match its pattern. Two projections, so each trim, regex and cast runs
    once per row instead of once per rule that looks at it.
    """
    cleaned = raw.select(
        "*", *[_clean(F.col(name)).alias(_cleaned(name)) for name in MANDATORY_COLUMNS]
    )

    def c(name: str) -> Column:
        return F.col(_cleaned(name))

    typed = {
        "p_customer_id": _parse_if(is_id(c("customer_id")), c("customer_id").try_cast("long")),
        "p_store_id": _parse_if(is_id(c("store_id")), c("store_id").try_cast("long")),
        "p_sales_person_id": _parse_if(
            is_id(c("sales_person_id")), c("sales_person_id").try_cast("long")
        ),
        "p_product_name": c("product_name"),
        # The shape check fixes the format; the cast rejects impossible dates like 2024-02-30.
        "p_sales_date": _parse_if(is_iso_date(c("sales_date")), c("sales_date").try_cast("date")),
        "p_price": _parse_if(is_money(c("price")), c("price").try_cast(MONEY)),
        "p_quantity": _parse_if(is_quantity(c("quantity")), c("quantity").try_cast("int")),
        "p_total_cost": _parse_if(is_money(c("total_cost")), c("total_cost").try_cast(MONEY)),
    }
    return cleaned.select("*", *[expr.alias(name) for name, expr in typed.items()])


def _rule(condition: Column, code: str) -> Column:
    return F.when(condition, F.lit(code))


def row_rule_reasons(parsed: DataFrame) -> list[Column]:
    """The per-row rule checks that need no dimension table, in reason order."""
    checks = [_rule(F.col("raw_record").isNotNull(), "malformed_row")]
    for name in MANDATORY_COLUMNS:
        checks.append(_rule(F.col(_cleaned(name)).isNull(), f"missing_{name}"))
    for name in MANDATORY_COLUMNS:
        checks.append(
            _rule(
                F.col(_cleaned(name)).isNotNull() & F.col(f"p_{name}").isNull(), f"invalid_{name}"
            )
        )
    checks.append(_rule(F.col("p_quantity") <= 0, "non_positive_quantity"))
    checks.append(_rule(F.col("p_price") < 0, "negative_price"))
    mismatch = F.abs(F.col("p_total_cost") - F.col("p_price") * F.col("p_quantity"))
    checks.append(_rule(mismatch > F.lit(0.01).cast(MONEY), "total_cost_mismatch"))
    return checks


def _known_ids(frame: DataFrame, id_column: str) -> DataFrame:
    """The ids of one dimension, to flag unknown ids with a broadcast left join."""
    return frame.select(F.col(id_column).alias(f"d_{id_column}")).distinct()


def classify_sales(
    raw: DataFrame, dims: Dimensions, batch_id: str, carry: Sequence[str] = ()
) -> DataFrame:
    """Parse and judge every row; the one pass over the raw CSV values.

    Returns one row per input row: the typed sale (``customer_id`` ... ``total_cost``),
    ``sales_month``, ``reason`` (null for a row to load), ``additional_column``, ``file_path``,
    ``batch_id`` and, for quarantined rows only, the original strings (``raw_<column>``,
    ``raw_record``). Dimension attributes are not carried here: only their ids are joined
    (broadcast, left, so no row can vanish), and :func:`customer_mart` /
    :func:`sales_team_mart` attach the attributes to the loaded rows. ``carry``: columns of
    ``raw`` passed through unchanged (a replay's row identity, tasks/replay.py).
    """
    parsed = parse_sales(raw)
    rules = F.concat_ws(",", *row_rule_reasons(parsed))
    judged = parsed.select("*", F.nullif(rules, F.lit("")).alias("row_reason"))
    joined = (
        judged.join(
            F.broadcast(_known_ids(dims.customer, "customer_id")),
            F.col("p_customer_id") == F.col("d_customer_id"),
            "left",
        )
        .join(
            F.broadcast(_known_ids(dims.store, "store_id")),
            F.col("p_store_id") == F.col("d_store_id"),
            "left",
        )
        .join(
            F.broadcast(_known_ids(dims.sales_team, "sales_person_id")),
            F.col("p_sales_person_id") == F.col("d_sales_person_id"),
            "left",
        )
    )
    unknown = [
        _rule(F.col(f"p_{name}").isNotNull() & F.col(f"d_{name}").isNull(), f"unknown_{name}")
        for name in ID_COLUMNS
    ]
    reason = F.nullif(F.concat_ws(",", F.col("row_reason"), *unknown), F.lit(""))
    with_reason = joined.select("*", reason.alias("reason"))
    rejected = F.col("reason").isNotNull()
    return with_reason.select(
        *[F.col(f"p_{name}").alias(name) for name in MANDATORY_COLUMNS],
        # The sales_date pattern makes its first 7 characters the month.
        F.when(F.col("p_sales_date").isNotNull(), F.substring("c_sales_date", 1, 7)).alias(
            "sales_month"
        ),
        "reason",
        "additional_column",
        "file_path",
        F.lit(batch_id).alias("batch_id"),
        # The original strings are only needed for the quarantine; null costs ~nothing.
        *[F.when(rejected, F.col(name)).alias(f"raw_{name}") for name in MANDATORY_COLUMNS],
        F.when(rejected, capped_raw_record(F.col("raw_record"))).alias("raw_record"),
        *carry,
    )


def capped_raw_record(raw_record: Column, max_chars: int = RAW_RECORD_MAX_CHARS) -> Column:
    """``raw_record`` cut to ``max_chars`` characters, with a note when it was cut.

    A longer value becomes its first ``max_chars`` characters followed by
    ``" [cut: <n> characters in all]"``; null and shorter values are unchanged.
    """
    return F.when(
        F.length(raw_record) > max_chars,
        F.concat(
            F.substring(raw_record, 1, max_chars),
            F.lit(" [cut: "),
            F.length(raw_record).cast("string"),
            F.lit(" characters in all]"),
        ),
    ).otherwise(raw_record)


def with_source_file(classified: DataFrame, path_to_key: DataFrame) -> DataFrame:
    """Replace Spark's ``file_path`` by the landing key, via a small mapping frame."""
    return classified.join(F.broadcast(path_to_key), "file_path", "left").drop("file_path")


def quarantine_rows(classified: DataFrame) -> DataFrame:
    """Rejected rows: original values, the reason and the source file."""
    return classified.where(F.col("reason").isNotNull()).select(
        *[F.col(f"raw_{name}").alias(name) for name in MANDATORY_COLUMNS],
        *QUARANTINE_COLUMNS[len(MANDATORY_COLUMNS) :],
    )


def _loaded(classified: DataFrame) -> DataFrame:
    return classified.where(F.col("reason").isNull())


def customer_mart(classified: DataFrame, dims: Dimensions) -> DataFrame:
    """One row per loaded sale, with the customer's attributes (broadcast join)."""
    customers = dims.customer.select(
        "customer_id", "first_name", "last_name", "address", "pincode", "phone_number"
    )
    return (
        _loaded(classified)
        .join(F.broadcast(customers), "customer_id", "left")
        .select(*CUSTOMER_MART_COLUMNS)
    )


def sales_team_mart(classified: DataFrame, dims: Dimensions) -> DataFrame:
    """One row per loaded sale, with the sales person's and the store's attributes."""
    team = dims.sales_team.select(*SALES_TEAM_MART_COLUMNS[:7])  # the sales person's columns
    stores = dims.store.select("store_id", "store_address", "store_manager_name")
    return (
        _loaded(classified)
        .join(F.broadcast(team), "sales_person_id", "left")
        .join(F.broadcast(stores), "store_id", "left")
        .select(*SALES_TEAM_MART_COLUMNS)
    )


def row_outcomes(classified: DataFrame) -> DataFrame:
    """Counts per (file_path, reason, sales_month): the run's statistics in one small frame."""
    return classified.groupBy("file_path", "reason", "sales_month").count()


#: DECIMAL(20,2): a month's total of DECIMAL(18,2) amounts (the reporting recompute's type).
MONTH_TOTAL = T.DecimalType(20, 2)
CUSTOMER_MONTH_KEYS = ("sales_month", "customer_id")
SALES_PERSON_MONTH_KEYS = ("sales_month", "store_id", "sales_person_id")


def customer_month_totals(rows: DataFrame, amount: str = "total_cost") -> DataFrame:
    """Total spend per customer and month (``sales_month``, ``customer_id``, ``monthly_total``
    DECIMAL(20,2)) of customer-mart rows (``amount="total_cost"``) or of their partial
    aggregates (``amount="monthly_total"``, :func:`customer_month_partials`): a sum of exact
    decimal sums is the same decimal."""
    return rows.groupBy(*CUSTOMER_MONTH_KEYS).agg(
        F.sum(amount).cast(MONTH_TOTAL).alias("monthly_total")
    )


def sales_person_store_month_totals(rows: DataFrame, amount: str = "total_cost") -> DataFrame:
    """Sales per (sales_month, store_id, sales_person_id), ``total_sales`` DECIMAL(20,2): the
    input of incentive ranking, from sales-team mart rows (``amount="total_cost"``) or from
    their partial aggregates (``amount="total_sales"``, :func:`sales_person_month_partials`)."""
    return rows.groupBy(*SALES_PERSON_MONTH_KEYS).agg(
        F.sum(amount).cast(MONTH_TOTAL).alias("total_sales")
    )


def customer_month_partials(customer_mart_rows: DataFrame, *by: str) -> DataFrame:
    """One batch's partial aggregate of customer-mart rows (issue 16, section 2).

    Per (``sales_month``, ``customer_id``, ``*by``): ``monthly_total`` = sum of ``total_cost``
    as DECIMAL(18,2) (a batch's sum that does not fit fails the write: Spark's ANSI cast;
    the reporting column could not hold the month's total either) and ``sale_count`` (rows).
    """
    return customer_mart_rows.groupBy(
        F.col("sales_month").cast("string").alias("sales_month"),
        F.col("customer_id").cast("long").alias("customer_id"),
        *by,
    ).agg(
        F.sum("total_cost").cast(MONEY).alias("monthly_total"),
        F.count(F.lit(1)).alias("sale_count"),
    )


def sales_person_month_partials(sales_team_rows: DataFrame, *by: str) -> DataFrame:
    """One batch's partial aggregate of sales-team mart rows (issue 16, section 2).

    Per (``sales_month``, ``store_id``, ``sales_person_id``, ``*by``): ``total_sales`` = sum
    of ``total_cost`` as DECIMAL(18,2) and ``sale_count``. Per store, so it serves both
    incentive scopes (the company scope sums a person's stores).
    """
    return sales_team_rows.groupBy(
        F.col("sales_month").cast("string").alias("sales_month"),
        F.col("store_id").cast("long").alias("store_id"),
        F.col("sales_person_id").cast("long").alias("sales_person_id"),
        *by,
    ).agg(
        F.sum("total_cost").cast(MONEY).alias("total_sales"),
        F.count(F.lit(1)).alias("sale_count"),
    )
