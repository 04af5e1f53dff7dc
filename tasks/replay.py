"""Replay quarantined rows against today's dimension tables and row rules (issue 15).

The rules are :func:`sales_etl.rules.transform.classify_sales`, applied to the original
strings the quarantine kept; nothing here judges a row itself. The protocol (a journal run of
kind ``replay``, the ``quarantine_ledger``, the invariants) is docs/architecture.md
"Replaying quarantined rows"; the flow is ``flows/replay_flow.py``.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import SecretStr
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from sqlalchemy import func, select

from sales_etl import __version__, journal
from sales_etl.db.engine import make_engine
from sales_etl.db.schema import (
    KIND_REPLAY,
    QUARANTINED,
    REPLAYED,
    customer_monthly_purchase,
    quarantine_ledger,
    sales_team_incentive,
)
from sales_etl.errors import ConfigError
from sales_etl.faults import crash_point
from sales_etl.layout import CLASSIFIED, QUARANTINE, SALES_PERSON_MONTH_PARTIALS, incoming_prefix
from sales_etl.rules.transform import (
    Dimensions,
    classify_sales,
    reason_codes,
    sales_person_month_partials,
    sales_team_mart,
)
from sales_etl.settings import Settings
from sales_etl.spark import active_spark
from sales_etl.storage import ObjectStore, open_store
from sales_etl.tasks.dimensions import _frame, run_dimensions
from sales_etl.tasks.marts import _write, write_sale_marts
from sales_etl.tasks.partials import read_partials
from sales_etl.tasks.reporting import MonthsRecomputed, month_incentive_rows, recompute_months
from sales_etl.tasks.retry import io_task
from sales_etl.timing import StageClock
from sales_etl.validators.model import MANDATORY_COLUMNS

ROW_ID = "row_id"
ORIGIN_BATCH = "origin_batch_id"
#: The row's reason before this replay (the ledger's when a replay judged it, else the Parquet's).
PRIOR_REASON = "prior_reason"
#: The replay's ledger decisions in its scratch folder (read back by the commit step).
LEDGER_SCRATCH = "replay_ledger"
_BATCH_ID = re.compile(r"^[0-9]{8}_[0-9]{6}$")
#: Columns of the quarantine Parquet that make a row's identity (never ``reason``).
IDENTITY_COLUMNS = (
    "batch_id",
    "source_file",
    *MANDATORY_COLUMNS,
    "additional_column",
    "raw_record",
)


@dataclass(frozen=True)
class ReplaySelection:
    """Which quarantined rows to judge (all given filters must match; empty = every row).

    ``reasons``: the row's current reason names one of these codes; ``source_file``: a
    shell-style glob matched against the file's landing key (``to_process/sales_1.csv``) or
    its file name; ``batch``: the nightly batch that quarantined the row.
    """

    reasons: tuple[str, ...] = ()
    source_file: str | None = None
    batch: str | None = None

    def check(self) -> None:
        """Raises :class:`~sales_etl.errors.ConfigError` for an unknown reason code or a batch
        id that is not ``YYYYMMDD_HHMMSS``."""
        known = reason_codes()
        for reason in self.reasons:
            if reason not in known:
                raise ConfigError(
                    f"--reason {reason!r} is not a quarantine reason code",
                    hint="use one or more of (comma separated): " + ", ".join(known),
                )
        if self.batch is not None and not _is_batch_id(self.batch):
            raise ConfigError(
                f"--batch {self.batch!r} is not a batch id (YYYYMMDD_HHMMSS, UTC)",
                hint="the batch ids are the batch_id column of the quarantine Parquet "
                "and etl_runs.batch_id",
            )


def _is_batch_id(text: str) -> bool:
    """``YYYYMMDD_HHMMSS`` naming a real UTC instant (not month 13 or hour 25)."""
    if not _BATCH_ID.match(text):
        return False
    try:
        dt.datetime.strptime(text, "%Y%m%d_%H%M%S")
    except ValueError:
        return False
    return True


def quarantined_batches(marts: ObjectStore) -> list[str]:
    """The batch ids with a file in the quarantine (its files are named ``<batch id>-...``,
    :func:`sales_etl.layout.published_name`), sorted; one listing, no Spark."""
    prefixes = (obj.key.rsplit("/", 1)[-1].split("-", 1)[0] for obj in marts.list(QUARANTINE + "/"))
    return sorted({prefix for prefix in prefixes if _BATCH_ID.match(prefix)})


def refuse_unknown_batch(settings: Settings, selection: ReplaySelection) -> None:
    """Refuse a ``batch`` selection that names no batch of the quarantine (a mistyped id would
    otherwise judge 0 rows and succeed), before Spark starts.

    Raises:
        ConfigError: no quarantined row comes from that batch (the hint names the latest ones).
    """
    if selection.batch is None:
        return
    batches = quarantined_batches(open_store(settings.marts))
    if selection.batch not in batches:
        latest = ", ".join(reversed(batches[-3:])) if batches else "none"
        raise ConfigError(
            f"--batch {selection.batch!r}: no quarantined row comes from that batch",
            hint=f"the quarantine holds rows of {len(batches)} batch(es); the latest: {latest}",
        )


@dataclass
class ReplayPlan:
    """What judging the selected quarantined rows found (small: counts only).

    ``loadable_by_reason``: rows that pass now, per prior reason; ``still_failing_by_reason``:
    rows that still fail, per up-to-date reason; ``reasons_updated``: still-failing rows whose
    reason changed; ``months``: ``YYYY-MM`` of the loadable rows; ``total_cost_by_month``:
    their summed ``total_cost`` (DECIMAL(18,2) as a string) per month.
    """

    rows_judged: int = 0
    rows_loadable: int = 0
    rows_still_failing: int = 0
    reasons_updated: int = 0
    loadable_by_reason: dict[str, int] = field(default_factory=dict)
    still_failing_by_reason: dict[str, int] = field(default_factory=dict)
    months: list[str] = field(default_factory=list)
    total_cost_by_month: dict[str, str] = field(default_factory=dict)

    @property
    def has_work(self) -> bool:
        """True when a replay would change something (rows to load or reasons to update)."""
        return bool(self.rows_loadable or self.reasons_updated)


@dataclass
class ReplaySummary:
    """What one replay did (flows/replay_flow.py), or would do (``dry_run``).

    ``plan``: what judging the selected rows found (of the rows written, once a batch opened);
    ``batch_id``: the replay's batch, None when nothing changed (and for a dry run);
    ``rows_loaded``: rows the replay loaded; ``recovered``: what the replay's recovery did;
    ``reporting``: the months recomputed (None when no row loaded); ``stage_seconds``: seconds
    per stage; ``months_effect``: for a dry run, per touched month, the reporting figures
    before and after (:func:`dry_run_report`).
    """

    plan: ReplayPlan
    dry_run: bool = False
    batch_id: str | None = None
    rows_loaded: int = 0
    recovered: list[journal.RecoveredRun] = field(default_factory=list)
    reporting: MonthsRecomputed | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    months_effect: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready summary: ``kind`` ("replay"), ``batch_id``, ``dry_run``, the
        :class:`ReplayPlan` fields, then for a dry run ``months_effect``, else ``rows_loaded``,
        ``recovered``, ``reporting`` (:class:`MonthsRecomputed` fields or None) and
        ``stage_seconds``."""
        data: dict[str, Any] = {
            "kind": KIND_REPLAY,
            "batch_id": self.batch_id,
            "dry_run": self.dry_run,
            **asdict(self.plan),
        }
        if self.dry_run:
            data["months_effect"] = self.months_effect
            return data
        data.update(
            rows_loaded=self.rows_loaded,
            recovered=[r.to_json() for r in self.recovered],
            reporting=asdict(self.reporting) if self.reporting is not None else None,
            stage_seconds=self.stage_seconds,
        )
        return data


def _encoded(column: Column) -> Column:
    """``<length>:<value>``, or ``-`` for null: an injective encoding, so joined fields of two
    different rows can never read the same."""
    return F.when(column.isNull(), F.lit("-")).otherwise(
        F.concat(F.length(column).cast("string"), F.lit(":"), column)
    )


def with_row_ids(quarantine: DataFrame) -> DataFrame:
    """Add ``row_id``: the stable identity of each quarantined row (docs/architecture.md).

    sha256 (hex) of the encoded :data:`IDENTITY_COLUMNS`, then ``#<n>``, the row's occurrence
    number among identical rows (identical rows are distinct inputs).
    """
    base = F.sha2(F.concat_ws("|", *[_encoded(F.col(c)) for c in IDENTITY_COLUMNS]), 256)
    window = Window.partitionBy("_identity").orderBy("_identity")
    return (
        quarantine.withColumn("_identity", base)
        .withColumn(ROW_ID, F.concat("_identity", F.lit("#"), F.row_number().over(window)))
        .drop("_identity")
    )


def read_quarantine(spark: SparkSession, marts: ObjectStore) -> DataFrame | None:
    """Every published quarantine row, or None when there is none."""
    if not any(obj.key.endswith(".parquet") for obj in marts.list(QUARANTINE + "/")):
        return None
    return spark.read.parquet(marts.spark_path(QUARANTINE))


_LEDGER_SCHEMA = T.StructType(
    [
        T.StructField(ROW_ID, T.StringType(), False),
        T.StructField("ledger_status", T.StringType(), False),
        T.StructField("ledger_reason", T.StringType(), True),
    ]
)


def _ledger_frame(
    spark: SparkSession, database_url: str | SecretStr, origin_batch: str | None
) -> DataFrame:
    engine = make_engine(database_url)
    try:
        query = select(
            quarantine_ledger.c.row_id, quarantine_ledger.c.status, quarantine_ledger.c.reason
        )
        if origin_batch is not None:
            query = query.where(quarantine_ledger.c.origin_batch_id == origin_batch)
        return _frame(spark, engine, query, _LEDGER_SCHEMA)
    finally:
        engine.dispose()


def _glob_filter(pattern: str) -> Column:
    # fnmatch.translate gives a Python regex; its (?s:...) and \Z are Java regex too. Spark's
    # rlike finds a match anywhere: the ^ makes the glob match the whole key or name.
    regex = "^" + fnmatch.translate(pattern)
    name = F.regexp_extract(F.col("source_file"), r"([^/]*)$", 1)
    return F.col("source_file").rlike(regex) | name.rlike(regex)


def _reason_filter(reasons: Sequence[str]) -> Column:
    codes = F.split(F.col(PRIOR_REASON), ",")
    return F.exists(codes, lambda code: code.isin(list(reasons)))


def judge_quarantine(
    spark: SparkSession, settings: Settings, selection: ReplaySelection, batch_id: str
) -> DataFrame | None:
    """The selected, not yet replayed quarantine rows judged by today's rules and dimensions.

    Returns :func:`classify_sales`'s frame (``batch_id`` = ``batch_id``; ``reason`` null = loads
    now) with ``source_file``, ``row_id``, ``origin_batch_id`` and ``prior_reason``; None when
    the marts hold no quarantine. Deterministic for given marts, ledger and dimensions.
    """
    marts = open_store(settings.marts)
    quarantine = read_quarantine(spark, marts)
    if quarantine is None:
        return None
    if selection.batch:
        # Before the row ids: batch_id is part of a row's identity, so the occurrence numbers
        # within one batch are the same, and only that batch is hashed (Parquet row groups of
        # other batches are skipped by their batch_id statistics).
        quarantine = quarantine.where(F.col("batch_id") == F.lit(selection.batch))
    rows = with_row_ids(quarantine).join(
        _ledger_frame(spark, settings.database_url, selection.batch), ROW_ID, "left"
    )
    rows = rows.where(
        F.col("ledger_status").isNull() | (F.col("ledger_status") != F.lit(REPLAYED))
    ).withColumn(PRIOR_REASON, F.coalesce(F.col("ledger_reason"), F.col("reason")))
    if selection.reasons:
        rows = rows.where(_reason_filter(selection.reasons))
    if selection.source_file:
        rows = rows.where(_glob_filter(selection.source_file))
    raw = rows.select(
        *MANDATORY_COLUMNS,
        "additional_column",
        "raw_record",
        F.col("source_file").alias("file_path"),
        ROW_ID,
        F.col("batch_id").alias(ORIGIN_BATCH),
        PRIOR_REASON,
    )
    dims = run_dimensions(spark, settings.database_url)
    classified = classify_sales(raw, dims, batch_id, carry=(ROW_ID, ORIGIN_BATCH, PRIOR_REASON))
    return classified.withColumnRenamed("file_path", "source_file")


def plan_from(classified: DataFrame | None) -> ReplayPlan:
    """Count what a judged frame would do (one small Spark aggregation)."""
    plan = ReplayPlan()
    if classified is None:
        return plan
    counts = (
        classified.groupBy(PRIOR_REASON, "reason", "sales_month")
        .agg(F.count(F.lit(1)).alias("rows"), F.sum("total_cost").alias("total_cost"))
        .collect()
    )
    loadable: Counter[str] = Counter()
    failing: Counter[str] = Counter()
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for row in counts:
        plan.rows_judged += row.rows
        if row.reason is None:
            loadable[row[PRIOR_REASON]] += row.rows
            totals[row.sales_month] += row.total_cost or Decimal(0)
        else:
            failing[row.reason] += row.rows
            if row.reason != row[PRIOR_REASON]:
                plan.reasons_updated += row.rows
    plan.rows_loadable = sum(loadable.values())
    plan.rows_still_failing = sum(failing.values())
    plan.loadable_by_reason = dict(sorted(loadable.items(), key=lambda kv: (-kv[1], kv[0])))
    plan.still_failing_by_reason = dict(sorted(failing.items(), key=lambda kv: (-kv[1], kv[0])))
    plan.months = sorted(totals)
    plan.total_cost_by_month = {m: f"{totals[m]:.2f}" for m in plan.months}
    return plan


@io_task("judge-quarantine")
def judge_replay(settings: Settings, selection: ReplaySelection) -> ReplayPlan:
    """Judge the selected quarantined rows (read only)."""
    spark = active_spark()
    plan = plan_from(judge_quarantine(spark, settings, selection, batch_id=""))
    get_run_logger().info(
        "replay: %d quarantined row(s) judged, %d load now, %d still fail (%d reason(s) updated)",
        plan.rows_judged,
        plan.rows_loadable,
        plan.rows_still_failing,
        plan.reasons_updated,
    )
    return plan


def _ledger_decisions(classified: DataFrame) -> DataFrame:
    """The rows to record in ``quarantine_ledger``: loaded ones, and still-failing ones whose
    reason changed (an unchanged reason needs no entry)."""
    return classified.where(
        F.col("reason").isNull() | (F.col("reason") != F.col(PRIOR_REASON))
    ).select(
        ROW_ID,
        ORIGIN_BATCH,
        "source_file",
        F.when(F.col("reason").isNull(), F.lit(REPLAYED))
        .otherwise(F.lit(QUARANTINED))
        .alias("status"),
        "reason",
    )


@io_task("write-replay-marts")
def write_replay(settings: Settings, batch_id: str, selection: ReplaySelection) -> ReplayPlan:
    """Judge again and write the replay batch into its scratch folder: the judged rows
    (``classified``), both marts' loadable rows and the ledger decisions. Safe to repeat
    (every write overwrites). Returns the plan of what was written."""
    spark = active_spark()
    marts = open_store(settings.marts)
    judged = judge_quarantine(spark, settings, selection, batch_id)
    if judged is None:  # the quarantine cannot vanish under the lock; judged before opening
        raise RuntimeError("the quarantine disappeared while the replay held the lock")
    classified_key = incoming_prefix(batch_id, CLASSIFIED)
    _write(judged, marts, classified_key, ())
    classified = spark.read.parquet(marts.spark_path(classified_key))
    plan = plan_from(classified)
    dims = run_dimensions(spark, settings.database_url)
    write_sale_marts(
        settings, classified, dims, marts, batch_id, StageClock(), bool(plan.rows_loadable)
    )
    _write(_ledger_decisions(classified), marts, incoming_prefix(batch_id, LEDGER_SCRATCH), ())
    crash_point("after_marts_written")
    return plan


def _scratch_ledger(settings: Settings, batch_id: str) -> list[journal.LedgerEntry]:
    marts = open_store(settings.marts)
    table = (
        active_spark()
        .read.parquet(marts.spark_path(incoming_prefix(batch_id, LEDGER_SCRATCH)))
        .toArrow()
    )
    return [journal.LedgerEntry(**row) for row in table.to_pylist()]


@io_task("commit-replay")
def commit_replay(
    settings: Settings, run_id: str, batch_id: str, months: list[str]
) -> MonthsRecomputed | None:
    """One transaction: the touched months recomputed, the ledger written, the run LOADED.

    Returns the reporting result (:func:`recompute_months`), None when no row loaded (only
    reasons were brought up to date).
    """
    entries = _scratch_ledger(settings, batch_id)

    def record(conn: Any) -> None:
        journal.record_replay(conn, batch_id, entries)

    if months:
        return recompute_months(settings, run_id, batch_id, months, in_transaction=record)
    engine = make_engine(settings.database_url)
    try:
        with engine.begin() as conn:
            record(conn)
            journal.mark_loaded(conn, run_id, [])
    finally:
        engine.dispose()
    crash_point("after_db_load")
    return None


def replayable_watermark(dims: Dimensions) -> str:
    """What, besides the quarantine and the ledger, decides whether a quarantined row loads now:
    the row rules (this package's version) and the id sets of the dimension tables
    (:func:`classify_sales` joins ids only, never attributes). sha256 hex."""
    digest = hashlib.sha256(f"sales-etl {__version__}".encode())
    for frame, column in (
        (dims.customer, "customer_id"),
        (dims.store, "store_id"),
        (dims.sales_team, "sales_person_id"),
    ):
        ids = sorted(row[0] for row in frame.select(column).distinct().collect())
        digest.update(f"|{column}:".encode() + ",".join(map(str, ids)).encode())
    return digest.hexdigest()


@task(name="count-replayable-rows", cache_policy=NO_CACHE, retries=0)
def count_replayable(settings: Settings, batch_id: str) -> tuple[int | None, str | None]:
    """Quarantined rows (any reason, not yet replayed) that would load now, and the watermark
    they were counted under: the nightly run's ``replayable_rows`` / ``replayable_watermark``.

    Counted in proportion to the batch when possible: if the last completed run counted under
    the same watermark (same rules, same dimension ids: sales_etl.journal.last_replayable_count),
    the older quarantine judges as it did then and only batch ``batch_id``'s rows are judged;
    otherwise the whole quarantine is. ``(None, None)``, with a warning, when counting failed:
    the figure is advice and never fails the run that asks for it.
    """
    spark = active_spark()
    try:
        watermark = replayable_watermark(run_dimensions(spark, settings.database_url))
        engine = make_engine(settings.database_url)
        try:
            prior = journal.last_replayable_count(engine)
        finally:
            engine.dispose()
        if prior is not None and prior[1] == watermark:
            selection, base = ReplaySelection(batch=batch_id), prior[0]
        else:
            selection, base = ReplaySelection(), 0
        judged = judge_quarantine(spark, settings, selection, batch_id="")
        return base + plan_from(judged).rows_loadable, watermark
    except Exception as exc:
        get_run_logger().warning(
            "could not count the quarantined rows a replay could load (%s: %s)",
            type(exc).__name__,
            str(exc)[:300],
        )
        return None, None


# --- the dry run: what a replay would change ---------------------------------------------------


def _month_sums(database_url: str | SecretStr, months: Sequence[str]) -> dict[str, str]:
    """Sum of ``customer_monthly_purchase.monthly_total`` per month (today's tables)."""
    engine = make_engine(database_url)
    table = customer_monthly_purchase
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(table.c.year, table.c.month, func.sum(table.c.monthly_total)).group_by(
                    table.c.year, table.c.month
                )
            ).all()
    finally:
        engine.dispose()
    sums = {f"{y:04d}-{m:02d}": Decimal(total) for y, m, total in rows}
    return {m: f"{sums.get(m, Decimal(0)):.2f}" for m in months}


def _top_performers_now(
    database_url: str | SecretStr, months: Sequence[str]
) -> dict[str, list[int]]:
    engine = make_engine(database_url)
    table = sales_team_incentive
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(table.c.year, table.c.month, table.c.sales_person_id).where(
                    table.c.incentive > 0
                )
            ).all()
    finally:
        engine.dispose()
    top: dict[str, list[int]] = {m: [] for m in months}
    for y, m, person in rows:
        key = f"{y:04d}-{m:02d}"
        if key in top:
            top[key].append(int(person))
    return {m: sorted(p) for m, p in top.items()}


def dry_run_report(settings: Settings, selection: ReplaySelection) -> ReplaySummary:
    """What a replay would load now, changing nothing (no lock, no write; Spark reads only).

    Returns a dry run's summary: the :class:`ReplayPlan` and ``months_effect``: per touched month,
    ``customer_total_before`` / ``customer_total_after`` (sum of ``monthly_total``, DECIMAL(18,2)
    as strings) and ``top_performers_before`` / ``top_performers_after`` (sales person ids with
    an incentive, by today's incentive rules over the marts' partial aggregates plus the
    loadable rows).
    """
    spark = active_spark()
    classified = judge_quarantine(spark, settings, selection, batch_id="dry-run")
    plan = plan_from(classified)
    report = ReplaySummary(plan, dry_run=True)
    if not plan.months or classified is None:
        return report
    marts = open_store(settings.marts)
    dims = run_dimensions(spark, settings.database_url)
    new_rows = sales_person_month_partials(sales_team_mart(classified, dims))
    published = read_partials(spark, marts, SALES_PERSON_MONTH_PARTIALS, plan.months)
    rows = new_rows if published is None else published.unionByName(new_rows)
    after = month_incentive_rows(settings, dims, rows)
    top_after: dict[str, list[int]] = {m: [] for m in plan.months}
    for row in after:
        key = f"{row['year']:04d}-{row['month']:02d}"
        if key in top_after and row["incentive"] > 0:
            top_after[key].append(int(row["sales_person_id"]))
    before = _month_sums(settings.database_url, plan.months)
    top_before = _top_performers_now(settings.database_url, plan.months)
    for month in plan.months:
        added = Decimal(plan.total_cost_by_month[month])
        report.months_effect[month] = {
            "customer_total_before": before[month],
            "customer_total_after": f"{Decimal(before[month]) + added:.2f}",
            "top_performers_before": top_before[month],
            "top_performers_after": sorted(top_after[month]),
        }
    return report


@io_task("replay-dry-run")
def replay_dry_run(settings: Settings, selection: ReplaySelection) -> ReplaySummary:
    """:func:`dry_run_report` as a task."""
    return dry_run_report(settings, selection)
