"""Spark's floor on this machine: the work no Spark version of the pipeline can avoid.

    python bench/spark_floor.py OUT_DIR MARTS_DIR FILE.csv...

Any Spark implementation has to parse every CSV byte once and encode both marts as Parquet
once. This script times exactly that and nothing else, with the pipeline's own session
settings, CSV options and Parquet options:

- ``csv scan``: every field of every file parsed (the pipeline's reader and read modes:
  ``tasks.marts.read_accepted_files`` with the files the validation scan finds splittable,
  written to Spark's ``noop`` sink);
- ``customer mart write`` / ``sales team mart write``: the rows the pipeline wrote (read back
  from ``MARTS_DIR``) written again with the same partitioning, minus the time to read them
  (measured separately), so only the encoding and the partitioned write remain.

No rules, no joins, no scratch files, no Prefect, no database, no archive. The sum is a lower
bound for the pipeline's time; ``bench/run.py --floor`` sets it against the DuckDB reference.
Prints one JSON line: ``{"stages": {...}, "floor_seconds": ...}``.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

from sales_etl.layout import CUSTOMER_MART, MART_PARTITIONS, SALES_TEAM_MART
from sales_etl.settings import Settings
from sales_etl.spark import start_spark, stop_spark
from sales_etl.storage import open_store
from sales_etl.tasks.marts import MART_WRITE_OPTIONS, read_accepted_files
from sales_etl.timing import StageClock
from sales_etl.validators.model import IncomingFile


def main(argv: list[str]) -> int:
    """Time the unavoidable Spark work over the given files and marts; print JSON."""
    out, marts, files = Path(argv[0]), Path(argv[1]), argv[2:]
    shutil.rmtree(out, ignore_errors=True)
    clock = StageClock()
    with clock.stage("spark start"):
        spark = start_spark(Settings())
    try:
        with open(files[0], encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle))  # RFC 4180, like the validators read it
        store = open_store("/")
        keys = [str(Path(f).resolve()).lstrip("/") for f in files]
        split = {k for k in keys if IncomingFile.scan(store, k).splittable}  # untimed
        lines = read_accepted_files(spark, store, [(k, header) for k in keys], splittable=split)
        with clock.stage("csv scan"):
            lines.write.format("noop").mode("overwrite").save()
        for mart in (CUSTOMER_MART, SALES_TEAM_MART):
            rows = spark.read.parquet(str(marts / mart))
            with clock.stage(f"{mart} read"):
                rows.write.format("noop").mode("overwrite").save()
            with clock.stage(f"{mart} read + write"):
                (
                    rows.write.mode("overwrite")
                    .options(**MART_WRITE_OPTIONS.get(mart, {}))
                    .partitionBy(*MART_PARTITIONS[mart])
                    .parquet(str(out / mart))
                )
    finally:
        stop_spark()
    stages = clock.seconds
    floor = stages["csv scan"] + sum(
        stages[f"{mart} read + write"] - stages[f"{mart} read"]
        for mart in (CUSTOMER_MART, SALES_TEAM_MART)
    )
    print(json.dumps({"stages": stages, "floor_seconds": round(floor, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
