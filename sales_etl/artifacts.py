"""Prefect artifacts of one run: the report an operator reads in the UI after the nightly run.

Every run publishes, attached to its flow run, under stable keys (the UI's Artifacts page keeps
one history per key):

``sales-etl-summary``         markdown: outcome, batch, files, rows, months, top performers,
                              settings; on failure the error and what happened to the files
``sales-etl-files``           table: every file seen, its outcome and reason, rows per file
``sales-etl-rows``            table: rows loaded, and rows quarantined by reason
``sales-etl-months``          table: the months recomputed, with their top performers
``sales-etl-top-performers``  table: top performers and their incentives, per month

A failed run publishes the summary and the files table (what it had decided before failing).
Nothing secret goes in: the database URL is shown with its password masked and error text is
scrubbed of credentials by :func:`sales_etl.secrets.scrub` (URL passwords, the AWS secret key
and session token, the database password). Publishing never changes a run's outcome: a failure
to publish is only logged.

The builders are pure functions over the run summary (:func:`sales_etl.summary.build_summary`),
so they are tested without Prefect.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from sales_etl.file_fate import ACCEPTED, FileFate
from sales_etl.secrets import redact_url, scrub
from sales_etl.settings import Settings
from sales_etl.summary import RunSummary, format_replay_summary, top_performer_name

SUMMARY_KEY = "sales-etl-summary"
FILES_KEY = "sales-etl-files"
ROWS_KEY = "sales-etl-rows"
MONTHS_KEY = "sales-etl-months"
TOP_PERFORMERS_KEY = "sales-etl-top-performers"
ARTIFACT_KEYS = (SUMMARY_KEY, FILES_KEY, ROWS_KEY, MONTHS_KEY, TOP_PERFORMERS_KEY)
#: The report of a ``sales-etl-replay`` flow run (flows/replay_flow.py).
REPLAY_KEY = "sales-etl-replay"

ERROR_CHARS = 1500


# --- formatting helpers --------------------------------------------------------------------------


def _cell(value: Any) -> str:
    """A value as table text: money as plain decimal text, None as empty."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:f}"
    return str(value)


def _md(text: Any) -> str:
    """Text safe inside a markdown table cell or list item (no table breaks, no markup)."""
    value = _cell(text).replace("\r", " ").replace("\n", " ")
    return re.sub(r"([\\`*_\[\]<>|#])", r"\\\1", value)


def _code(text: Any) -> str:
    """Text as an inline code span (backslash escapes do not work inside one)."""
    return "`" + _cell(text).replace("`", "'").replace("\n", " ") + "`"


def _month(row: Mapping[str, Any]) -> str:
    return f"{int(row['year']):04d}-{int(row['month']):02d}"


def _counts(items: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in items.items())


# --- tables --------------------------------------------------------------------------------------

#: The outcome the files table shows for an accepted file of a failed run.
NOT_LOADED = "accepted, not loaded (run failed)"


def files_table(files: Sequence[FileFate], *, run_failed: bool = False) -> list[dict[str, Any]]:
    """One row per file seen: where it went, why, and its row counts (when read).

    ``run_failed``: the files of a failed run, from the decisions it made before failing
    (an accepted file shows as not loaded, and no row counts: nothing of it was committed).
    """
    return [
        {
            "file": f.key,
            "outcome": NOT_LOADED if run_failed and f.accepted else f.outcome,
            "reason": f.reason or "",
            "plugin": f.plugin or "",
            **{
                name: "" if run_failed or value is None else value
                for name, value in (
                    ("rows_total", f.rows_total),
                    ("rows_loaded", f.rows_loaded),
                    ("rows_quarantined", f.rows_quarantined),
                )
            },
        }
        for f in files
    ]


def rows_table(summary: RunSummary) -> list[dict[str, Any]]:
    """Rows loaded, then rows quarantined per reason (most frequent first)."""
    rows: list[dict[str, Any]] = [
        {"outcome": "loaded", "reason": "", "rows": int(summary.rows_loaded)}
    ]
    for reason, count in summary.quarantine_reasons.items():
        rows.append({"outcome": "quarantined", "reason": reason, "rows": int(count)})
    return rows


def top_performers_table(top_performers: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The top performer(s) of every month recomputed, with sales and incentive.

    ``top_performers``: :attr:`RunSummary.top_performers` (``sales_team_incentive`` rows).
    """
    return [
        {
            "month": _month(t),
            "sales_person_id": t["sales_person_id"],
            "name": top_performer_name(t),
            "total_sales": _cell(t["total_sales"]),
            "incentive": _cell(t["incentive"]),
        }
        for t in sorted(
            top_performers,
            key=lambda t: (int(t["year"]), int(t["month"]), t["sales_person_id"]),
        )
    ]


def months_table(summary: RunSummary) -> list[dict[str, Any]]:
    """Every month this run recomputed (over all data so far) and who tops it."""
    by_month: dict[str, list[Mapping[str, Any]]] = {}
    for top in summary.top_performers:
        by_month.setdefault(_month(top), []).append(top)
    rows = []
    for month in summary.months_recomputed:
        tops = sorted(by_month.get(month, []), key=lambda t: t["sales_person_id"])
        rows.append(
            {
                "month": month,
                "top_performers": ", ".join(
                    f"#{t['sales_person_id']} {top_performer_name(t)}" for t in tops
                ),
                "top_sales": _cell(
                    max((Decimal(str(t["total_sales"])) for t in tops), default=None)
                ),
                "incentives_paid": _cell(
                    sum((Decimal(str(t["incentive"])) for t in tops), Decimal("0.00"))
                ),
            }
        )
    return rows


# --- markdown ------------------------------------------------------------------------------------


def _settings_lines(settings: Settings | None) -> list[str]:
    if settings is None:  # the settings themselves were invalid: the error above says which
        return ["## Settings", "", "The settings could not be read (see the error above)."]
    return [
        "## Settings",
        "",
        "| setting | value |",
        "|---|---|",
        f"| landing | {_md(scrub(settings.landing, settings))} |",
        f"| marts | {_md(scrub(settings.marts, settings))} |",
        f"| database | {_md(redact_url(settings.database_url))} |",
        f"| Spark master | {_md(settings.spark_master)} |",
        f"| incentive scope | {_md(settings.incentive_scope)} (rate {_md(settings.incentive_rate)}) |",
        f"| max bad row fraction | {_md(f'{settings.max_bad_row_fraction:g}')} |",
    ]


def summary_markdown(summary: RunSummary, settings: Settings) -> str:
    """The report of a completed run."""
    lines = ["# Sales ETL run: Completed", ""]
    for action in summary.recovered_runs:
        lines.append(
            f"- Recovered an interrupted run first: batch {_md(action.batch_id)} "
            f"{_md(action.action)}."
        )
    if summary.recovered_runs:
        lines.append("")
    if not summary.files:
        lines += ["No files were waiting in `to_process/`: nothing to do.", ""]
        return "\n".join([*lines, *_settings_lines(settings)]) + "\n"
    by_outcome = summary.files_by_outcome
    accepted = by_outcome.pop(ACCEPTED, 0)
    rejected = f" ({_md(_counts(by_outcome))})" if by_outcome else ""
    months = summary.months_recomputed
    lines += [
        "| | |",
        "|---|---|",
        f"| batch | {_code(summary.batch_id)} (UTC) |",
        f"| files | {len(summary.files)} seen: {accepted} accepted, "
        f"{summary.files_rejected} rejected{rejected} |",
        f"| rows | {summary.rows_total} read: {summary.rows_loaded} loaded, "
        f"{summary.rows_quarantined} quarantined"
        + (f"; {summary.rows_held} in held files" if summary.rows_held else "")
        + " |",
        f"| months recomputed | {_md(', '.join(months)) if months else 'none'} |",
    ]
    if summary.replayable_rows:
        lines.append(
            f"| quarantined rows a replay could load now | {summary.replayable_rows}: "
            "run `sales-etl replay` |"
        )
    lines.append("")
    if summary.rejected_files:
        lines += ["## Rejected files", ""]
        lines += [
            f"- {_md(f.key)}: **{_md(f.outcome)}** ({_md(f.reason)})"
            for f in summary.rejected_files
        ]
        lines.append("")
    waiting = summary.files_left_waiting
    if waiting:
        lines += ["## Left in `to_process/` for the next run", ""]
        lines += [f"- {_md(f.file)}: {_md(f.reason)}" for f in waiting]
        lines.append("")
    if summary.held_files:
        lines += [
            "## Held files: too many bad rows (fix and send again)",
            "",
            "| file | rows | bad rows | top reasons |",
            "|---|---:|---:|---|",
        ]
        lines += [
            f"| {_md(f.key)} | {f.rows_total} | {f.rows_bad} "
            f"| {_md(_counts(f.top_reasons or {}))} |"
            for f in summary.held_files
        ]
        lines.append("")
    if summary.quarantine_reasons:
        lines += ["## Quarantined rows by reason", "", "| reason | rows |", "|---|---:|"]
        lines += [f"| {_md(r)} | {c} |" for r, c in summary.quarantine_reasons.items()]
        lines.append("")
    tops = top_performers_table(summary.top_performers)
    if tops:
        lines += [
            "## Top performers",
            "",
            "| month | sales person | total sales | incentive |",
            "|---|---|---:|---:|",
        ]
        lines += [
            f"| {t['month']} | #{t['sales_person_id']} {_md(t['name'])} | {t['total_sales']} "
            f"| {t['incentive']} |"
            for t in tops
        ]
        lines.append("")
    return "\n".join([*lines, *_settings_lines(settings)]) + "\n"


def failure_markdown(
    settings: Settings | None,
    error: BaseException | str,
    *,
    batch_id: str | None,
    files: Sequence[FileFate] = (),
) -> str:
    """The report of a failed run: the error, and where its files are.

    ``settings`` is None when the run failed reading its settings; ``files``: the fates the
    run had decided before failing.
    """
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    text = scrub(text, settings)
    if len(text) > ERROR_CHARS:
        text = text[:ERROR_CHARS] + " ..."
    accepted = sum(f.accepted for f in files)
    lines = [
        "# Sales ETL run: Failed",
        "",
        "```",
        text.replace("```", "'''"),
        "```",
        "",
    ]
    if batch_id is None:
        lines.append("The run failed before it opened a batch: no file was touched.")
    else:
        lines += [
            f"Batch {_code(batch_id)}: {len(files)} file(s) seen, {accepted} accepted.",
            "",
            "- A batch whose load had not committed was rolled back: its accepted files stay in "
            "`to_process/`, their `staging_files` rows are FAILED and nothing of it is in the "
            "marts or the reporting tables.",
            "- If the rollback could not run (the database was still unreachable), the next run "
            "does it before anything else.",
        ]
    lines += [
        "",
        "Once the cause is fixed, retry this flow run (the Retry button on its page, or "
        "`prefect flow-run retry <flow-run-id>`), or let the next scheduled run pick the files up.",
        "",
        *_settings_lines(settings),
    ]
    return "\n".join(lines) + "\n"


# --- publishing ----------------------------------------------------------------------------------


def _logger():
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:  # outside a run (unit tests, scripts)
        import logging

        return logging.getLogger("sales_etl.artifacts")


def _publish(
    markdown: str,
    tables: Mapping[str, tuple[list[dict[str, Any]], str]],
    key: str = SUMMARY_KEY,
    description: str = "Sales ETL run report",
) -> list[str]:
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    published = []
    create_markdown_artifact(markdown=markdown, key=key, description=description)
    published.append(key)
    for key, (table, description) in tables.items():
        create_table_artifact(table=table, key=key, description=description)
        published.append(key)
    return published


def publish_run_artifacts(summary: RunSummary, settings: Settings) -> list[str]:
    """Publish the report of a completed run; returns the keys published (empty on error)."""
    try:
        return _publish(
            summary_markdown(summary, settings),
            {
                FILES_KEY: (files_table(summary.files), "Files seen by the run, by outcome"),
                ROWS_KEY: (rows_table(summary), "Rows loaded and quarantined (by reason)"),
                MONTHS_KEY: (months_table(summary), "Months recomputed over all data so far"),
                TOP_PERFORMERS_KEY: (
                    top_performers_table(summary.top_performers),
                    "Top performers and incentives of the months recomputed",
                ),
            },
        )
    except Exception as exc:  # a report must never fail the run
        _logger().warning("could not publish the run's artifacts: %s", type(exc).__name__)
        return []


def publish_failure_artifacts(
    settings: Settings | None,
    error: BaseException | str,
    *,
    batch_id: str | None,
    files: Sequence[FileFate] = (),
) -> list[str]:
    """Publish the report of a failed run; returns the keys published (empty on error).

    Also for a run that failed before its batch opened (``batch_id`` None), even before its
    settings could be read (``settings`` None).
    """
    try:
        return _publish(
            failure_markdown(settings, error, batch_id=batch_id, files=files),
            {FILES_KEY: (files_table(files, run_failed=True), "Files seen by the failed run")},
        )
    except Exception as exc:  # never mask the run's own exception
        _logger().warning("could not publish the failed run's artifacts: %s", type(exc).__name__)
        return []


def replay_markdown(summary: Mapping[str, Any]) -> str:
    """The replay's report (:func:`sales_etl.summary.format_replay_summary`) as Markdown."""
    title = "Sales ETL replay (dry run)" if summary.get("dry_run") else "Sales ETL replay"
    lines = [f"# {title}", ""]
    lines += [
        f"- {_md(line.strip())}" for line in format_replay_summary(dict(summary)).splitlines()
    ]
    return "\n".join(lines) + "\n"


def publish_replay_artifacts(summary: Mapping[str, Any]) -> list[str]:
    """Publish a replay's report, and the months it recomputed with their top performers.

    Keys: ``sales-etl-replay`` (Markdown) and, when months were recomputed,
    ``sales-etl-top-performers``. Returns the keys published (empty on error: a report never
    fails the replay).
    """
    reporting = summary.get("reporting") or {}
    tables = {}
    if reporting.get("months"):
        tables[TOP_PERFORMERS_KEY] = (
            top_performers_table(reporting.get("top_performers", [])),
            "Top performers and incentives of the months the replay recomputed",
        )
    try:
        return _publish(replay_markdown(summary), tables, REPLAY_KEY, "Sales ETL replay report")
    except Exception as exc:
        _logger().warning("could not publish the replay's artifacts: %s", type(exc).__name__)
        return []
