"""Incentive ranking and rounding (pure Python, exact decimals)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sales_etl.rules.incentives import Incentive, SalesTotal, compute_incentives, round_half_up

D = Decimal


def test_round_half_up_not_half_even():
    assert round_half_up(D("1.005")) == D("1.01")
    assert round_half_up(D("1.015")) == D("1.02")
    assert round_half_up(D("0.125")) == D("0.13")
    assert round(D("0.125"), 2) == D("0.12")  # what Python's round would have done


def test_top_person_per_month_gets_one_percent_company_wide():
    totals = [
        SalesTotal("2024-03", 1, 7, D("600.00")),
        SalesTotal("2024-03", 2, 7, D("100.50")),  # person 7: 700.50 across two stores
        SalesTotal("2024-03", 1, 8, D("650.00")),
        SalesTotal("2024-04", 1, 8, D("10.00")),
    ]
    assert compute_incentives(totals) == [
        Incentive(7, 2024, 3, D("700.50"), D("7.01")),  # 7.005 -> 7.01
        Incentive(8, 2024, 3, D("650.00"), D("0.00")),
        Incentive(8, 2024, 4, D("10.00"), D("0.10")),
    ]


def test_ties_at_the_top_all_get_it():
    totals = [
        SalesTotal("2024-03", 1, 1, D("50.50")),
        SalesTotal("2024-03", 1, 2, D("50.50")),
        SalesTotal("2024-03", 1, 3, D("50.49")),
    ]
    assert [i.incentive for i in compute_incentives(totals)] == [D("0.51"), D("0.51"), D("0.00")]


def test_store_scope_ranks_within_each_store():
    totals = [
        SalesTotal("2024-03", 1, 1, D("100.00")),
        SalesTotal("2024-03", 1, 2, D("90.00")),
        SalesTotal("2024-03", 2, 2, D("30.00")),
        SalesTotal("2024-03", 2, 3, D("20.00")),
    ]
    result = {i.sales_person_id: i for i in compute_incentives(totals, scope="store")}
    assert result[1].incentive == D("1.00")
    assert result[2].incentive == D("0.30") and result[2].total_sales == D("120.00")
    assert result[3].incentive == D("0.00")
    company = {i.sales_person_id: i for i in compute_incentives(totals, scope="company")}
    assert company[2].incentive == D("1.20") and company[1].incentive == D("0.00")


def test_unknown_scope_is_refused():
    with pytest.raises(ValueError, match="scope"):
        compute_incentives([], scope="region")
