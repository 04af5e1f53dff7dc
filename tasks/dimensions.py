"""Read the dimension tables from the database into Spark."""

from __future__ import annotations

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T
from sales_etl.tasks.transform import Dimensions
from sqlalchemy import Engine, select

from sales_etl.db.schema import customer, sales_team, store

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


def _frame(spark: SparkSession, engine: Engine, query, schema: T.StructType) -> DataFrame:
    with engine.connect() as conn:
        pdf = pd.read_sql(query, conn)
    pdf.columns = schema.fieldNames()
    # Object columns keep Python ints/None; nullable ints come back as float otherwise.
    pdf = pdf.astype(object).where(pdf.notna(), None)
    return spark.createDataFrame(pdf, schema=schema)


def read_dimensions(spark: SparkSession, engine: Engine) -> Dimensions:
    """Customer, store and sales-team tables as Spark frames named for the joins."""
    return Dimensions(
        customer=_frame(
            spark,
            engine,
            select(
                customer.c.customer_id,
                customer.c.first_name,
                customer.c.last_name,
                customer.c.address,
                customer.c.pincode,
                customer.c.phone_number,
            ),
            _CUSTOMER_SCHEMA,
        ),
        store=_frame(
            spark,
            engine,
            select(store.c.id, store.c.address, store.c.store_manager_name),
            _STORE_SCHEMA,
        ),
        sales_team=_frame(
            spark,
            engine,
            select(
                sales_team.c.id,
                sales_team.c.first_name,
                sales_team.c.last_name,
                sales_team.c.manager_id,
                sales_team.c.is_manager,
                sales_team.c.address,
                sales_team.c.pincode,
            ),
            _SALES_TEAM_SCHEMA,
        ),
    )
