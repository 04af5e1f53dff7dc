"""Read the dimension tables from the database into Spark.

Only the columns in :data:`sales_etl.db.schema.DIMENSION_COLUMNS_READ` are selected, by name, so
a user's tables made by the tutorial's DDL (INT AUTO_INCREMENT ids, CHAR(1) ``is_manager``,
TEXT / TIMESTAMP columns, extra columns) read the same as the product's own: MySQL INT and
BIGINT both arrive as Python ints (-> LongType), CHAR/VARCHAR/TEXT as str (-> StringType).
"""

from __future__ import annotations

import pyarrow as pa
from pydantic import SecretStr
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T
from sqlalchemy import Engine, Select, select

from sales_etl.db.engine import make_engine
from sales_etl.db.schema import DIMENSION_COLUMNS_READ, DIMENSION_TABLES, check_dimension_columns
from sales_etl.rules.transform import Dimensions
from sales_etl.spark import run_cache

_CUSTOMER_SCHEMA = T.StructType(
    [
        T.StructField("customer_id", T.LongType(), False),
        T.StructField("first_name", T.StringType()),
        T.StructField("last_name", T.StringType()),
        T.StructField("address", T.StringType()),
        T.StructField("pincode", T.StringType()),
        T.StructField("phone_number", T.StringType()),
    ]
)
_STORE_SCHEMA = T.StructType(
    [
        T.StructField("store_id", T.LongType(), False),
        T.StructField("store_address", T.StringType()),
        T.StructField("store_manager_name", T.StringType()),
    ]
)
_SALES_TEAM_SCHEMA = T.StructType(
    [
        T.StructField("sales_person_id", T.LongType(), False),
        T.StructField("first_name", T.StringType()),
        T.StructField("last_name", T.StringType()),
        T.StructField("manager_id", T.LongType()),
        T.StructField("is_manager", T.StringType()),
        T.StructField("address", T.StringType()),
        T.StructField("pincode", T.StringType()),
    ]
)


#: Rows fetched per round trip; the 1M-row customer table streams through in ~20 chunks.
FETCH_ROWS = 50_000


def _arrow_type(data_type: T.DataType) -> pa.DataType:
    if isinstance(data_type, T.LongType):
        return pa.int64()
    if isinstance(data_type, T.StringType):
        return pa.string()
    raise TypeError(f"no Arrow type for dimension column type {data_type!r}")


def _arrow_table(engine: Engine, query, schema: T.StructType) -> pa.Table:
    """Stream ``query`` (server-side cursor on MySQL) into a columnar Arrow table.

    Rows are converted chunk by chunk, so a dimension of a million rows costs its Arrow size
    (tens of MB) in the driver instead of a million Python row objects at once.
    """
    arrow_schema = pa.schema([(f.name, _arrow_type(f.dataType)) for f in schema.fields])
    batches = []
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=FETCH_ROWS).execute(query)
        for rows in result.partitions():
            columns = list(zip(*rows, strict=True))
            batches.append(
                pa.RecordBatch.from_arrays(
                    [
                        pa.array(col, type=field.type)
                        for col, field in zip(columns, arrow_schema, strict=True)
                    ],
                    schema=arrow_schema,
                )
            )
    return pa.Table.from_batches(batches, schema=arrow_schema)


def _frame(spark: SparkSession, engine: Engine, query, schema: T.StructType) -> DataFrame:
    return spark.createDataFrame(_arrow_table(engine, query, schema), schema=schema)


def run_dimensions(spark: SparkSession, database_url: str | SecretStr) -> Dimensions:
    """The dimensions for this run: read from the database once, then shared by the marts and
    the reporting step (see :func:`sales_etl.spark.run_cache`)."""
    cache = run_cache()
    key = ("dimensions", database_url)
    if key not in cache:
        engine = make_engine(database_url)
        try:
            # A user's table lacking a column is one ConfigError naming it, not a SQL error.
            check_dimension_columns(engine)
            cache[key] = read_dimensions(spark, engine)
        finally:
            engine.dispose()
    return cache[key]  # type: ignore[return-value]


def _columns_read(table_name: str) -> Select:
    table = DIMENSION_TABLES[table_name]
    return select(*[table.c[name] for name in DIMENSION_COLUMNS_READ[table_name]])


def read_dimensions(spark: SparkSession, engine: Engine) -> Dimensions:
    """Customer, store and sales-team tables as Spark frames named for the joins."""
    return Dimensions(
        customer=_frame(spark, engine, _columns_read("customer"), _CUSTOMER_SCHEMA),
        store=_frame(spark, engine, _columns_read("store"), _STORE_SCHEMA),
        sales_team=_frame(spark, engine, _columns_read("sales_team"), _SALES_TEAM_SCHEMA),
    )
