"""The date-window plugin over real files, with the helpers sales-etl gives plugin authors."""

from __future__ import annotations

from datetime import date

import pytest
import sales_etl_date_window as date_window

from sales_etl.validators.manager import call_order, validate_file
from sales_etl.validators.schemas import MANDATORY_COLUMNS
from sales_etl.validators.testing import plugin_manager, sales_csv

NAME = "date_window"


@pytest.fixture
def pm():
    return plugin_manager((NAME, date_window))


@pytest.fixture(autouse=True)
def default_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(date_window.WINDOW_DAYS_ENV, raising=False)


@pytest.mark.parametrize(
    ("name", "dates"),
    [
        ("sales_2024-03-20.csv", [date(2024, 3, 20)]),
        ("store7_20240320_0600.csv", [date(2024, 3, 20)]),
        ("2024-03-20.csv", [date(2024, 3, 20)]),
        ("sales_20240331_20240301.csv", [date(2024, 3, 1), date(2024, 3, 31)]),
        ("sales_2024-03-20_20240320.csv", [date(2024, 3, 20)]),
        ("sales_0001.csv", []),
        ("sales_2024_03_late.csv", []),  # underscores are not a date
        ("sales_12345678.csv", []),  # no month 56
        ("sales_20240230.csv", []),  # no 30 February
        ("sales_202403201.csv", []),  # part of a longer number
        ("sales_2024-3-20.csv", []),
        ("sales_18991231.csv", []),  # outside the years taken for dates
    ],
)
def test_dates_in_name(name: str, dates: list[date]) -> None:
    assert date_window.dates_in_name(name) == dates


def test_runs_after_the_builtin_header_checks(pm) -> None:
    assert call_order(pm) == [
        "builtin.file_type",
        "builtin.header_schema",
        NAME,
        "builtin.extra_columns",
    ]


def test_rows_inside_the_default_window_are_accepted(pm, land_sales_file) -> None:
    data = sales_csv(
        {"sales_date": "2024-03-19"}, {"sales_date": "2024-03-20"}, {"sales_date": "2024-03-21"}
    )
    assert validate_file(pm, land_sales_file("sales_2024-03-20.csv", data)).accepted is True


def test_a_row_outside_the_window_rejects_the_file(pm, land_sales_file) -> None:
    data = sales_csv(
        {"sales_date": "2024-03-20"},
        {"sales_date": "2024-04-02"},
        {"sales_date": "2024-03-18"},
        {"sales_date": "2024-03-21"},
    )
    verdict = validate_file(pm, land_sales_file("sales_20240320.csv", data))
    assert (verdict.accepted, verdict.category, verdict.plugin) == (False, "out_of_window", NAME)
    assert verdict.reason == (
        "2 of 4 rows have a sales_date outside 2024-03-19..2024-03-21 (file name date "
        "2024-03-20 +/- 1 day(s), SALES_ETL_DATE_WINDOW_DAYS); first: row 2 has 2024-04-02"
    )


def test_window_days_come_from_the_environment(pm, land_sales_file, monkeypatch) -> None:
    data = sales_csv({"sales_date": "2024-03-21"})
    monkeypatch.setenv(date_window.WINDOW_DAYS_ENV, "0")
    verdict = validate_file(pm, land_sales_file("sales_2024-03-20.csv", data))
    assert verdict.category == "out_of_window"
    assert "outside 2024-03-20..2024-03-20" in verdict.reason

    monkeypatch.setenv(date_window.WINDOW_DAYS_ENV, "7")
    far = sales_csv({"sales_date": "2024-03-27"}, {"sales_date": "2024-03-13"})
    assert validate_file(pm, land_sales_file("sales_2024-03-20.csv", far)).accepted is True


def test_a_bad_window_setting_is_an_unknown_crash_naming_the_plugin(
    pm, land_sales_file, monkeypatch
) -> None:
    monkeypatch.setenv(date_window.WINDOW_DAYS_ENV, "-1")
    verdict = validate_file(pm, land_sales_file("sales_2024-03-20.csv", sales_csv({})))
    assert verdict.category == "unknown"
    assert verdict.reason == (
        "validator plugin 'date_window' crashed: ValueError: SALES_ETL_DATE_WINDOW_DAYS must "
        "be a whole number of days >= 0, got '-1'"
    )


def test_two_dates_in_the_name_allow_the_span(pm, land_sales_file) -> None:
    data = sales_csv({"sales_date": "2024-03-01"}, {"sales_date": "2024-03-31"})
    assert validate_file(pm, land_sales_file("sales_20240301_20240331.csv", data)).accepted
    late = sales_csv({"sales_date": "2024-04-02"})
    verdict = validate_file(pm, land_sales_file("sales_20240301_20240331.csv", late))
    assert "outside 2024-02-29..2024-04-01" in verdict.reason
    assert "file name date 2024-03-01, 2024-03-31" in verdict.reason


def test_files_without_a_date_in_their_name_are_not_read(pm, land_sales_file) -> None:
    incoming = land_sales_file("sales_0001.csv", sales_csv({"sales_date": "1999-01-01"}))

    def no_reading():
        raise AssertionError("the plugin opened a file without a date in its name")

    incoming.open = no_reading  # type: ignore[method-assign]
    assert validate_file(pm, incoming).accepted is True


def test_unparsable_and_missing_dates_are_left_to_the_row_rules(pm, land_sales_file) -> None:
    data = (
        sales_csv(
            {"sales_date": ""},
            {"sales_date": "20/03/2024"},
            {"sales_date": "2024-02-30"},
            {"sales_date": " 2024-03-20 "},
        )
        + b"1,1,short row\n"
    )
    assert validate_file(pm, land_sales_file("sales_2024-03-20.csv", data)).accepted is True


def test_bom_crlf_quoting_and_reordered_columns(pm, land_sales_file) -> None:
    columns = ["note", "sales_date", *[c for c in MANDATORY_COLUMNS if c != "sales_date"]]
    data = b"\xef\xbb\xbf" + sales_csv(
        {"note": 'line one\r\nline two, "quoted"'},
        {"sales_date": "2024-05-01"},
        columns=columns,
        line_end="\r\n",
    )
    verdict = validate_file(pm, land_sales_file("sales_2024-03-20.csv", data))
    assert verdict.category == "out_of_window"
    assert verdict.reason.endswith("first: row 2 has 2024-05-01")


def test_header_only_and_blank_lines(pm, land_sales_file) -> None:
    assert validate_file(pm, land_sales_file("sales_2024-03-20.csv", sales_csv())).accepted
    data = sales_csv({}) + b"\n\n"
    assert validate_file(pm, land_sales_file("sales_2024-03-20.csv", data)).accepted


def test_the_plugin_can_be_disabled(land_sales_file) -> None:
    pm = plugin_manager((NAME, date_window), disabled=[NAME])
    assert NAME not in call_order(pm)
    data = sales_csv({"sales_date": "2030-01-01"})
    assert validate_file(pm, land_sales_file("sales_2024-03-20.csv", data)).accepted is True
