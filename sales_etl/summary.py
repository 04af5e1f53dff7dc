"""The run summary: one model (:class:`RunSummary`), built once by :func:`build_summary`.

The flow returns its JSON form (:meth:`RunSummary.to_json`, also stored in ``etl_runs.summary``
and printed by ``sales-etl run --json``); it is rendered for the terminal here
(:func:`format_summary`) and for the Prefect UI in :mod:`sales_etl.artifacts`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from sales_etl.file_fate import FileFate
from sales_etl.journal import RecoveredRun, WaitingFile

if TYPE_CHECKING:
    from sales_etl.tasks.marts import BatchStats
    from sales_etl.tasks.reporting import MonthsRecomputed

#: ``stage_details`` keys: the flow stages whose inside is timed too.
MARTS_STAGE = "marts (spark)"
REPORTING_STAGE = "reporting tables (spark + db)"


@dataclass
class RunSummary:
    """Everything an operator wants to know about one run.

    ``files``: every file the run claimed, in claim order (held files as rejections);
    ``files_left_waiting``: listed files still in ``to_process/`` for the next run
    (:func:`sales_etl.journal.left_waiting`), not in ``files``. ``rows_total``
    = ``rows_loaded`` + ``rows_quarantined`` over the files that stayed in the batch;
    :attr:`rows_held` counts the rows of held files. ``top_performers``: the
    ``sales_team_incentive`` rows with an incentive of the months recomputed (money as
    DECIMAL(18,2) ``Decimal``). ``recovered_runs``: what the run's recovery did
    (:func:`sales_etl.journal.recover`). ``replayable_rows``: quarantined rows a ``sales-etl
    replay`` could load now (None: not counted, e.g. no file was loaded and Spark did not
    start); ``replayable_watermark``: the rules and dimension ids it was counted under (sha256
    hex; tasks/replay.py ``count_replayable``). ``stage_seconds``: seconds per flow stage up to
    the summary; ``stage_details``: the inside of the two Spark stages.
    """

    run_id: str
    batch_id: str | None
    files: list[FileFate] = field(default_factory=list)
    files_left_waiting: list[WaitingFile] = field(default_factory=list)
    rows_total: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    months_recomputed: list[str] = field(default_factory=list)
    top_performers: list[dict[str, Any]] = field(default_factory=list)
    recovered_runs: list[RecoveredRun] = field(default_factory=list)
    replayable_rows: int | None = None
    replayable_watermark: str | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    stage_details: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def files_accepted(self) -> int:
        """Files that stayed in the batch."""
        return sum(f.accepted for f in self.files)

    @property
    def files_rejected(self) -> int:
        """Files rejected by a validator, as duplicates or held after the Spark stage."""
        return len(self.files) - self.files_accepted

    @property
    def files_by_outcome(self) -> dict[str, int]:
        """Files per outcome (``accepted`` or the rejection category), by outcome name."""
        return dict(sorted(Counter(f.outcome for f in self.files).items()))

    @property
    def rejected_files(self) -> list[FileFate]:
        """The files not loaded, in claim order."""
        return [f for f in self.files if not f.accepted]

    @property
    def held_files(self) -> list[FileFate]:
        """The files held whole for too many bad rows (they have a row count and reasons)."""
        return [f for f in self.files if f.top_reasons is not None]

    @property
    def rows_held(self) -> int:
        """Rows of the files held whole after the Spark stage: in no mart, not in rows_total."""
        return sum(f.rows_total or 0 for f in self.rejected_files)

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready summary (keys in this order; ``files[]``: :meth:`FileFate.to_json`)."""
        return {
            "run_id": self.run_id,
            "batch_id": self.batch_id,
            "files_total": len(self.files),
            "files_accepted": self.files_accepted,
            "files_rejected": self.files_rejected,
            "files_by_outcome": self.files_by_outcome,
            "files": [f.to_json() for f in self.files],
            "files_left_waiting": [asdict(w) for w in self.files_left_waiting],
            "rows_total": self.rows_total,
            "rows_loaded": self.rows_loaded,
            "rows_quarantined": self.rows_quarantined,
            "quarantine_reasons": self.quarantine_reasons,
            "rows_held": self.rows_held,
            "months_recomputed": self.months_recomputed,
            "top_performers": self.top_performers,
            "recovered_runs": [r.to_json() for r in self.recovered_runs],
            "replayable_rows": self.replayable_rows,
            "replayable_watermark": self.replayable_watermark,
            "stage_seconds": self.stage_seconds,
            "stage_details": self.stage_details,
        }

    @classmethod
    def from_json(cls, summary: Mapping[str, Any]) -> RunSummary:
        """The model of a JSON summary (:meth:`to_json`; the counts are derived again)."""
        values = {f.name: summary[f.name] for f in fields(cls) if f.name in summary}
        values["files"] = [FileFate.from_json(entry) for entry in summary.get("files", [])]
        values["files_left_waiting"] = [
            WaitingFile(**entry) for entry in summary.get("files_left_waiting", [])
        ]
        values["recovered_runs"] = [
            RecoveredRun(**entry) for entry in summary.get("recovered_runs", [])
        ]
        return cls(**values)


def build_summary(
    *,
    run_id: str,
    batch_id: str | None,
    files: Sequence[FileFate],
    stats: BatchStats | None,
    reporting: MonthsRecomputed | None,
    recovered: list[RecoveredRun],
    stage_seconds: dict[str, float] | None = None,
    left_waiting: list[WaitingFile] | None = None,
    replayable_rows: int | None = None,
    replayable_watermark: str | None = None,
) -> RunSummary:
    """The summary of one run.

    ``files`` must already show the Spark stage's outcome (held files as rejections, row
    counts: ``tasks.files.apply_spark_outcome``); ``stats``: the batch's row figures (None when
    Spark did not run); ``reporting``: the months recomputed (``tasks.reporting.
    recompute_months``; None when none was). The other arguments are :class:`RunSummary`'s.
    """
    return RunSummary(
        run_id=run_id,
        batch_id=batch_id,
        files=list(files),
        files_left_waiting=list(left_waiting or []),
        rows_total=stats.rows_total if stats else 0,
        rows_loaded=stats.rows_loaded if stats else 0,
        rows_quarantined=stats.rows_quarantined if stats else 0,
        quarantine_reasons=stats.quarantine_reasons if stats else {},
        months_recomputed=reporting.months if reporting else [],
        top_performers=reporting.top_performers if reporting else [],
        recovered_runs=recovered,
        replayable_rows=replayable_rows,
        replayable_watermark=replayable_watermark,
        stage_seconds=stage_seconds if stage_seconds is not None else {},
        stage_details={
            MARTS_STAGE: stats.stage_seconds if stats else {},
            REPORTING_STAGE: reporting.stage_seconds if reporting else {},
        },
    )


def top_performer_name(row: Mapping[str, Any]) -> str:
    """A top performer's first and last name (what of them is known)."""
    return " ".join(str(p) for p in (row.get("first_name"), row.get("last_name")) if p)


def format_summary(summary: RunSummary | Mapping[str, Any]) -> str:
    """A short human report for the terminal, of a summary or its JSON form (the flow's
    return value)."""
    if not isinstance(summary, RunSummary):
        summary = RunSummary.from_json(summary)
    lines = []
    for action in summary.recovered_runs:
        lines.append(
            f"recovered interrupted run {action.run_id} (batch {action.batch_id}): {action.action}"
        )
    if not summary.files:
        lines.append("No files waiting in to_process/: nothing to do.")
        return "\n".join(lines)
    lines.append(f"Batch {summary.batch_id} (UTC)")
    lines.append(
        f"Files: {len(summary.files)} seen, {summary.files_accepted} accepted, "
        f"{summary.files_rejected} rejected"
    )
    for f in summary.rejected_files:
        lines.append(f"  - {f.key}: {f.outcome} ({f.reason})")
    for f in summary.files_left_waiting:
        lines.append(f"  - {f.file}: left in to_process/ ({f.reason})")
    held = f"; {summary.rows_held} in held files" if summary.rows_held else ""
    lines.append(
        f"Rows: {summary.rows_total} read, {summary.rows_loaded} loaded, "
        f"{summary.rows_quarantined} quarantined{held}"
    )
    for reason, count in summary.quarantine_reasons.items():
        lines.append(f"  - {reason}: {count}")
    if summary.months_recomputed:
        lines.append("Months recomputed: " + ", ".join(summary.months_recomputed))
    if summary.replayable_rows:
        lines.append(
            f"Quarantined rows a replay could load now: {summary.replayable_rows} "
            "(their dimensions arrived: run `sales-etl replay --dry-run`)"
        )
    for top in summary.top_performers:
        lines.append(
            f"Top performer {top['year']}-{top['month']:02d}: #{top['sales_person_id']} "
            f"{top_performer_name(top)}, sales {top['total_sales']}, incentive {top['incentive']}"
        )
    return "\n".join(lines)


def format_replay_summary(summary: dict[str, Any]) -> str:
    """A short human report of ``sales-etl replay`` (flows/replay_flow.py's summary)."""
    lines = []
    for action in summary.get("recovered", []):
        lines.append(
            f"recovered interrupted run {action['run_id']} (batch {action['batch_id']}): "
            f"{action['action']}"
        )
    dry = summary.get("dry_run")
    loaded = summary["rows_loadable"] if dry else summary["rows_loaded"]
    if dry:
        lines.append("Dry run: nothing was changed.")
    elif summary["batch_id"]:
        lines.append(f"Replay batch {summary['batch_id']} (UTC)")
    else:
        lines.append("Nothing to load and no reason changed: no batch opened.")
    lines.append(
        f"Quarantined rows judged: {summary['rows_judged']}; "
        f"{'would load' if dry else 'loaded'} {loaded}, still failing "
        f"{summary['rows_still_failing']} ({summary['reasons_updated']} with a new reason)"
    )
    for reason, count in summary["loadable_by_reason"].items():
        lines.append(f"  - was {reason}: {count}")
    for month in summary["months"]:
        line = f"Month {month}: +{summary['total_cost_by_month'][month]} total_cost"
        effect = summary.get("months_effect", {}).get(month)
        if effect:
            line += (
                f"; customer totals {effect['customer_total_before']} -> "
                f"{effect['customer_total_after']}; top performers "
                f"{effect['top_performers_before']} -> {effect['top_performers_after']}"
            )
        lines.append(line)
    return "\n".join(lines)
