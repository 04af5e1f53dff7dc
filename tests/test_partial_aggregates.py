"""Issue 16, section 2: the reporting tables come from per-batch partial aggregates, and equal
a full recompute from the mart rows and a plain-Python oracle over every input row.

Local folders + SQLite, real Spark, the real flows in-process, and real SIGKILLs of ``sales-etl``
subprocesses at the named crash points (``SALES_ETL_CRASH_AT``, as tests/test_crash_recovery.py).

1. Six nightly runs over overlapping months (bad rows, a customer the dimensions lack yet), one
   of them SIGKILLed after its marts and partials were published and recovered by the next run;
   late dimensions, then a replay. After every step the tables equal a full recompute from the
   marts; at the end also the oracle, and the summed partials equal the mart rows per key.
2. Marts published before partials existed: the first recompute of a month backfills its
   batches' partials, a SIGKILL in the middle of the backfill loses nothing, it is done once.

Expected values come from the rows written here, Parquet read with pyarrow and SQLite read with
SQLAlchemy, in plain Decimal arithmetic (ROUND_HALF_UP), never from the product's code.
"""

from __future__ import annotations

import random
import shutil
import signal
from collections import Counter, defaultdict
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from crash_helpers import base_env, run_cli
from harness import Workspace, decimal_money, expected_reporting_tuples
from helpers import (
    REPORTING_COLUMNS,
    SALES_COLUMNS,
    csv_bytes,
    load_dimension_folder,
    read_parquet_rows,
    read_table,
    reporting_table_rows,
    write_bytes,
    write_dimensions,
)
from test_replay import _row  # a sale row as CSV strings (its extra column is not sent here)

# Eight in-process flow runs and a SIGKILLed `sales-etl run`: ~4 min quiet, 10 min at load 13.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

CENT = Decimal("0.01")
MONTHS = ("2024-01", "2024-02", "2024-03")
CUSTOMERS = {i: (f"First{i}", f"Last{i}") for i in range(1, 9)}
LATE_CUSTOMER = 8  # quarantined as unknown_customer_id until the late dimensions arrive
STORES = (1, 2)
SALES_PEOPLE = {
    10: ("Ravi", "Menon"),
    11: ("Sara", "Nunes"),
    12: ("Uma", "Iyer"),
    13: ("Ivo", "Ng"),
}
PARTIALS = "partial_aggregates"
CUSTOMER_PARTIALS = f"{PARTIALS}/customer_month"
PERSON_PARTIALS = f"{PARTIALS}/sales_person_store_month"

Row = dict[str, str]


def _dimensions(late: bool) -> dict[str, list[dict[str, object]]]:
    return {
        "customer": [
            {"customer_id": i, "first_name": f, "last_name": ln}
            for i, (f, ln) in CUSTOMERS.items()
            if late or i != LATE_CUSTOMER
        ],
        "store": [{"id": i, "store_manager_name": f"M{i}"} for i in STORES],
        "sales_team": [
            {"id": i, "first_name": f, "last_name": ln, "manager_id": 10, "is_manager": "N"}
            for i, (f, ln) in SALES_PEOPLE.items()
        ],
        "product": [{"id": 1, "name": "pen", "current_price": "1.00"}],
    }


def random_batch(rng: random.Random, months: tuple[str, ...], rows: int) -> list[Row]:
    """``rows`` sales in ``months``: odd cents (so 1 % has half cents), some bad rows."""
    out = []
    for _ in range(rows):
        month = rng.choice(months)
        row = _row(
            rng.randint(1, 8),
            rng.choice(STORES),
            rng.choice(list(SALES_PEOPLE)),
            f"{month}-{rng.randint(1, 28):02d}",
            f"{rng.randint(1, 4000) / 100:.2f}",
            rng.randint(1, 5),
        )
        if rng.random() < 0.08:
            row["price"] = "-" + row["price"]  # negative_price (and a total mismatch)
        out.append(row)
    return out


# --- the oracle and the full recompute, in plain Python --------------------------------------------


def loaded_rows(rows: list[Row], late: bool) -> list[Row]:
    """The rows the input rules load under the dimensions of ``late`` (only price and the
    customer can make a row here bad)."""
    known = set(CUSTOMERS) if late else set(CUSTOMERS) - {LATE_CUSTOMER}
    return [r for r in rows if Decimal(r["price"]) >= 0 and int(r["customer_id"]) in known]


def reporting_oracle(
    sales: list[Mapping[str, Any]], scope: str = "company"
) -> dict[str, list[tuple[Any, ...]]]:
    """Both reporting tables from sales (their ``customer_id``, ``store_id``,
    ``sales_person_id``, ``sales_date`` or ``sales_month``, ``total_cost``): the shared
    plain-Decimal oracle of DESIGN.md's rules, money as ``Decimal``."""
    return expected_reporting_tuples(sales, CUSTOMERS, SALES_PEOPLE, decimal_money, scope)


def oracle(rows: list[Row], late: bool) -> dict[str, list[tuple[Any, ...]]]:
    return reporting_oracle(loaded_rows(rows, late))


def mart_sales(marts: Path) -> list[dict[str, Any]]:
    """Every sale of the marts, as the full recompute reads them: the customer from the
    customer mart, store and person from the sales-team mart (both marts hold the same sales:
    matched as multisets on their common columns). Ids as ``int`` (``store_id`` is a partition
    of the sales-team mart)."""
    ids = ("customer_id", "store_id", "sales_person_id")
    team = [
        {
            **{c: int(r[c]) for c in ids},
            "sales_month": r["sales_month"],
            "total_cost": r["total_cost"],
        }
        for r in read_parquet_rows(marts / "sales_team_data_mart")
    ]
    common = ("customer_id", "store_id", "sales_month", "total_cost")
    customers = Counter(
        (int(r["customer_id"]), int(r["store_id"]), r["sales_month"], r["total_cost"])
        for r in read_parquet_rows(marts / "customer_data_mart")
    )
    assert customers == Counter(tuple(t[c] for c in common) for t in team)
    return team


def assert_tables_equal_full_recompute(settings) -> None:
    assert reporting_table_rows(settings.database_url) == reporting_oracle(
        mart_sales(Path(settings.marts))
    )


def committed_batches(database_url: str) -> set[str]:
    return {
        r["batch_id"]
        for r in read_table(database_url, "etl_runs")
        if r["status"] in ("LOADED", "COMPLETED")
    }


def partial_files(marts: Path) -> dict[str, list[tuple[str, str]]]:
    """Partial folder -> (month, batch id of the file name) of every partial file."""
    found: dict[str, list[tuple[str, str]]] = {}
    for folder in (CUSTOMER_PARTIALS, PERSON_PARTIALS):
        found[folder] = sorted(
            (p.parent.name.removeprefix("sales_month="), p.name.split("-", 1)[0])
            for p in (marts / folder).rglob("*.parquet")
            if not p.name.startswith((".", "_"))
        )
    return found


def assert_partials_aggregate_the_marts(settings) -> None:
    """Each committed batch has exactly one partial file per month it has mart rows in; no
    other batch has any; summed per key, the partials equal the mart rows (amounts, counts)."""
    marts = Path(settings.marts)
    committed = committed_batches(settings.database_url)
    mart_batch_months = {
        (r["sales_month"], r["batch_id"]) for r in read_parquet_rows(marts / "customer_data_mart")
    }
    assert {b for _m, b in mart_batch_months} <= committed
    for folder, files in partial_files(marts).items():
        assert sorted(files) == sorted(mart_batch_months), folder
    sales = mart_sales(marts)
    by_customer: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [Decimal(0), 0])
    by_person: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [Decimal(0), 0])
    for sale in sales:
        customer, store, person = (sale[c] for c in ("customer_id", "store_id", "sales_person_id"))
        month, cost = sale["sales_month"], sale["total_cost"]
        for key, table in (((month, customer), by_customer), ((month, store, person), by_person)):
            table[key][0] += cost
            table[key][1] += 1
    summed: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [Decimal(0), 0])
    for r in read_parquet_rows(marts / CUSTOMER_PARTIALS):
        summed[(r["sales_month"], r["customer_id"])][0] += r["monthly_total"]
        summed[(r["sales_month"], r["customer_id"])][1] += r["sale_count"]
    assert dict(summed) == dict(by_customer)
    summed = defaultdict(lambda: [Decimal(0), 0])
    for r in read_parquet_rows(marts / PERSON_PARTIALS):
        key = (r["sales_month"], r["store_id"], r["sales_person_id"])
        summed[key][0] += r["total_sales"]
        summed[key][1] += r["sale_count"]
    assert dict(summed) == dict(by_person)


# --- fixtures and runs --------------------------------------------------------------------------


@pytest.fixture
def partial_env(flow_env, tmp_path: Path):
    """The workspace's settings in the environment, the early dimensions loaded."""
    workspace = flow_env
    load_dimension_folder(
        workspace.database_url, write_dimensions(tmp_path / "dims-early", **_dimensions(False))
    )
    return workspace


def send(settings, name: str, rows: list[Row]) -> None:
    write_bytes(Path(settings.landing) / "to_process" / name, csv_bytes(SALES_COLUMNS, rows))


def nightly_run(settings) -> dict[str, Any]:
    from sales_etl.flows.sales_flow import sales_etl_flow

    summary = sales_etl_flow()
    assert summary["batch_id"] and summary["rows_loaded"] > 0
    return summary


def killed_run(settings, tmp_path: Path, point: str) -> None:
    """``sales-etl run`` in a subprocess, SIGKILLed by itself at crash point ``point``."""
    ws = Workspace(Path(settings.marts).parent)
    assert ws.db == Path(settings.database_url.get_secret_value().removeprefix("sqlite:///"))
    env = base_env(tmp_path / "prefect-home", None)
    result = run_cli(
        ["run"], ws, env, label=f"killed at {point}", extra_env={"SALES_ETL_CRASH_AT": point}
    )
    assert result.returncode == -signal.SIGKILL, result.tail()


# --- 1. many batches, a crash, a replay -----------------------------------------------------------


def test_tables_from_partials_equal_full_recompute_and_oracle(partial_env, spark, tmp_path: Path):
    from sales_etl.flows.replay_flow import sales_etl_replay_flow

    settings = partial_env
    marts = Path(settings.marts)
    rng = random.Random(16)
    plan = [  # (months of the batch, rows), overlapping
        (("2024-01",), 24),
        (("2024-01", "2024-02"), 30),
        (("2024-02", "2024-03"), 30),  # SIGKILLed once after publishing, then recovered
        (("2024-01", "2024-03"), 24),
        (("2024-03",), 20),
        (("2024-01", "2024-02", "2024-03"), 30),
    ]
    sent: list[Row] = []
    for number, (months, size) in enumerate(plan, start=1):
        rows = random_batch(rng, months, size)
        if number == len(plan):
            rows += tie_and_half_cent_rows(sent + rows)
        send(settings, f"sales_{number}.csv", rows)
        sent += rows
        if number == 3:
            killed_run(settings, tmp_path, "after_marts_published")
            killed = partial_files(marts)
            uncommitted = {b for files in killed.values() for _m, b in files} - committed_batches(
                settings.database_url
            )
            assert len(uncommitted) == 1  # its partials were published when it died
        summary = nightly_run(settings)
        assert sorted(summary["months_recomputed"]) == sorted(months)
        if number == 3:
            assert summary["recovered_runs"], "the next run rolled the killed batch back"
        assert_tables_equal_full_recompute(settings)
        assert_partials_aggregate_the_marts(settings)
    assert reporting_table_rows(settings.database_url) == oracle(sent, late=False)

    # The late customer arrives; a replay loads its rows through the same partials.
    load_dimension_folder(
        settings.database_url, write_dimensions(tmp_path / "dims-late", **_dimensions(True))
    )
    replay = sales_etl_replay_flow()
    assert replay["rows_loaded"] == len(loaded_rows(sent, True)) - len(loaded_rows(sent, False))
    assert replay["rows_loaded"] > 0
    final = oracle(sent, late=True)
    assert reporting_table_rows(settings.database_url) == final
    assert_tables_equal_full_recompute(settings)
    assert_partials_aggregate_the_marts(settings)
    # The oracle really has ties at the top and half cents rounded up in it.
    incentives = final["sales_team_incentive"]
    winners = Counter((y, m) for _p, _f, _l, y, m, _t, inc in incentives if inc > 0)
    assert max(winners.values()) >= 2
    assert any(inc > 0 and (t * CENT) % CENT == CENT / 2 for *_x, t, inc in incentives)

    # The store scope, from the same partials (the product's reader and ranking, both scopes).
    from sales_etl.layout import SALES_PERSON_MONTH_PARTIALS
    from sales_etl.storage import open_store
    from sales_etl.tasks.dimensions import run_dimensions
    from sales_etl.tasks.partials import read_partials
    from sales_etl.tasks.reporting import month_incentive_rows

    rows = read_partials(spark, open_store(settings.marts), SALES_PERSON_MONTH_PARTIALS, MONTHS)
    dims = run_dimensions(spark, settings.database_url)
    stored = month_incentive_rows(settings.with_overrides(incentive_scope="store"), dims, rows)
    assert (
        sorted(tuple(r[c] for c in REPORTING_COLUMNS["sales_team_incentive"]) for r in stored)
        == reporting_oracle(mart_sales(marts), scope="store")["sales_team_incentive"]
    )


def tie_and_half_cent_rows(rows: list[Row]) -> list[Row]:
    """Sales that make January's two best sales people tie at the top and February's top
    performer's total end in .50, so 1 % of it is a half cent (ROUND_HALF_UP: up); both as of
    the end (every row of ``rows`` that loads once the late customer is known)."""
    totals: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    for r in loaded_rows(rows, late=True):
        totals[(r["sales_date"][:7], int(r["sales_person_id"]))] += Decimal(r["total_cost"])
    jan = sorted(((t, p) for (m, p), t in totals.items() if m == "2024-01"), reverse=True)
    (best, _), (second, person) = jan[0], jan[1]
    extra = [_row(1, 1, person, "2024-01-20", f"{best - second:.2f}", 1)] if best > second else []
    feb = max((t, p) for (m, p), t in totals.items() if m == "2024-02")
    gap = (Decimal("1.50") - feb[0] % 1) % 1 + 1  # >= 1.00, keeps them on top
    extra.append(_row(2, 2, feb[1], "2024-02-20", f"{gap:.2f}", 1))
    return extra


# --- 2. marts from before partials: the backfill ---------------------------------------------------


def test_marts_without_partials_are_backfilled_once_and_survive_a_kill(partial_env, tmp_path: Path):
    settings = partial_env
    marts = Path(settings.marts)
    rng = random.Random(17)
    sent: list[Row] = []
    for number, months in enumerate((("2024-01", "2024-02"), ("2024-01",)), start=1):
        rows = random_batch(rng, months, 20)
        send(settings, f"old_{number}.csv", rows)
        sent += rows
        nightly_run(settings)
    legacy = partial_files(marts)
    # An install from before partials: the same marts and tables, no partial aggregate.
    shutil.rmtree(marts / PARTIALS)

    # A run into January dies after the first backfilled file was moved into place.
    rows = random_batch(rng, ("2024-01",), 20)
    send(settings, "new_1.csv", rows)
    sent += rows
    killed_run(settings, tmp_path, "during_partials_backfill")
    moved = sorted(marts.rglob("*-backfill.parquet"))
    assert len(moved) == 1 and moved[0].parent.name == "sales_month=2024-01"

    summary = nightly_run(settings)  # recovers, backfills the rest of January, loads new_1
    assert summary["months_recomputed"] == ["2024-01"]
    assert reporting_table_rows(settings.database_url) == oracle(sent, late=False)
    assert_tables_equal_full_recompute(settings)
    after = partial_files(marts)
    january = {f for f in legacy[CUSTOMER_PARTIALS] if f[0] == "2024-01"}
    for folder, files in after.items():
        # January: the two old batches backfilled once each, plus the new batch's own file;
        # February is not recomputed, so not backfilled (it is read from the marts if needed).
        assert [f for f in files if f[0] == "2024-02"] == [], folder
        assert sorted(f for f in files if f[1] != summary["batch_id"]) == sorted(january)
        assert len([p for p in (marts / folder).rglob("*-backfill.parquet")]) == len(january), (
            folder
        )

    # February still reads right without its partials (aggregated from its mart rows), and the
    # next recompute of it backfills it; a second recompute of January backfills nothing more.
    rows = random_batch(rng, ("2024-01", "2024-02"), 20)
    send(settings, "new_2.csv", rows)
    sent += rows
    nightly_run(settings)
    assert reporting_table_rows(settings.database_url) == oracle(sent, late=False)
    assert_tables_equal_full_recompute(settings)
    assert_partials_aggregate_the_marts(settings)
    backfilled = sorted(p.name for p in marts.rglob("*-backfill.parquet"))
    assert len(backfilled) == 2 * (len(january) + 1)  # + February's old batch, both partials
