"""sales-etl validator plugin: a file dated in its name holds only sales of that date.

A file whose name contains a date, ``sales_2024-03-20.csv`` or ``store7_20240320_0600.csv``,
is rejected into ``error_files/out_of_window/<batch>/`` when any row's ``sales_date`` falls
outside that date plus or minus ``SALES_ETL_DATE_WINDOW_DAYS`` days (default 1: a file exported
just after midnight, or stamped with its export day rather than its business day, still
passes; a file of the wrong week or month does not). A name with several dates
(``sales_20240301_20240331.csv``) allows everything from the earliest to the latest.

Files without a date in their name are not looked at. Row values that are missing or not a
``YYYY-MM-DD`` date are left alone: the pipeline quarantines those rows with their own reason.

Installed with pip, it registers itself under the ``sales_etl`` entry-point group as
``date_window``; ``SALES_ETL_DISABLE_PLUGINS=date_window`` switches it off.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from datetime import date, timedelta

from sales_etl.validators import HOOKSPEC_VERSION, IncomingFile, Rejection, hookimpl

if HOOKSPEC_VERSION != "1":  # refuse to load rather than misread a changed hook
    raise ImportError(
        f"sales-etl-date-window supports validator hookspec version 1, not {HOOKSPEC_VERSION}"
    )

__version__ = "0.1.0"

#: The ``error_files/<category>/`` folder of rejected files.
CATEGORY = "out_of_window"
#: Environment variable holding the tolerance in days on each side of the name's date.
WINDOW_DAYS_ENV = "SALES_ETL_DATE_WINDOW_DAYS"
#: Tolerance when the variable is unset.
DEFAULT_WINDOW_DAYS = 1

# A date in a file name: 2024-03-20 or 20240320, not part of a longer run of digits.
_NAME_DATE = re.compile(
    r"(?<!\d)(?P<y>\d{4})(?P<sep>-?)(?P<m>\d{2})(?P=sep)(?P<d>\d{2})(?!\d)",
)
# What the pipeline itself accepts as a sales_date (sales_etl/rules/transform.py): YYYY-MM-DD, space-trimmed.
_ROW_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_YEARS = range(1900, 3000)


@dataclass(frozen=True)
class Window:
    """The dates a file's rows may have: ``first`` to ``last``, both included."""

    first: date
    last: date

    def __contains__(self, day: date) -> bool:
        return self.first <= day <= self.last

    def __str__(self) -> str:
        return f"{self.first.isoformat()}..{self.last.isoformat()}"


def dates_in_name(name: str) -> list[date]:
    """Every real calendar date written in ``name`` as ``YYYY-MM-DD`` or ``YYYYMMDD``, sorted.

    ``sales_2024-03-20.csv`` -> [2024-03-20]; ``sales_0001.csv``, ``sales_12345678.csv``
    (no month 56) and ``sales_2024_03.csv`` -> [].
    """
    found = set()
    for match in _NAME_DATE.finditer(name):
        try:
            day = date(int(match["y"]), int(match["m"]), int(match["d"]))
        except ValueError:
            continue
        if day.year in _YEARS:
            found.add(day)
    return sorted(found)


def window_days() -> int:
    """The tolerance from ``SALES_ETL_DATE_WINDOW_DAYS`` (default 1).

    Raises:
        ValueError: The variable is not a whole number >= 0 (the run then moves the file to
            ``error_files/unknown/`` with this message, naming the plugin).
    """
    raw = os.environ.get(WINDOW_DAYS_ENV, "").strip()
    if not raw:
        return DEFAULT_WINDOW_DAYS
    if not raw.isdigit():
        raise ValueError(f"{WINDOW_DAYS_ENV} must be a whole number of days >= 0, got {raw!r}")
    return int(raw)


def window_for(name: str, days: int) -> Window | None:
    """The allowed sales dates of a file called ``name``, or ``None`` if it has no date."""
    dates = dates_in_name(name)
    if not dates:
        return None
    return Window(dates[0] - timedelta(days=days), dates[-1] + timedelta(days=days))


@hookimpl(trylast=True)  # reads the whole file: let the cheap checks refuse it first
def sales_etl_validate_file(file: IncomingFile) -> Rejection | None:
    """Reject a dated file with a ``sales_date`` outside the window around its date."""
    days = window_days()
    window = window_for(file.name, days)
    if window is None:
        return None
    outside = rows = 0
    first_outside = ""
    with file.open() as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
        reader = csv.reader(text)
        header = next(reader, None)
        if header is None or "sales_date" not in header:
            return None  # the header check has already said what is wrong
        column = header.index("sales_date")
        try:
            for record in reader:
                if not record:  # blank line
                    continue
                rows += 1
                day = _row_date(record, column)
                if day is not None and day not in window:
                    outside += 1
                    if not first_outside:
                        first_outside = f"row {rows} has {day.isoformat()}"
        except csv.Error:
            pass  # a malformed record: the pipeline quarantines it; judge the rows read so far
    if not outside:
        return None
    named = ", ".join(d.isoformat() for d in dates_in_name(file.name))
    return Rejection(
        CATEGORY,
        f"{outside} of {rows} rows have a sales_date outside {window} (file name date "
        f"{named} +/- {days} day(s), {WINDOW_DAYS_ENV}); first: {first_outside}",
    )


def _row_date(record: list[str], column: int) -> date | None:
    """The row's sales_date if it is a real ``YYYY-MM-DD`` date, else ``None``."""
    if column >= len(record):
        return None
    value = record[column].strip(" ")
    if not _ROW_DATE.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None
