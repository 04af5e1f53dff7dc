"""Who earns the monthly incentive: pure Python over small aggregated rows, exact decimals."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def round_half_up(amount: Decimal) -> Decimal:
    """Round to cents, halves away from zero (Python's ``round`` would round half to even)."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class SalesTotal:
    """A sales person's sales in one store and month (``sales_month`` is ``YYYY-MM``)."""

    sales_month: str
    store_id: int
    sales_person_id: int
    total_sales: Decimal


@dataclass(frozen=True)
class Incentive:
    """One row of ``sales_team_incentive`` before names are attached."""

    sales_person_id: int
    year: int
    month: int
    total_sales: Decimal
    incentive: Decimal


def compute_incentives(
    totals: Iterable[SalesTotal], *, scope: str = "company", rate: Decimal = Decimal("0.01")
) -> list[Incentive]:
    """Rank sales people per month and give the top performers ``rate`` of their sales.

    ``scope="company"``: per month, the person(s) with the highest total across all stores get
    ``rate`` x that total; ties at the top all get it. ``scope="store"``: per month and store, the
    top person(s) get ``rate`` x their sales in that store; a person's incentive is the sum over
    stores. Everyone else gets 0. ``total_sales`` is always the person's month total. Results are
    sorted by (year, month, sales_person_id).
    """
    if scope not in ("company", "store"):
        raise ValueError(f"incentive scope must be 'company' or 'store', not {scope!r}")
    month_totals: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    store_totals: dict[tuple[str, int], dict[int, Decimal]] = defaultdict(
        lambda: defaultdict(Decimal)
    )
    for row in totals:
        month_totals[(row.sales_month, row.sales_person_id)] += row.total_sales
        store_totals[(row.sales_month, row.store_id)][row.sales_person_id] += row.total_sales

    earned: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    if scope == "company":
        by_month: dict[str, dict[int, Decimal]] = defaultdict(dict)
        for (month, person), total in month_totals.items():
            by_month[month][person] = total
        groups = list(by_month.items())
    else:
        groups = [(month, people) for (month, _store), people in store_totals.items()]
    for month, people in groups:
        best = max(people.values())
        for person, total in people.items():
            if total == best:
                earned[(month, person)] += total * rate

    result = []
    for (month, person), total in month_totals.items():
        year, mon = (int(part) for part in month.split("-"))
        incentive = round_half_up(earned.get((month, person), Decimal(0)))
        result.append(Incentive(person, year, mon, round_half_up(total), incentive))
    return sorted(result, key=lambda r: (r.year, r.month, r.sales_person_id))
