"""What happened to one landed file: the validators' verdict and the run's record of its fate.

Two phases, two classes, one hierarchy (not five shapes):

- :class:`FileVerdict` is what the validator plugins decided about a file's bytes
  (:func:`sales_etl.validators.manager.validate_file`). It is part of the plugin authors' API
  (docs/plugins.md): it knows nothing of runs, duplicates or Spark, and plugin tests compare
  whole verdicts with ``==``.
- :class:`FileFate` is the run's record of the same file: the verdict's fields, plus where the
  file is (``key``), what the scan found (size, checksum, widest line, splittable), the run's
  own decisions (duplicates, holds after the Spark stage) and the rows Spark read from it. The
  flow passes it between tasks, the journal records it (``staging_files``), the run summary
  lists it (``files[]``, :meth:`FileFate.to_json`) and the artifacts render it.

This module imports nothing heavy: an idle ``sales-etl run`` (:mod:`sales_etl.idle`) builds its
summary without loading the validators, Prefect or Spark.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The summary's outcome of a file that stayed in the batch (otherwise: its rejection category).
ACCEPTED = "accepted"
#: :attr:`FileFate.spark_read` values (issue 16 section 1, ``tasks.marts.read_accepted_files``).
SPLIT_BY_LINE = "split by line"
MULTILINE = "multiLine"

#: The optional fields of a summary ``files[]`` entry, in their JSON order; absent when None.
_OPTIONAL_JSON_FIELDS = (
    "spark_read",
    "rows_total",
    "rows_loaded",
    "rows_quarantined",
    "rows_bad",
    "top_reasons",
)


@dataclass
class RowCounts:
    """The rows the Spark stage read from one file: ``total`` = ``loaded`` + ``quarantined``."""

    total: int = 0
    loaded: int = 0
    quarantined: int = 0


@dataclass(frozen=True)
class FileHold:
    """Why the Spark stage took an accepted file out of its batch, whole (issue 12, 13 §2).

    ``category``: its ``error_files/<category>/`` folder (``too_many_bad_rows``, ``unknown``);
    ``reason``: one sentence for the operator. When the file's rows were read and judged (too
    many bad rows: ``tasks.marts.bad_row_hold``): ``rows_total``, ``rows_bad`` and
    ``top_reasons`` (reason code -> rows, most frequent first); None when Spark could not read
    it (``tasks.poison.poison_hold``).
    """

    category: str
    reason: str
    rows_total: int | None = None
    rows_bad: int | None = None
    top_reasons: dict[str, int] | None = None


@dataclass
class FileVerdict:
    """What the validators decided about one file.

    Attributes:
        accepted: Whether the file goes on to Spark.
        category: For a rejected file, its ``error_files/<category>/`` folder; else ``None``.
        reason: For a rejected file, why; else ``None``.
        plugin: Name of the plugin that rejected the file (or crashed); else ``None``.
        header: The file's column names when they could be read, else ``None``.
        extra_columns: For an accepted file, its columns that are not mandatory, in header
            order (kept in ``additional_column``); empty otherwise.
    """

    accepted: bool
    category: str | None
    reason: str | None
    plugin: str | None
    header: list[str] | None
    extra_columns: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class FileFate(FileVerdict):
    """One landed file in one run: its verdict, the run's decisions and its row counts.

    Small plain data: safe to pass between Prefect tasks.

    Attributes (besides :class:`FileVerdict`'s):
        key: The file's key in the landing store (``to_process/<name>``).
        size: Bytes claimed (0 when the claim could not be read).
        checksum: sha256 hex of the claimed bytes ("" when unreadable); duplicates are found
            by it.
        max_line_fields: The widest line's field count (``IncomingFile.max_line_fields``; sets
            the Spark read's ``maxColumns``, ``tasks.marts.max_columns_option``).
        splittable: Spark may read the file split by line (``IncomingFile.splittable``).
        spark_read: How Spark read an accepted file: :data:`SPLIT_BY_LINE` or
            :data:`MULTILINE`; None before the Spark stage and for rejected files.
        rows_total, rows_loaded, rows_quarantined: Rows Spark read, loaded and quarantined
            (``rows_total`` = ``rows_loaded`` + ``rows_quarantined``); None when not read. A
            file held whole after the Spark stage has its rows in ``rows_total`` and 0 loaded,
            0 quarantined.
        rows_bad, top_reasons: For a file held for too many bad rows: its bad rows and most
            frequent reasons (reason code -> rows; ``tasks.marts.bad_row_hold``); else None.
    """

    key: str
    size: int = 0
    checksum: str = ""
    max_line_fields: int = 0
    splittable: bool = False
    spark_read: str | None = None
    rows_total: int | None = None
    rows_loaded: int | None = None
    rows_quarantined: int | None = None
    rows_bad: int | None = None
    top_reasons: dict[str, int] | None = None

    @property
    def outcome(self) -> str:
        """``"accepted"``, or the rejection category (the ``error_files/`` folder)."""
        return ACCEPTED if self.accepted else str(self.category)

    def rejected(self, category: str, reason: str, plugin: str | None = None) -> FileFate:
        """This file rejected by the run itself (a duplicate, a hold), as a new fate."""
        return dataclasses.replace(
            self, accepted=False, category=category, reason=reason, plugin=plugin
        )

    def to_json(self) -> dict[str, Any]:
        """The run summary's ``files[]`` entry: ``file``, ``outcome``, ``reason``, ``plugin``,
        ``extra_columns``, then those of ``spark_read``, ``rows_total``, ``rows_loaded``,
        ``rows_quarantined``, ``rows_bad``, ``top_reasons`` that are known."""
        entry: dict[str, Any] = {
            "file": self.key,
            "outcome": self.outcome,
            "reason": self.reason,
            "plugin": self.plugin,
            "extra_columns": list(self.extra_columns),
        }
        for name in _OPTIONAL_JSON_FIELDS:
            value = getattr(self, name)
            if value is not None:
                entry[name] = value
        return entry

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> FileFate:
        """The fate a summary ``files[]`` entry (:meth:`to_json`) describes (for reports: the
        scan facts and the header are not in the summary and stay at their defaults)."""
        accepted = entry["outcome"] == ACCEPTED
        return cls(
            key=entry["file"],
            accepted=accepted,
            category=None if accepted else entry["outcome"],
            reason=entry.get("reason"),
            plugin=entry.get("plugin"),
            header=None,
            extra_columns=list(entry.get("extra_columns", [])),
            **{name: entry[name] for name in _OPTIONAL_JSON_FIELDS if name in entry},
        )
