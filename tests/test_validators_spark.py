"""pandera-pyspark validation of the enriched mart frame, on the session's SparkSession
(tests/conftest.py ``spark``: one session for every module, whatever order they run in)."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from pyspark.sql import types as T

from sales_etl.validators.schemas import validate_mart_frame

MART_SCHEMA = T.StructType(
    [
        T.StructField("customer_id", T.LongType(), False),
        T.StructField("store_id", T.LongType(), False),
        T.StructField("product_name", T.StringType(), False),
        T.StructField("sales_date", T.DateType(), False),
        T.StructField("sales_person_id", T.LongType(), False),
        T.StructField("price", T.DecimalType(18, 2), False),
        T.StructField("quantity", T.IntegerType(), False),
        T.StructField("total_cost", T.DecimalType(18, 2), False),
        T.StructField("sales_month", T.StringType(), False),
        T.StructField("source_file", T.StringType(), False),
        T.StructField("additional_column", T.StringType(), True),
        T.StructField("first_name", T.StringType(), True),  # an extra, joined-in column
    ]
)

GOOD_ROWS = [
    (1, 2, "apple", datetime.date(2024, 3, 1), 5, Decimal("1.50"), 2, Decimal("3.00"),
     "2024-03", "sales_1.csv", None, "Ann"),
    (3, 2, "pear", datetime.date(2024, 3, 2), 6, Decimal("2.00"), 1, Decimal("2.00"),
     "2024-03", "sales_1.csv", '{"promo": "x"}', "Bob"),
]  # fmt: skip


def test_good_frame_passes(spark) -> None:
    df = spark.createDataFrame(GOOD_ROWS, MART_SCHEMA)
    assert validate_mart_frame(df) == []


def test_wrong_type_and_missing_column_fail(spark) -> None:
    df = spark.createDataFrame(GOOD_ROWS, MART_SCHEMA)
    bad = df.drop("source_file").withColumn("quantity", df["quantity"].cast("long"))
    problems = validate_mart_frame(bad)
    assert sorted(problems) == [
        "SCHEMA/COLUMN_NOT_IN_DATAFRAME column 'source_file': "
        "column 'source_file' not in dataframe",
        "SCHEMA/WRONG_DATATYPE column 'quantity': "
        "expected column 'quantity' to have type IntegerType(), got LongType()",
    ]


def test_value_checks_run_only_at_data_depth(spark) -> None:
    row = list(GOOD_ROWS[0])
    row[5] = Decimal("-1.00")  # price < 0
    df = spark.createDataFrame([tuple(row)], MART_SCHEMA)
    assert validate_mart_frame(df, depth="SCHEMA_ONLY") == []
    problems = validate_mart_frame(df, depth="SCHEMA_AND_DATA")
    assert len(problems) == 1
    assert problems[0].startswith("DATA/DATAFRAME_CHECK column 'price':")
    assert "greater_than_or_equal_to(0)" in problems[0]
    with pytest.raises(ValueError, match="validation depth must be one of"):
        validate_mart_frame(df, depth="EVERYTHING")
