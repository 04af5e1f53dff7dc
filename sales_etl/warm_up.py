"""Warm a small batch's JVM while Prefect starts (issue 16, section 3).

On a 1,000-row batch Spark's first jobs cost seconds each for loading classes, generating and
compiling code, not for rows: measured, the first Parquet write of a fresh JVM took 6.7 s and
the same classify pass 12 s the first time against 2 s the second. :func:`warm_up` runs the
Spark stage's code paths once on a made-up batch of two rows, in the background thread that
started the JVM (:func:`sales_etl.spark.start_spark_in_background`), while the main thread
waits for Prefect's server and validates the files. Nothing it makes outlives it: its files go
to a temporary folder under ``spark.local.dir``, and no run state is touched.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: The made-up batch: one good row and one the rules quarantine (unknown customer).
_ROWS = (
    ("1", "1", "pen", "2024-01-05", "1", "2.50", "2", "5.00"),
    ("9", "1", "ink", "2024-01-06", "1", "1.00", "1", "1.00"),
)


def warm_up(spark: SparkSession) -> None:
    """Run classify, row counts, the pandera schema check, one partitioned mart write and the
    month aggregate once on :data:`_ROWS` (results thrown away). Raises what Spark raises."""
    from sales_etl.rules.transform import (
        Dimensions,
        classify_sales,
        customer_mart,
        customer_month_totals,
        normalise_raw_columns,
        raw_sales_schema,
        row_outcomes,
        sales_team_mart,
    )
    from sales_etl.tasks.marts import CSV_OPTIONS
    from sales_etl.validators.model import MANDATORY_COLUMNS
    from sales_etl.validators.schemas import validate_mart_frame

    local_dir = spark.conf.get("spark.local.dir", None) or tempfile.gettempdir()
    folder = Path(tempfile.mkdtemp(prefix="sales-etl-warm-up-", dir=local_dir))
    try:
        csv = folder / "batch.csv"
        csv.write_text(
            "\n".join([",".join(MANDATORY_COLUMNS), *(",".join(r) for r in _ROWS)]) + "\n"
        )
        dims = Dimensions(  # through Arrow, as tasks/dimensions.py builds them
            customer=spark.createDataFrame(
                pa.table(
                    {
                        "customer_id": pa.array([1], pa.int64()),
                        **{c: ["x"] for c in ("first_name", "last_name", "address")},
                        **{c: ["1"] for c in ("pincode", "phone_number")},
                    }
                )
            ),
            store=spark.createDataFrame(
                pa.table(
                    {
                        "store_id": pa.array([1], pa.int64()),
                        "store_address": ["x"],
                        "store_manager_name": ["x"],
                    }
                )
            ),
            sales_team=spark.createDataFrame(
                pa.table(
                    {
                        "sales_person_id": pa.array([1], pa.int64()),
                        "first_name": ["x"],
                        "last_name": ["x"],
                        "manager_id": pa.array([None], pa.int64()),
                        **{c: pa.array(["x"], pa.string()) for c in ("is_manager", "address")},
                        "pincode": ["1"],
                    }
                )
            ),
        )
        raw = normalise_raw_columns(
            spark.read.options(**CSV_OPTIONS)
            .schema(raw_sales_schema(MANDATORY_COLUMNS))
            .csv(str(csv)),
            MANDATORY_COLUMNS,
        )
        classify_sales(raw, dims, "warm-up").write.parquet(str(folder / "classified"))
        classified = spark.read.parquet(str(folder / "classified"))
        row_outcomes(classified).collect()
        classified = classified.withColumnRenamed("file_path", "source_file")
        validate_mart_frame(sales_team_mart(classified, dims))
        customer_mart(classified, dims).write.partitionBy("sales_month").parquet(
            str(folder / "mart")
        )
        customer_month_totals(spark.read.parquet(str(folder / "mart"))).toArrow()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
