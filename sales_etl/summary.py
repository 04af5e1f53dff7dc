"""The run summary: one plain dict (stored in etl_runs, returned by the flow) and its text form."""

from __future__ import annotations

from collections import Counter
from typing import Any


def build_summary(
    *,
    run_id: str,
    batch_id: str | None,
    plans: list[dict[str, Any]],
    stats: dict[str, Any] | None,
    reporting: dict[str, Any] | None,
    recovered: list[dict[str, Any]],
    stage_seconds: dict[str, float] | None = None,
    left_waiting: list[dict[str, str]] | None = None,
    replayable_rows: int | None = None,
    replayable_watermark: str | None = None,
) -> dict[str, Any]:
    """Everything an operator wants to know about one run, as JSON-ready data.

    ``replayable_rows``: quarantined rows a ``sales-etl replay`` could load now (None: not
    counted, e.g. no file was loaded and Spark did not start); ``replayable_watermark``: the
    rules and dimension ids it was counted under (sha256 hex; the next run counts only its own
    batch when it is unchanged: tasks/replay.py ``count_replayable``).

    ``plans`` must already show held files as rejected (``tasks.files.apply_holds``); their row
    counts come from ``stats["held"]``. ``rows_total`` = ``rows_loaded`` + ``rows_quarantined``
    over the files that stayed in the batch; ``rows_held`` counts the rows of held files.
    ``left_waiting``: listed files still in ``to_process/`` for the next run, ``{"file",
    "reason"}`` each (:func:`sales_etl.journal.left_waiting`); not counted in ``files_total``.
    """
    stats = stats or {}
    per_file = stats.get("per_file", {})
    held = stats.get("held", {})
    files = []
    for plan in plans:
        entry = {
            "file": plan["key"],
            "outcome": "accepted" if plan["accepted"] else plan["category"],
            "reason": plan["reason"],
            "plugin": plan.get("plugin"),
            "extra_columns": plan.get("extra_columns", []),
        }
        if plan["accepted"]:  # how Spark read it (issue 16 §1, tasks.marts.read_accepted_files)
            split = plan["key"] in stats.get("split_by_line", ())
            entry["spark_read"] = "split by line" if split else "multiLine"
        entry.update({f"rows_{k}": v for k, v in per_file.get(plan["key"], {}).items()})
        if plan["key"] in held and "rows_total" in held[plan["key"]]:
            hold = held[plan["key"]]  # read, judged, then held: none loaded or quarantined
            entry.update(
                rows_total=hold["rows_total"],
                rows_loaded=0,
                rows_quarantined=0,
                rows_bad=hold["rows_bad"],
                top_reasons=hold["top_reasons"],
            )
        files.append(entry)
    outcomes = Counter(f["outcome"] for f in files)
    return {
        "run_id": run_id,
        "batch_id": batch_id,
        "files_total": len(files),
        "files_accepted": outcomes.get("accepted", 0),
        "files_rejected": len(files) - outcomes.get("accepted", 0),
        "files_by_outcome": dict(sorted(outcomes.items())),
        "files": files,
        "files_left_waiting": list(left_waiting or []),
        "rows_total": stats.get("rows_total", 0),
        "rows_loaded": stats.get("rows_loaded", 0),
        "rows_quarantined": stats.get("rows_quarantined", 0),
        "quarantine_reasons": stats.get("quarantine_reasons", {}),
        # Rows of files held whole (too many bad rows): in no mart, not in rows_total.
        "rows_held": sum(h.get("rows_total", 0) for h in held.values()),
        "months_recomputed": (reporting or {}).get("months", []),
        "top_performers": (reporting or {}).get("top_performers", []),
        "recovered_runs": recovered,
        "replayable_rows": replayable_rows,
        "replayable_watermark": replayable_watermark,
        # Seconds per flow stage up to the summary, and the inside of the two Spark stages.
        "stage_seconds": stage_seconds if stage_seconds is not None else {},
        "stage_details": {
            "marts (spark)": stats.get("stage_seconds", {}),
            "reporting tables (spark + db)": (reporting or {}).get("stage_seconds", {}),
        },
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A short human report for the terminal."""
    lines = []
    for action in summary.get("recovered_runs", []):
        lines.append(
            f"recovered interrupted run {action['run_id']} (batch {action['batch_id']}): {action['action']}"
        )
    if not summary["files_total"]:
        lines.append("No files waiting in to_process/: nothing to do.")
        return "\n".join(lines)
    lines.append(f"Batch {summary['batch_id']} (UTC)")
    lines.append(
        f"Files: {summary['files_total']} seen, {summary['files_accepted']} accepted, "
        f"{summary['files_rejected']} rejected"
    )
    for f in summary["files"]:
        if f["outcome"] != "accepted":
            lines.append(f"  - {f['file']}: {f['outcome']} ({f['reason']})")
    for f in summary.get("files_left_waiting", []):
        lines.append(f"  - {f['file']}: left in to_process/ ({f['reason']})")
    held = f"; {summary['rows_held']} in held files" if summary.get("rows_held") else ""
    lines.append(
        f"Rows: {summary['rows_total']} read, {summary['rows_loaded']} loaded, "
        f"{summary['rows_quarantined']} quarantined{held}"
    )
    for reason, count in summary["quarantine_reasons"].items():
        lines.append(f"  - {reason}: {count}")
    if summary["months_recomputed"]:
        lines.append("Months recomputed: " + ", ".join(summary["months_recomputed"]))
    if summary.get("replayable_rows"):
        lines.append(
            f"Quarantined rows a replay could load now: {summary['replayable_rows']} "
            "(their dimensions arrived: run `sales-etl replay --dry-run`)"
        )
    for top in summary["top_performers"]:
        name = " ".join(p for p in (top.get("first_name"), top.get("last_name")) if p)
        lines.append(
            f"Top performer {top['year']}-{top['month']:02d}: #{top['sales_person_id']} {name}, "
            f"sales {top['total_sales']}, incentive {top['incentive']}"
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
