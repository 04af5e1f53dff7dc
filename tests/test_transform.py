"""Row rules of sales_etl/rules/transform.py on tiny in-memory frames (no I/O)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from pyspark.sql import Row

from sales_etl.rules.transform import (
    MANDATORY_COLUMNS,
    Dimensions,
    classify_sales,
    customer_mart,
    sales_team_mart,
)

GOOD = {
    "customer_id": "1",
    "store_id": "10",
    "product_name": "tea",
    "sales_date": "2024-03-05",
    "sales_person_id": "100",
    "price": "2.50",
    "quantity": "4",
    "total_cost": "10.00",
}


def _dims(spark) -> Dimensions:
    return Dimensions(
        customer=spark.createDataFrame(
            [(1, "Ann", "Lee", "1 Road", "560001", "98450")],
            "customer_id long, first_name string, last_name string, address string, pincode string, phone_number string",
        ),
        store=spark.createDataFrame(
            [(10, "Mall 1", "Meera")],
            "store_id long, store_address string, store_manager_name string",
        ),
        sales_team=spark.createDataFrame(
            [(100, "Ravi", "Kumar", 100, "Y", "2 Road", "560002")],
            "sales_person_id long, first_name string, last_name string, manager_id long, is_manager string, address string, pincode string",
        ),
    )


def _classify(spark, rows: list[dict], raw_record: str | None = None) -> list[Row]:
    schema = ", ".join(f"{c} string" for c in MANDATORY_COLUMNS)
    schema += ", additional_column string, raw_record string, file_path string"
    data = [
        (*[r.get(c) for c in MANDATORY_COLUMNS], None, raw_record, "file:/x/to_process/a.csv")
        for r in rows
    ]
    raw = spark.createDataFrame(data, schema)
    return classify_sales(raw, _dims(spark), "20240101_000000").orderBy("quantity").collect()


def _reason(spark, **changes) -> str | None:
    return _classify(spark, [{**GOOD, **changes}])[0]["reason"]


def test_good_row_has_no_reason_and_typed_values(spark):
    row = _classify(spark, [GOOD])[0]
    assert row["reason"] is None
    assert row["customer_id"] == 1
    assert row["sales_date"] == dt.date(2024, 3, 5)
    assert row["price"] == Decimal("2.50")
    assert row["quantity"] == 4
    assert row["total_cost"] == Decimal("10.00")
    assert row["sales_month"] == "2024-03"
    # The original strings are kept for rejected rows only (they feed the quarantine).
    assert row["raw_customer_id"] is None and row["raw_record"] is None


def test_rejected_row_keeps_its_original_strings_for_the_quarantine(spark):
    row = _classify(spark, [{**GOOD, "price": " 2.5x ", "customer_id": "5"}])[0]
    assert row["reason"] == "invalid_price,unknown_customer_id"
    assert (row["raw_price"], row["raw_customer_id"], row["raw_sales_date"]) == (
        " 2.5x ",
        "5",
        "2024-03-05",
    )


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"customer_id": None}, "missing_customer_id"),
        ({"customer_id": "   "}, "missing_customer_id"),
        ({"product_name": ""}, "missing_product_name"),
        ({"customer_id": "1.5"}, "invalid_customer_id"),
        ({"customer_id": "-1"}, "invalid_customer_id"),
        ({"customer_id": "99999999999999999999"}, "invalid_customer_id"),
        ({"customer_id": "2"}, "unknown_customer_id"),
        ({"customer_id": "4294967297"}, "unknown_customer_id"),  # beyond 32 bits: parses, unknown
        ({"store_id": "11"}, "unknown_store_id"),
        ({"sales_person_id": "101"}, "unknown_sales_person_id"),
        ({"sales_date": "2024-02-30"}, "invalid_sales_date"),
        ({"sales_date": "30-01-2024"}, "invalid_sales_date"),
        ({"sales_date": "2024-3-5"}, "invalid_sales_date"),
        ({"price": "abc", "total_cost": "10.00"}, "invalid_price"),
        ({"price": "NaN"}, "invalid_price"),
        ({"price": "1e3"}, "invalid_price"),
        ({"price": "2.505"}, "invalid_price"),
        ({"total_cost": "Infinity"}, "invalid_total_cost"),
        ({"quantity": "4.0"}, "invalid_quantity"),
        ({"quantity": "0", "total_cost": "0.00"}, "non_positive_quantity"),
        ({"quantity": "-4", "total_cost": "-10.00"}, "non_positive_quantity"),
        ({"price": "-2.50", "total_cost": "-10.00"}, "negative_price"),
        ({"total_cost": "10.02"}, "total_cost_mismatch"),
        ({"total_cost": "9.98"}, "total_cost_mismatch"),
    ],
)
def test_each_rule_gives_its_reason(spark, changes, reason):
    assert _reason(spark, **changes) == reason


def test_mismatch_of_exactly_one_cent_is_loaded(spark):
    assert _reason(spark, total_cost="10.01") is None
    assert _reason(spark, total_cost="9.99") is None


def test_whitespace_around_values_is_ignored(spark):
    assert _reason(spark, customer_id=" 1 ", price=" 2.50") is None


def test_all_broken_rules_are_listed_in_order(spark):
    reason = _reason(spark, customer_id="7", quantity="0", total_cost="5.00")
    assert reason == "non_positive_quantity,total_cost_mismatch,unknown_customer_id"


def test_malformed_row_is_quarantined(spark):
    rows = _classify(spark, [GOOD], raw_record="1,10,tea,2024-03-05,100,2.50,4,10.00,extra")
    assert rows[0]["reason"] == "malformed_row"


def test_marts_hold_only_loaded_rows_with_dimension_attributes(spark):
    schema = ", ".join(f"{c} string" for c in MANDATORY_COLUMNS)
    schema += ", additional_column string, raw_record string, file_path string"
    raw = spark.createDataFrame(
        [
            (*[GOOD[c] for c in MANDATORY_COLUMNS], '{"promo":"x"}', None, "p"),
            (*[{**GOOD, "customer_id": "5"}[c] for c in MANDATORY_COLUMNS], None, None, "p"),
        ],
        schema,
    )
    classified = classify_sales(raw, _dims(spark), "B1").withColumnRenamed(
        "file_path", "source_file"
    )
    customers = customer_mart(classified, _dims(spark)).collect()
    team = sales_team_mart(classified, _dims(spark)).collect()
    assert len(customers) == len(team) == 1
    assert (
        customers[0]["first_name"] == "Ann" and customers[0]["additional_column"] == '{"promo":"x"}'
    )
    assert customers[0]["total_cost"] == Decimal("10.00") and customers[0]["batch_id"] == "B1"
    assert team[0]["first_name"] == "Ravi" and team[0]["store_manager_name"] == "Meera"
    assert team[0]["is_manager"] == "Y" and team[0]["manager_id"] == 100
    assert (customers[0]["address"], customers[0]["phone_number"]) == ("1 Road", "98450")
    assert (team[0]["last_name"], team[0]["store_address"]) == ("Kumar", "Mall 1")


SHAPES = [
    "0",
    "7",
    "-7",
    "--7",
    "+7",
    "007",
    "1" * 9,
    "1" * 10,
    "-" + "1" * 9,
    "1" * 16,
    "1" * 17,
    "1" * 18,
    "1" * 19,
    "1.5",
    "1.50",
    "1.505",
    "-1.50",
    "1.",
    ".5",
    "-.5",
    "1..5",
    "1.5.0",
    "1,5",
    "1e3",
    "١٢",
    "12a",
    "a12",
    "",
    "-",
    ".",
    "2024-03-05",
    "2024-3-05",
    "2024/03/05",
    "20240305",
    "2024-03-055",
    "02024-03-05",
    "2024-03-0a",
    "-2024-03-05",
    "2024--03-05",
    "2024-03-05\u00a0",
    "1 000",
    "5\n",
    "2024-03-05\n",
    "1.50\n",
    "\n5",
]


def test_shape_checks_say_what_their_regular_expressions_say(spark):
    """The native checks against Python's own regex engine (the rules' written form)."""
    import re

    from pyspark.sql import functions as F

    from sales_etl.rules.transform import is_id, is_iso_date, is_money, is_quantity

    patterns = {
        "id": (is_id, r"[0-9]{1,18}"),
        "quantity": (is_quantity, r"-?[0-9]{1,9}"),
        "money": (is_money, r"-?[0-9]{1,16}(\.[0-9]{1,2})?"),
        "date": (is_iso_date, r"[0-9]{4}-[0-9]{2}-[0-9]{2}"),
    }
    frame = spark.createDataFrame([(v,) for v in SHAPES], "v string")
    rows = frame.select(
        "v", *[check(F.col("v")).alias(name) for name, (check, _) in patterns.items()]
    ).collect()
    assert len(rows) == len(SHAPES)
    for row in rows:
        for name, (_, pattern) in patterns.items():
            expected = re.fullmatch(pattern, row["v"], flags=re.ASCII) is not None
            assert bool(row[name]) is expected, (name, row["v"])
