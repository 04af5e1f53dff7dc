"""Recompute the reporting tables for the months a batch touched, over all data so far.

"Monthly" means the whole calendar month across every file and every run (DESIGN.md), so a
month is never appended to: its rows are recomputed and replaced, together with the run's
LOADED mark, in one database transaction. They are recomputed from the months' per-batch
partial aggregates (:mod:`sales_etl.tasks.partials`, issue 16 section 2), not from the mart
rows: sums of exact decimal sums, so the result is the full recompute's to the cent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from prefect import get_run_logger
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from sqlalchemy import Connection, and_, delete, insert, or_

from sales_etl.db.engine import make_engine
from sales_etl.db.schema import customer_monthly_purchase, sales_team_incentive
from sales_etl.faults import crash_point
from sales_etl.journal import mark_loaded
from sales_etl.layout import CUSTOMER_MONTH_PARTIALS, SALES_PERSON_MONTH_PARTIALS
from sales_etl.rules.incentives import Incentive, SalesTotal, compute_incentives
from sales_etl.rules.transform import (
    Dimensions,
    customer_month_totals,
    sales_person_store_month_totals,
)
from sales_etl.settings import Settings
from sales_etl.spark import active_spark
from sales_etl.storage import open_store
from sales_etl.tasks.dimensions import run_dimensions
from sales_etl.tasks.partials import backfill_partials, read_partials
from sales_etl.tasks.retry import io_task
from sales_etl.timing import StageClock

INSERT_CHUNK = 5000


@dataclass
class MonthsRecomputed:
    """What :func:`recompute_months` committed.

    ``months``: ``YYYY-MM`` recomputed; ``customer_month_rows`` / ``incentive_rows``: rows
    written to ``customer_monthly_purchase`` / ``sales_team_incentive``; ``top_performers``:
    the ``sales_team_incentive`` rows with an incentive (``sales_person_id``, ``first_name``,
    ``last_name``, ``year``, ``month``, ``total_sales``, ``incentive``; money DECIMAL(18,2) as
    ``Decimal``); ``stage_seconds``: seconds per step inside the task.
    """

    months: list[str]
    customer_month_rows: int
    incentive_rows: int
    top_performers: list[dict[str, Any]] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)


def _month_filter(table, months: Sequence[str]):
    pairs = [tuple(int(p) for p in m.split("-")) for m in months]
    return or_(*[and_(table.c.year == y, table.c.month == mo) for y, mo in pairs])


def _chunks(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def replace_months(
    conn: Connection,
    months: Sequence[str],
    customer_rows: Iterator[dict[str, Any]],
    incentive_rows: Sequence[dict[str, Any]],
) -> int:
    """Delete the months' rows from both tables and insert the recomputed ones."""
    conn.execute(
        delete(customer_monthly_purchase).where(_month_filter(customer_monthly_purchase, months))
    )
    conn.execute(delete(sales_team_incentive).where(_month_filter(sales_team_incentive, months)))
    inserted = 0
    for chunk in _chunks(customer_rows, INSERT_CHUNK):
        conn.execute(insert(customer_monthly_purchase), chunk)
        inserted += len(chunk)
    if incentive_rows:
        conn.execute(insert(sales_team_incentive), list(incentive_rows))
    return inserted


def recompute_months(
    settings: Settings,
    run_id: str,
    batch_id: str,
    months: Sequence[str],
    in_transaction: Callable[[Connection], None] | None = None,
) -> MonthsRecomputed:
    """Sum the partial aggregates of ``months`` and replace those months in the reporting tables.

    ``batch_id``: the running batch (published already); its scratch folder holds the backfill
    of batches published before partials existed (:func:`~sales_etl.tasks.partials.
    backfill_partials`). ``in_transaction(conn)`` runs inside the same transaction, before the
    run's LOADED mark (a replay records its quarantine ledger there:
    sales_etl.journal.record_replay). Names come from today's dimension tables.
    """
    spark = active_spark()
    store = open_store(settings.marts)
    clock = StageClock()
    with clock.stage("read dimensions"):
        dims = run_dimensions(spark, settings.database_url)
    with clock.stage("backfill partial aggregates"):
        backfill_partials(spark, store, months, batch_id)
    with clock.stage("sales person totals, incentives"):
        incentive_rows = month_incentive_rows(
            settings, dims, read_partials(spark, store, SALES_PERSON_MONTH_PARTIALS, months)
        )
    partials = read_partials(spark, store, CUSTOMER_MONTH_PARTIALS, months)
    if partials is None:
        raise RuntimeError(f"no partial aggregate or mart row of the months {list(months)}")
    totals = customer_month_totals(partials, amount="monthly_total")
    customers = totals.join(F.broadcast(dims.customer), "customer_id", "left").select(
        "customer_id",
        "first_name",
        "last_name",
        F.substring("sales_month", 1, 4).cast("int").alias("year"),
        F.substring("sales_month", 6, 2).cast("int").alias("month"),
        "monthly_total",
        "sales_month",
    )

    def customer_rows() -> Iterator[dict[str, Any]]:
        # One month at a time through Arrow: the driver holds one month's customers (never
        # sales rows), and Arrow -> dicts is ~10x faster than toLocalIterator's Row objects.
        for month in months:
            table = customers.where(F.col("sales_month") == month).drop("sales_month").toArrow()
            yield from table.to_pylist()

    engine = make_engine(settings.database_url)
    try:
        with clock.stage("customer totals -> database (one transaction)"), engine.begin() as conn:
            customer_count = replace_months(conn, months, customer_rows(), incentive_rows)
            if in_transaction is not None:
                in_transaction(conn)
            mark_loaded(conn, run_id, months)
    finally:
        engine.dispose()
    crash_point("after_db_load")
    return MonthsRecomputed(
        months=list(months),
        customer_month_rows=customer_count,
        incentive_rows=len(incentive_rows),
        top_performers=[row for row in incentive_rows if row["incentive"] > 0],
        stage_seconds=clock.seconds,
    )


def month_incentive_rows(
    settings: Settings, dims: Dimensions, partials: DataFrame | None
) -> list[dict[str, Any]]:
    """``sales_team_incentive`` rows of the months in ``partials`` (sales person partial
    aggregates: ``sales_month``, ``store_id``, ``sales_person_id``, ``total_sales``;
    :func:`~sales_etl.rules.transform.sales_person_month_partials`); [] for None."""
    if partials is None:
        return []
    person_totals = [
        SalesTotal(r.sales_month, r.store_id, r.sales_person_id, r.total_sales)
        for r in sales_person_store_month_totals(partials, amount="total_sales").collect()
    ]
    incentives = compute_incentives(
        person_totals, scope=settings.incentive_scope, rate=Decimal(settings.incentive_rate)
    )
    names = {
        r.sales_person_id: (r.first_name, r.last_name)
        for r in dims.sales_team.select("sales_person_id", "first_name", "last_name").collect()
    }
    return [_incentive_row(i, names) for i in incentives]


def _incentive_row(item: Incentive, names: dict[int, tuple[str, str]]) -> dict[str, Any]:
    first, last = names.get(item.sales_person_id, (None, None))
    return {
        "sales_person_id": item.sales_person_id,
        "first_name": first,
        "last_name": last,
        "year": item.year,
        "month": item.month,
        "total_sales": item.total_sales,
        "incentive": item.incentive,
    }


@io_task("load-reporting-tables")
def load_reporting_tables(
    settings: Settings, run_id: str, batch_id: str, months: list[str]
) -> MonthsRecomputed:
    """Recompute the touched months and commit them with the run's LOADED mark."""
    result = recompute_months(settings, run_id, batch_id, months)
    get_run_logger().info(
        "reporting tables: months %s recomputed (%d customer rows, %d incentive rows)",
        ", ".join(months),
        result.customer_month_rows,
        result.incentive_rows,
    )
    return result
