"""Spark's own start + stop with one tiny job: the floor of a small ``sales-etl run`` (issue 16).

    python bench/spark_start_stop.py MASTER [JAVA_OPTIONS]

A new Python process imports pyspark, starts a session on ``MASTER`` (Spark's defaults
otherwise; ``JAVA_OPTIONS``, if given, become the driver's ``extraJavaOptions``), runs one job
(the sum of 1,000 numbers, collected) and stops the session. ``bench/run.py --scale`` measures
the whole process from outside; the script prints one JSON line with its inner phases
(seconds) for the breakdown.
"""

from __future__ import annotations

import json
import sys
import time


def main(argv: list[str]) -> int:
    """Start, one job, stop; print the phases as JSON."""
    master = argv[0]
    java_options = argv[1] if len(argv) > 1 else ""
    phases: dict[str, float] = {}
    start = time.perf_counter()
    from pyspark.sql import SparkSession

    phases["import pyspark"] = round(time.perf_counter() - start, 3)
    mark = time.perf_counter()
    builder = SparkSession.builder.master(master).appName("spark-start-stop")
    if java_options:
        builder = builder.config("spark.driver.extraJavaOptions", java_options)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    phases["session start"] = round(time.perf_counter() - mark, 3)
    mark = time.perf_counter()
    total = spark.range(1000).selectExpr("sum(id) AS total").collect()[0]["total"]
    phases["one tiny job"] = round(time.perf_counter() - mark, 3)
    mark = time.perf_counter()
    spark.stop()
    phases["session stop"] = round(time.perf_counter() - mark, 3)
    if total != 499500:
        raise SystemExit(f"the tiny job computed {total}, not 499500")
    print(json.dumps({"phases": phases, "total": total}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
