"""UTC time stamps. Every stored time stamp in this product is naive UTC and says so in its column."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """Current time in UTC, without tzinfo (what the DATETIME columns hold), to the microsecond."""
    return datetime.now(UTC).replace(tzinfo=None)


def batch_id_for(moment: datetime) -> str:
    """The ``YYYYMMDD_HHMMSS`` folder name of a run started at ``moment`` (UTC)."""
    return moment.strftime("%Y%m%d_%H%M%S")
