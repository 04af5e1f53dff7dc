"""Spark stage: read the accepted files' claimed copies once, judge every row, write the
marts into the batch's scratch folder, and publish them (:mod:`sales_etl.mart_batches`)."""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import pyarrow as pa
from prefect import get_run_logger
from pydantic import SecretStr
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sales_etl.db.engine import make_engine
from sales_etl.faults import crash_point
from sales_etl.file_fate import FileHold, RowCounts
from sales_etl.journal import claimed_copies
from sales_etl.layout import (
    CLASSIFIED,
    CUSTOMER_MART,
    MART_PARTITIONS,
    QUARANTINE,
    SALES_TEAM_MART,
    incoming_prefix,
)
from sales_etl.mart_batches import publish_batch
from sales_etl.rules.transform import (
    CORRUPT_COLUMN,
    Dimensions,
    classify_sales,
    customer_mart,
    normalise_raw_columns,
    quarantine_rows,
    raw_sales_schema,
    row_outcomes,
    sales_team_mart,
    with_source_file,
)
from sales_etl.settings import Settings
from sales_etl.spark import active_spark
from sales_etl.storage import ObjectStore, open_store
from sales_etl.tasks.dimensions import run_dimensions
from sales_etl.tasks.partials import write_batch_partials
from sales_etl.tasks.poison import InputFile, classify_without_poison_files
from sales_etl.tasks.retry import io_task
from sales_etl.timing import StageClock
from sales_etl.validators.model import SPARK_CSV_MAX_COLUMNS, TOO_MANY_BAD_ROWS
from sales_etl.validators.schemas import validate_mart_frame

CSV_OPTIONS = {
    "header": "true",  # the header line is skipped; names come from our own schema
    "enforceSchema": "true",
    # RFC 4180: quoted fields may hold newlines. multiLine cannot be split: one task per file.
    # read_accepted_files turns it off for the files validation found splittable.
    "multiLine": "true",
    "quote": '"',
    "escape": '"',  # RFC 4180 doubles quotes; Spark's default escape is a backslash
    "encoding": "UTF-8",
    "mode": "PERMISSIVE",
    "columnNameOfCorruptRecord": CORRUPT_COLUMN,
    "nullValue": "",
    "ignoreLeadingWhiteSpace": "false",
    "ignoreTrailingWhiteSpace": "false",
}


#: How many multiLine files the build-marts log line names.
MAX_LOGGED_FILES = 10

#: How many of a held file's most frequent reasons its report names.
TOP_REASONS = 3


@dataclass
class BatchStats:
    """Row outcomes of one batch: small enough to return from a task and to log.

    ``per_file``, ``months`` and the row totals cover the files that stay in the batch; a file
    in ``held`` (key -> why: :func:`bad_row_hold`, ``tasks.poison.poison_hold``) is taken out
    of it whole and counts nowhere.
    """

    per_file: dict[str, RowCounts] = field(default_factory=dict)
    held: dict[str, FileHold] = field(default_factory=dict)
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    months: list[str] = field(default_factory=list)
    rows_total: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    #: Keys Spark read split by line (:func:`line_mode_files`); the others with multiLine.
    split_by_line: list[str] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)


def max_columns_option(line_fields: Iterable[int]) -> int:
    """Spark's ``maxColumns`` for one read: its default, or more to cover the widest line.

    ``line_fields``: the files' ``max_line_fields`` (validation's scan; 0 = every line fits).
    A line wider than the default would make univocity throw ("Index 20480 out of bounds")
    and fail the whole read; covered, it parses and is quarantined as ``malformed_row``.
    Validation rejects files past ``MAX_RECORD_FIELDS``, which bounds this value.
    """
    return max([SPARK_CSV_MAX_COLUMNS, *(n + 1 for n in line_fields)])


def read_accepted_files(
    spark: SparkSession,
    store: ObjectStore,
    files: Sequence[tuple[str, Sequence[str]]],
    line_fields: Mapping[str, int] | None = None,
    splittable: Collection[str] = (),
) -> DataFrame:
    """One Spark read per distinct header and read mode, projected to a common raw shape.

    ``line_fields``: key -> the file's ``max_line_fields`` (missing: 0); each read's
    ``maxColumns`` covers its files (:func:`max_columns_option`). ``splittable``: keys of the
    files validation found splittable (``IncomingFile.splittable``): read in line mode, which
    Spark splits into tasks of ``spark.sql.files.maxPartitionBytes`` (128 MiB), so one big
    file uses every core. Every other file is read with ``multiLine`` (a quoted field may hold
    a line break), one task per file. Both modes give the same rows for a splittable file
    (tests/test_splittable_reads.py).
    """
    line_fields = line_fields or {}
    groups: dict[tuple[tuple[str, ...], bool], list[str]] = defaultdict(list)
    widths: dict[tuple[tuple[str, ...], bool], list[int]] = defaultdict(list)
    for key, header in files:
        group = (tuple(header), key in splittable)
        groups[group].append(store.spark_path(key))
        widths[group].append(line_fields.get(key, 0))
    frames = [
        normalise_raw_columns(
            spark.read.options(**CSV_OPTIONS)
            .option("multiLine", "false" if split else "true")
            .option("maxColumns", str(max_columns_option(widths[(header, split)])))
            .schema(raw_sales_schema(header))
            .csv(paths),
            header,
        )
        for (header, split), paths in groups.items()
    ]
    result = frames[0]
    for frame in frames[1:]:
        result = result.unionByName(frame)
    return result


def spark_split_bytes(spark: SparkSession, sizes: Iterable[int]) -> int:
    """The size Spark cuts a read of files of ``sizes`` (bytes) into: Spark SQL's
    ``FilePartition.maxSplitBytes``, min(``spark.sql.files.maxPartitionBytes``,
    max(``openCostInBytes``, (total bytes + one open cost per file) / ``minPartitionNum``,
    which defaults to the default parallelism)."""
    conf = spark._jsparkSession.sessionState().conf()
    open_cost = int(conf.filesOpenCostInBytes())
    min_partitions = spark.conf.get("spark.sql.files.minPartitionNum", None)
    partitions = int(min_partitions or spark._jsparkSession.leafNodeDefaultParallelism())
    total = sum(size + open_cost for size in sizes)
    return min(int(conf.filesMaxPartitionBytes()), max(open_cost, total // max(partitions, 1)))


def line_mode_files(
    spark: SparkSession, sizes: Mapping[str, int], splittable: Collection[str]
) -> set[str]:
    """The splittable files worth reading in line mode: those Spark would cut into two tasks
    or more (larger than :func:`spark_split_bytes` of the whole read, ``sizes``: key -> bytes).

    Line mode parses each line on its own and costs ~1.5x ``multiLine`` per byte (measured,
    pyspark 4.3, 4 files of 24 MB on local[2]: 2.18 s against 1.42 s), so it only pays where it
    brings parallelism: a file read whole would be one task.
    """
    split = spark_split_bytes(spark, sizes.values())
    return {key for key in splittable if sizes.get(key, 0) > split}


def read_modes(files: Sequence[tuple[str, Sequence[str]]], splittable: Collection[str]) -> str:
    """One log line: how many files Spark reads split by line, and which it reads whole."""
    whole = sorted(key for key, _ in files if key not in splittable)
    line = f"Spark reads {len(files) - len(whole)} file(s) split by line, {len(whole)} whole"
    if not whole:
        return line
    named = ", ".join(whole[:MAX_LOGGED_FILES])
    more = len(whole) - MAX_LOGGED_FILES
    return (
        f"{line} with multiLine (smaller than one Spark split, or holding a quoted line break, "
        f"a blank line, mixed line ends or quotes outside RFC 4180): {named}"
        + (f" and {more} more" if more > 0 else "")
    )


def bad_row_hold(
    counts: RowCounts, reasons: Mapping[str, int], max_bad_row_fraction: float
) -> FileHold | None:
    """The hold of a file whose quarantined share of rows exceeds the limit, else None.

    ``counts``: the file's rows; ``reasons``: quarantined rows per
    reason. The rule (issue 12, ``SALES_ETL_MAX_BAD_ROW_FRACTION``): held when
    quarantined / total > ``max_bad_row_fraction``, compared exactly (as fractions, not floats);
    a file with no rows is never held, and a limit of 1.0 holds nothing. The hold: category
    ``too_many_bad_rows``, a one-sentence reason, ``rows_total``, ``rows_bad`` and
    ``top_reasons`` (the :data:`TOP_REASONS` most frequent, ties by name).
    """
    total, bad = int(counts.total), int(counts.quarantined)
    limit = Fraction(repr(float(max_bad_row_fraction)))  # 0.1 means exactly 1/10
    if total == 0 or Fraction(bad, total) <= limit:
        return None
    top = dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_REASONS])
    reason = (
        f"{bad} of {total} rows ({bad / total:.0%}) are bad, more than "
        f"SALES_ETL_MAX_BAD_ROW_FRACTION={max_bad_row_fraction:g} allows; top reasons: "
        + ", ".join(f"{r} {n}" for r, n in top.items())
        + ". Nothing of it was loaded or quarantined: fix the file and send it again"
    )
    return FileHold(TOO_MANY_BAD_ROWS, reason, rows_total=total, rows_bad=bad, top_reasons=top)


def summarise_outcomes(
    outcomes: Iterable[tuple[str, str | None, str | None, int]],
    keys: Iterable[str],
    max_bad_row_fraction: float,
) -> BatchStats:
    """Batch statistics from ``(key, reason, sales_month, rows)`` counts; decides the holds.

    Every key of ``keys`` gets a ``per_file`` entry (a header-only file has zero rows) unless
    :func:`bad_row_hold` holds it; held files are left out of every other figure.
    """
    counts = {k: RowCounts() for k in keys}
    reasons: dict[str, Counter[str]] = {k: Counter() for k in counts}
    months: dict[str, set[str]] = {k: set() for k in counts}
    for key, reason, month, rows in outcomes:
        counts[key].total += rows
        if reason is None:
            counts[key].loaded += rows
            months[key].add(month)  # type: ignore[arg-type]  # loaded rows have a month
        else:
            counts[key].quarantined += rows
            reasons[key][reason] += rows
    stats = BatchStats()
    kept_reasons: Counter[str] = Counter()
    kept_months: set[str] = set()
    for key in sorted(counts):
        hold = bad_row_hold(counts[key], reasons[key], max_bad_row_fraction)
        if hold is not None:
            stats.held[key] = hold
            continue
        stats.per_file[key] = counts[key]
        kept_reasons.update(reasons[key])
        kept_months |= months[key]
    stats.months = sorted(kept_months)
    stats.quarantine_reasons = dict(sorted(kept_reasons.items(), key=lambda kv: (-kv[1], kv[0])))
    stats.rows_total = sum(c.total for c in stats.per_file.values())
    stats.rows_loaded = sum(c.loaded for c in stats.per_file.values())
    stats.rows_quarantined = sum(c.quarantined for c in stats.per_file.values())
    return stats


def _collect_stats(
    spark: SparkSession,
    classified: DataFrame,
    store: ObjectStore,
    keys: set[str],
    claims: dict[str, str],
    max_bad_row_fraction: float,
) -> tuple[BatchStats, DataFrame]:
    """Row counts per file/reason/month (holds decided), and the Spark-path -> key mapping frame."""
    path_to_key: dict[str, str] = {}
    outcomes: list[tuple[str, str | None, str | None, int]] = []
    for row in row_outcomes(classified).collect():
        key = path_to_key.get(row.file_path) or store.key_from_spark_path(row.file_path)
        key = claims.get(key, key)  # type: ignore[arg-type]  # claim key -> original key
        if key not in keys:
            raise RuntimeError(f"Spark read a file that was not accepted: {row.file_path}")
        path_to_key[row.file_path] = key
        outcomes.append((key, row.reason, row.sales_month, row["count"]))
    stats = summarise_outcomes(outcomes, keys, max_bad_row_fraction)
    pairs = sorted(path_to_key.items()) or [("", "")]
    # From Arrow, not a list of tuples: a Python list becomes a Python RDD, which would make
    # every executor of a cluster start a Python worker just to read two strings.
    mapping = spark.createDataFrame(
        pa.table({"file_path": [p for p, _ in pairs], "source_file": [k for _, k in pairs]})
    )
    return stats, mapping


#: Parquet writer options per mart. Customer addresses and phone numbers are nearly unique:
#: parquet-mr fills a dictionary page with them, finds it useless and falls back to plain
#: encoding, per column chunk. Skipping the dictionary there cut ~25% off the customer mart's
#: write (bench/RESULTS.md).
MART_WRITE_OPTIONS: dict[str, dict[str, str]] = {
    CUSTOMER_MART: {
        "parquet.enable.dictionary#address": "false",
        "parquet.enable.dictionary#phone_number": "false",
    },
}


def _write(
    df: DataFrame,
    store: ObjectStore,
    key: str,
    partitions: Sequence[str],
    options: dict[str, str] | None = None,
) -> None:
    writer = df.write.mode("overwrite").options(**(options or {}))
    if partitions:
        writer = writer.partitionBy(*partitions)
    writer.parquet(store.spark_path(key))


def _claimed_copies(database_url: str | SecretStr, batch_id: str) -> dict[str, str]:
    """Original key -> claimed copy of the batch's accepted files, from the journal."""
    engine = make_engine(database_url)
    try:
        return claimed_copies(engine, batch_id)
    finally:
        engine.dispose()


def _claim_sizes(landing: ObjectStore, claims: Iterable[str]) -> dict[str, int]:
    """Claimed copy -> its size in bytes (one listing per folder of claims)."""
    wanted = set(claims)
    folders = {key.rsplit("/", 1)[0] + "/" for key in wanted}
    return {o.key: o.size for folder in folders for o in landing.list(folder) if o.key in wanted}


def build_batch_marts(
    settings: Settings,
    batch_id: str,
    files: Sequence[tuple[str, Sequence[str]]],
    line_fields: Mapping[str, int] | None = None,
    splittable: Collection[str] = (),
) -> BatchStats:
    """Read, judge, enrich and write one batch's marts into its scratch folder.

    Spark jobs: (1) the one scan of the CSV bytes -> the slim classified Parquet (typed sale,
    reason, raw strings of rejected rows only); (2) row counts from it; (3)-(5) the customer
    mart, the sales-team mart and the quarantine from it, dimension attributes joined by
    broadcast. Nothing but the counts reaches the driver. ``line_fields``: key -> the file's
    ``max_line_fields`` from validation (sets ``maxColumns``, :func:`max_columns_option`);
    ``splittable``: keys validation found splittable; the ones larger than Spark's split size
    are read in line mode (:func:`line_mode_files`, :func:`read_accepted_files`).
    A file that makes the scan fail on its own is taken out and returned in ``held``
    (``error_files/unknown/``, :func:`classify_accepted_files`).
    """
    spark = active_spark()
    clock = StageClock()
    landing, marts = open_store(settings.landing), open_store(settings.marts)
    with clock.stage("read dimensions"):
        dims = run_dimensions(spark, settings.database_url)
    with clock.stage("list inputs"):
        # Spark reads each file's claimed copy (the bytes validation checksummed), never the
        # original in to_process/, which an uploader may replace while the run is going on.
        claim_of = _claimed_copies(settings.database_url, batch_id)
        readable = [(claim_of[key], header) for key, header in files]
        claims = {claim: key for key, claim in claim_of.items()}
        widths = {claim_of[key]: (line_fields or {}).get(key, 0) for key, _ in files}
        sizes = _claim_sizes(landing, claim_of.values())
        split = line_mode_files(
            spark, sizes, {claim_of[key] for key, _ in files if key in splittable}
        )
        read_split = sorted(claims[claim] for claim in split)
    classified_key = incoming_prefix(batch_id, CLASSIFIED)
    with clock.stage("scan csv, classify (one pass)"):
        _, poison = classify_accepted_files(
            spark, landing, marts, dims, batch_id, readable, widths, split
        )
    poison = {claims.get(k, k): hold for k, hold in poison.items()}
    classified = spark.read.parquet(marts.spark_path(classified_key))
    with clock.stage("row counts"):
        stats, mapping = _collect_stats(
            spark,
            classified,
            landing,
            {k for k, _ in files} - set(poison),
            claims,
            settings.max_bad_row_fraction,
        )
    stats.held.update(poison)  # no row of theirs was written: nothing to filter out
    classified = with_source_file(classified, mapping)
    if stats.held:
        # A held file is decided from the counts above, before any mart is written, and its
        # rows are filtered out of the classified frame every mart is written from: still one
        # scan of the CSV bytes, and nothing of the file ever reaches the scratch marts, so
        # publish / rollback stay as they are (nothing to drop later, nothing a crash between
        # "write" and "drop" could leave behind). The flow then moves the file out of the batch
        # (sales_etl.journal.hold_files).
        classified = classified.where(~F.col("source_file").isin(sorted(stats.held)))

    write_sale_marts(settings, classified, dims, marts, batch_id, clock, bool(stats.rows_loaded))
    if stats.rows_quarantined:
        with clock.stage("quarantine"):
            _write(quarantine_rows(classified), marts, incoming_prefix(batch_id, QUARANTINE), ())
    stats.split_by_line = read_split
    stats.stage_seconds = clock.seconds
    return stats


def write_sale_marts(
    settings: Settings,
    classified: DataFrame,
    dims: Dimensions,
    marts: ObjectStore,
    batch_id: str,
    clock: StageClock,
    any_loaded: bool,
) -> None:
    """Both marts of ``classified``'s loaded rows into the batch's scratch folder, and their
    partial aggregates (:func:`~sales_etl.tasks.partials.write_batch_partials`, read back from
    the scratch marts: they aggregate exactly the rows the batch publishes).

    The enriched rows pass the pandera MartSale check first (``settings.validation_depth``);
    nothing is written when ``any_loaded`` is False. Used by the nightly run and the replay.

    Raises:
        RuntimeError: the enriched rows failed the MartSale schema.
    """
    sales_team_rows = sales_team_mart(classified, dims)
    with clock.stage("pandera MartSale check"):
        problems = validate_mart_frame(sales_team_rows, settings.validation_depth)
    if problems:
        raise RuntimeError(
            "enriched sales failed the pandera MartSale schema: " + "; ".join(problems)
        )
    if any_loaded:
        with clock.stage("customer mart"):
            _write(
                customer_mart(classified, dims),
                marts,
                incoming_prefix(batch_id, CUSTOMER_MART),
                MART_PARTITIONS[CUSTOMER_MART],
                MART_WRITE_OPTIONS[CUSTOMER_MART],
            )
        with clock.stage("sales team mart"):
            _write(
                sales_team_rows,
                marts,
                incoming_prefix(batch_id, SALES_TEAM_MART),
                MART_PARTITIONS[SALES_TEAM_MART],
            )
        with clock.stage("partial aggregates"):
            write_batch_partials(classified.sparkSession, marts, batch_id)


def classify_accepted_files(
    spark: SparkSession,
    landing: ObjectStore,
    marts: ObjectStore,
    dims: Dimensions,
    batch_id: str,
    files: Sequence[InputFile],
    line_fields: Mapping[str, int],
    splittable: Collection[str] = (),
) -> tuple[list[InputFile], dict[str, dict[str, Any]]]:
    """The scan of the CSV bytes -> the batch's classified Parquet, without poison files.

    ``files``: the ``(key, header)`` Spark reads (keys of ``landing``); ``line_fields``: their
    ``max_line_fields``; ``splittable``: those read in line mode, also when probed alone (the
    header-only control is read with ``multiLine``). Returns the files written and key -> hold
    record of each file the scan failed on alone (:func:`sales_etl.tasks.poison.classify_without_poison_files`: named
    by Spark or bisected, confirmed alone against a header-only control; never a transient
    fault). Probes discard their output (Spark's ``noop`` sink); the control file lives in the
    batch's scratch folder of ``marts``.
    """
    classified_key = incoming_prefix(batch_id, CLASSIFIED)

    def classified(some: Sequence[InputFile], store: ObjectStore = landing) -> DataFrame:
        raw = read_accepted_files(spark, store, some, line_fields, splittable)
        return classify_sales(raw, dims, batch_id)

    def run(some: Sequence[InputFile]) -> None:
        _write(classified(some), marts, classified_key, ())

    def probe(some: Sequence[InputFile], store: ObjectStore = landing) -> None:
        classified(some, store).write.format("noop").mode("overwrite").save()

    def control(header: Sequence[str]) -> None:
        key = incoming_prefix(batch_id, "probe/control.csv")
        text = io.StringIO(newline="")
        csv.writer(text, lineterminator="\n").writerow(header)
        marts.write_bytes(key, text.getvalue().encode("utf-8"))
        probe([(key, header)], marts)

    return classify_without_poison_files(files, run, probe, control, landing.key_from_spark_path)


@io_task("build-marts")
def build_marts(
    settings: Settings,
    batch_id: str,
    files: list[tuple[str, list[str]]],
    line_fields: dict[str, int] | None = None,
    splittable: list[str] | None = None,
) -> BatchStats:
    """Spark: one scan of the accepted files -> quarantine + both marts (scratch folder).

    ``splittable``: keys validation found splittable; those Spark would cut into several tasks
    are read in line mode (:func:`line_mode_files`), the rest with multiLine. Files in the
    returned ``held`` have no row in any mart.
    """
    logger = get_run_logger()
    stats = build_batch_marts(settings, batch_id, files, line_fields, set(splittable or ()))
    logger.info("%s", read_modes(files, stats.split_by_line))
    logger.info(
        "batch %s: %d rows read, %d loaded, %d quarantined, months %s; %d file(s) to hold",
        batch_id,
        stats.rows_total,
        stats.rows_loaded,
        stats.rows_quarantined,
        ", ".join(stats.months) or "none",
        len(stats.held),
    )
    crash_point("after_marts_written")
    return stats


@io_task("publish-marts")
def publish_marts(settings: Settings, batch_id: str) -> int:
    """Move the batch's mart files from scratch into the marts."""
    moved = publish_batch(open_store(settings.marts), batch_id)
    get_run_logger().info("published %d Parquet file(s) of batch %s", moved, batch_id)
    crash_point("after_marts_published")
    return moved
