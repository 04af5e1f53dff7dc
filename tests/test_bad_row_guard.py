"""The mass-quarantine guard's rule on per-file counts (issue 12), without Spark.

The end-to-end behaviour (held file's place, marts, staging, summary, artifacts, resends) is in
tests/test_end_to_end.py; here the boundaries of the rule, with hand-written counts.
"""

from __future__ import annotations

import pytest

from sales_etl.file_fate import RowCounts
from sales_etl.tasks.marts import bad_row_hold, summarise_outcomes

A, B, C = "to_process/a.csv", "to_process/b.csv", "to_process/c.csv"


def _counts(total: int, bad: int) -> RowCounts:
    return RowCounts(total=total, loaded=total - bad, quarantined=bad)


@pytest.mark.parametrize(
    ("total", "bad", "fraction", "held"),
    [
        (10, 6, 0.5, True),
        (10, 5, 0.5, False),  # exactly the limit is allowed: only MORE is held
        (10, 4, 0.5, False),
        (0, 0, 0.5, False),  # header-only: never held
        (0, 0, 0.0, False),
        (3, 3, 1.0, False),  # 1.0 turns the guard off
        (10, 1, 0.0, True),  # 0.0: any bad row holds the file
        (10, 0, 0.0, False),
        (10, 3, 0.3, False),  # 3/10 is not > 0.3 (0.3 * 10 is 3.0000000000000004 in floats)
        (10, 1, 0.1, False),
        (7, 4, 0.57, True),  # 4/7 = 0.5714...
    ],
)
def test_held_only_when_the_bad_share_exceeds_the_fraction(
    total: int, bad: int, fraction: float, held: bool
) -> None:
    reasons = {"invalid_price": bad} if bad else {}
    assert (bad_row_hold(_counts(total, bad), reasons, fraction) is not None) is held


def test_the_hold_names_counts_and_the_three_most_frequent_reasons() -> None:
    reasons = {"unknown_store_id": 1, "invalid_price": 2, "missing_sales_date": 1,
               "unknown_customer_id": 3}  # fmt: skip
    hold = bad_row_hold(_counts(10, 7), reasons, 0.5)
    assert hold is not None
    assert hold.category == "too_many_bad_rows"
    assert (hold.rows_total, hold.rows_bad) == (10, 7)
    # Most frequent first; the tie (1 each) goes to the name first in alphabetical order.
    assert hold.top_reasons == {
        "unknown_customer_id": 3,
        "invalid_price": 2,
        "missing_sales_date": 1,
    }
    assert hold.reason.startswith("7 of 10 rows (70%) are bad")
    assert "SALES_ETL_MAX_BAD_ROW_FRACTION=0.5" in hold.reason
    assert "unknown_customer_id 3, invalid_price 2, missing_sales_date 1" in hold.reason


def test_held_files_count_nowhere_in_the_batch_figures() -> None:
    outcomes = [
        (A, None, "2024-03", 3),
        (A, "invalid_price", None, 1),  # a: 1 of 4 bad -> kept
        (B, None, "2024-05", 1),
        (B, "unknown_customer_id", "2024-05", 2),
        (B, "invalid_sales_date", None, 1),  # b: 3 of 4 bad -> held
    ]
    stats = summarise_outcomes(outcomes, [A, B, C], 0.5)  # c: header only
    assert set(stats.held) == {B}
    assert stats.per_file == {
        A: RowCounts(total=4, loaded=3, quarantined=1),
        C: RowCounts(total=0, loaded=0, quarantined=0),
    }
    assert stats.months == ["2024-03"]  # May only had rows of the held file
    assert stats.quarantine_reasons == {"invalid_price": 1}
    assert (stats.rows_total, stats.rows_loaded, stats.rows_quarantined) == (4, 3, 1)
    off = summarise_outcomes(outcomes, [A, B, C], 1.0)
    assert not off.held and off.months == ["2024-03", "2024-05"]
    assert (off.rows_total, off.rows_loaded, off.rows_quarantined) == (8, 4, 4)
