"""Per-batch partial aggregates of the sale marts (issue 16, section 2).

Every batch that loads rows writes, next to its marts in its scratch folder, two small Parquet
aggregates of exactly the rows it adds to the marts (:func:`write_batch_partials`):

- ``partial_aggregates/customer_month/sales_month=YYYY-MM/<batch>-part-*.parquet``:
  ``customer_id``, ``monthly_total`` (sum of ``total_cost``, DECIMAL(18,2)), ``sale_count``;
- ``partial_aggregates/sales_person_store_month/sales_month=YYYY-MM/<batch>-part-*.parquet``:
  ``store_id``, ``sales_person_id``, ``total_sales`` (DECIMAL(18,2)), ``sale_count``.

They are published, rolled back and dropped with the batch's mart files
(:mod:`sales_etl.mart_batches`, :data:`~sales_etl.layout.BATCH_FOLDERS`), so the committed
batches' partials aggregate exactly the committed mart rows, and the reporting recompute of a
month (:mod:`sales_etl.tasks.reporting`) sums the month's partials instead of re-reading its
mart rows: its cost follows the number of (batch, customer) pairs, not the month's sales.

Marts written before partials existed have batches with mart files but no partial file in a
month ("legacy" batches). :func:`read_partials` aggregates their mart rows on the fly, so a
recompute is exact whatever the backfill reached, and :func:`backfill_partials` (the first
recompute of such a month) writes them once, one file per (batch, month), each moved into
place whole: a crash leaves a batch's partial there complete or not at all.
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sales_etl.faults import crash_point
from sales_etl.layout import PARTIAL_SOURCES, incoming_prefix, published_name
from sales_etl.rules.transform import customer_month_partials, sales_person_month_partials
from sales_etl.storage import ObjectStore

#: Partial aggregate folder -> the pure transform that makes it from its mart's rows.
AGGREGATES: dict[str, Callable[..., DataFrame]] = {
    partial: aggregate
    for partial, aggregate in zip(
        PARTIAL_SOURCES, (customer_month_partials, sales_person_month_partials), strict=True
    )
}
#: A published file name: ``<batch id>-<name>`` (sales_etl.layout.published_name).
_PUBLISHED = re.compile(r"^([0-9]{8}_[0-9]{6})-.+\.parquet$")
#: The name a backfilled partial gets (one file per batch and month).
BACKFILL_FILE = "backfill.parquet"


def _write_by_month(rows: DataFrame, store: ObjectStore, key: str, *by: str) -> None:
    # One file per month (and per ``by`` value): a month's partial of a batch is one object.
    partitions = ("sales_month", *by)
    rows.repartition(*partitions).write.mode("overwrite").partitionBy(*partitions).parquet(
        store.spark_path(key)
    )


def write_batch_partials(spark: SparkSession, store: ObjectStore, batch_id: str) -> None:
    """Aggregate the batch's scratch marts into its scratch partial aggregates.

    Reads ``<marts>/_incoming/<batch>/<mart>`` (the files :func:`~sales_etl.mart_batches.
    publish_batch` will publish) and writes ``<marts>/_incoming/<batch>/partial_aggregates/...``,
    one file per month. Call only after both marts were written with at least one row.
    """
    for partial, mart in PARTIAL_SOURCES.items():
        rows = spark.read.parquet(store.spark_path(incoming_prefix(batch_id, mart)))
        _write_by_month(AGGREGATES[partial](rows), store, incoming_prefix(batch_id, partial))


def _files_by_batch(store: ObjectStore, folder: str, month: str) -> dict[str, list[str]]:
    """Batch id -> keys of its published Parquet files under ``folder/sales_month=month/``."""
    found: dict[str, list[str]] = defaultdict(list)
    for obj in store.list(f"{folder}/sales_month={month}/"):
        match = _PUBLISHED.match(posixpath.basename(obj.key))
        if match:
            found[match[1]].append(obj.key)
    return found


def legacy_batches(store: ObjectStore, partial: str, month: str) -> dict[str, list[str]]:
    """Batches with rows of ``month`` in ``partial``'s mart but no partial file of that month
    (written before partials existed): batch id -> its mart files of the month."""
    have = _files_by_batch(store, partial, month)
    mart = _files_by_batch(store, PARTIAL_SOURCES[partial], month)
    return {batch: keys for batch, keys in sorted(mart.items()) if batch not in have}


def _legacy_partials(
    spark: SparkSession, store: ObjectStore, partial: str, keys: Sequence[str]
) -> DataFrame:
    """Partials of the mart files ``keys``, per batch (``batch_id`` from the file name)."""
    mart = PARTIAL_SOURCES[partial]
    rows = (
        spark.read.option("basePath", store.spark_path(mart))
        .parquet(*[store.spark_path(k) for k in keys])
        .withColumn("batch_id", F.substring_index(F.col("_metadata.file_name"), "-", 1))
    )
    return AGGREGATES[partial](rows, "batch_id")


def read_partials(
    spark: SparkSession, store: ObjectStore, partial: str, months: Sequence[str]
) -> DataFrame | None:
    """Every published partial aggregate row of ``months`` (with ``sales_month``), plus those
    of legacy batches aggregated from their mart rows; None when the months hold no sale.

    ``partial``: :data:`~sales_etl.layout.CUSTOMER_MONTH_PARTIALS` or
    :data:`~sales_etl.layout.SALES_PERSON_MONTH_PARTIALS`. Only the listed months' folders
    are read (partition pruning by path).
    """
    published = [m for m in months if _files_by_batch(store, partial, m)]
    legacy = [
        k for m in months for keys in legacy_batches(store, partial, m).values() for k in keys
    ]
    frames = []
    if published:
        frames.append(
            spark.read.option("basePath", store.spark_path(partial))
            .parquet(*[store.spark_path(f"{partial}/sales_month={m}") for m in published])
            .withColumn("sales_month", F.col("sales_month").cast("string"))
        )
    if legacy:
        frames.append(_legacy_partials(spark, store, partial, legacy).drop("batch_id"))
    if not frames:
        return None
    return reduce(lambda a, b: a.unionByName(b), frames)


def backfill_partials(
    spark: SparkSession, store: ObjectStore, months: Sequence[str], batch_id: str
) -> int:
    """Write the missing partial aggregates of legacy batches in ``months``; returns files moved.

    Computed from the batches' mart rows into the running batch's scratch folder
    (``_incoming/<batch_id>/backfill/``, dropped with it), then moved one file per
    (batch, month) to ``<partial>/sales_month=M/<legacy batch>-backfill.parquet``. The legacy
    batches are committed, so their partials are final: a rollback of ``batch_id`` keeps them.
    Idempotent (a batch with a partial file in a month is not legacy there) and crash-safe
    (a move is whole; a missing file is computed again by :func:`read_partials` and here).

    Raises:
        RuntimeError: Spark wrote more than one file for a (batch, month).
    """
    moved = 0
    for partial in PARTIAL_SOURCES:
        keys = [
            k for m in months for keys in legacy_batches(store, partial, m).values() for k in keys
        ]
        if not keys:
            continue
        scratch = incoming_prefix(batch_id, posixpath.join("backfill", partial))
        _write_by_month(_legacy_partials(spark, store, partial, keys), store, scratch, "batch_id")
        written: dict[tuple[str, str], list[str]] = defaultdict(list)
        for obj in store.list(scratch + "/"):
            *_, month_dir, batch_dir, name = obj.key.split("/")
            if name.endswith(".parquet") and not name.startswith((".", "_")):
                written[(month_dir, batch_dir.removeprefix("batch_id="))].append(obj.key)
        for (month_dir, legacy), files in sorted(written.items()):
            if len(files) != 1:
                raise RuntimeError(f"backfill of {partial}/{month_dir} batch {legacy}: {files}")
            target = posixpath.join(partial, month_dir, published_name(legacy, BACKFILL_FILE))
            store.move(files[0], target)
            moved += 1
            crash_point("during_partials_backfill")
    return moved
