"""Tasks over the landed files: list, claim, validate, route rejects, hold, archive.

Every state change and every move is made by the run journal (:mod:`sales_etl.journal`);
these tasks open the stores and the database around it, validate, and log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from prefect import get_run_logger
from sqlalchemy import Engine

from sales_etl import journal
from sales_etl.db.engine import make_engine
from sales_etl.db.schema import CLAIMED, KIND_NIGHTLY
from sales_etl.faults import crash_point
from sales_etl.layout import TO_PROCESS
from sales_etl.settings import Settings
from sales_etl.storage import ObjectInfo, ObjectStore, open_store
from sales_etl.tasks.retry import io_task
from sales_etl.validators.manager import get_plugin_manager, validate_file
from sales_etl.validators.model import DUPLICATE, UNKNOWN, IncomingFile


@dataclass
class FilePlan:
    """The decision about one landed file (small, plain data: safe to pass between tasks)."""

    key: str
    name: str
    size: int
    checksum: str
    accepted: bool
    category: str | None = None
    reason: str | None = None
    plugin: str | None = None
    header: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    #: IncomingFile.max_line_fields: sets the Spark read's maxColumns (tasks.marts).
    max_line_fields: int = 0
    #: IncomingFile.splittable: Spark reads the file split by line instead of with multiLine.
    splittable: bool = False

    def verdict(self) -> journal.Verdict:
        """The journal's view of this decision."""
        return journal.Verdict(
            self.key,
            self.checksum,
            self.size,
            None if self.accepted else (self.category or UNKNOWN),
            None if self.accepted else self.reason,
        )

    def as_dict(self) -> dict[str, object]:
        """Plain-dict form for summaries and artifacts."""
        return asdict(self)


@io_task("list-incoming-files")
def list_incoming_files(settings: Settings) -> list[dict[str, Any]]:
    """The files waiting in ``to_process/``: ``key``, ``size`` (bytes), ``version`` each."""
    listed = [
        {"key": o.key, "size": o.size, "version": o.version}
        for o in journal.incoming_files(open_store(settings.landing))
    ]
    get_run_logger().info("%d file(s) waiting in %s/", len(listed), TO_PROCESS)
    return listed


@io_task("open-run")
def open_run(
    settings: Settings, run_id: str, flow_run_id: str | None, kind: str = KIND_NIGHTLY
) -> str:
    """Open the run in the journal (STARTED, of ``kind``); returns its batch id."""
    engine = make_engine(settings.database_url)
    try:
        return journal.open_run(engine, run_id, flow_run_id, kind)
    finally:
        engine.dispose()


@io_task("claim-files")
def claim_incoming_files(
    settings: Settings, run_id: str, batch_id: str, listed: list[dict[str, Any]]
) -> list[str]:
    """Copy exactly the listed version of each file into the run's claim folder; returns the
    keys claimed (a file changed since listing is left for the next run)."""
    engine = make_engine(settings.database_url)
    try:
        claimed = journal.claim_files(
            engine,
            open_store(settings.landing),
            run_id,
            batch_id,
            [ObjectInfo(o["key"], o["size"], o["version"]) for o in listed],
        )
    finally:
        engine.dispose()
    get_run_logger().info("batch %s: claimed %d of %d file(s)", batch_id, len(claimed), len(listed))
    return claimed


def plan_files(
    store: ObjectStore, claims: Sequence[Any], settings: Settings, engine: Engine
) -> list[FilePlan]:
    """Validate every claimed file through the plugin manager and spot duplicates.

    ``claims``: staging rows (``file_location`` = the original key validators see,
    ``claim_location`` = the run's copy whose bytes are read).
    """
    pm = get_plugin_manager(settings)
    plans: list[FilePlan] = []
    for claim in claims:
        key = claim.file_location
        name = key.rsplit("/", 1)[-1]
        try:
            incoming = IncomingFile.scan(store, key, settings, read_from=claim.claim_location)
        except Exception as exc:  # unreadable object: keep it, say why
            plans.append(
                FilePlan(
                    key,
                    name,
                    0,
                    "",
                    False,
                    UNKNOWN,
                    f"could not read the file: {type(exc).__name__}: {str(exc)[:300]}",
                )
            )
            continue
        verdict = validate_file(pm, incoming)
        plans.append(
            FilePlan(
                key=key,
                name=name,
                size=incoming.size,
                checksum=incoming.checksum,
                accepted=verdict.accepted,
                category=verdict.category,
                reason=verdict.reason,
                plugin=verdict.plugin,
                header=list(verdict.header or []),
                extra_columns=list(verdict.extra_columns or []),
                max_line_fields=incoming.max_line_fields,
                splittable=incoming.splittable,
            )
        )
    already = journal.completed_checksums(engine, [p.checksum for p in plans if p.accepted])
    _mark_duplicates(plans, already)
    return plans


def _mark_duplicates(plans: list[FilePlan], already_loaded: set[str]) -> None:
    """Byte-identical to a loaded file, or to an earlier file of this batch -> duplicates."""
    first_in_batch: dict[str, str] = {}
    for plan in plans:
        if not plan.accepted:
            continue
        if plan.checksum in already_loaded:
            reason = "byte-identical to a file already loaded by an earlier run"
        elif plan.checksum in first_in_batch:
            reason = f"byte-identical to {first_in_batch[plan.checksum]!r} in this batch"
        else:
            first_in_batch[plan.checksum] = plan.key
            continue
        plan.accepted, plan.category, plan.reason = False, DUPLICATE, reason


@io_task("validate-files")
def validate_claimed_files(settings: Settings, run_id: str, batch_id: str) -> list[dict[str, Any]]:
    """Validate the run's claimed files and record each verdict (one transaction); returns
    the file plans (``FilePlan.as_dict``)."""
    engine = make_engine(settings.database_url)
    try:
        claims = journal.staged_files(engine, run_id, CLAIMED)
        plans = plan_files(open_store(settings.landing), claims, settings, engine)
        journal.record_verdicts(engine, run_id, batch_id, [p.verdict() for p in plans])
    finally:
        engine.dispose()
    logger = get_run_logger()
    for plan in plans:
        if not plan.accepted:
            logger.warning("rejected %s -> %s: %s", plan.key, plan.category, plan.reason)
    logger.info(
        "batch %s: %d accepted, %d rejected",
        batch_id,
        sum(p.accepted for p in plans),
        sum(not p.accepted for p in plans),
    )
    crash_point("after_validation")
    return [p.as_dict() for p in plans]


@io_task("route-rejected-files")
def route_rejected_files(settings: Settings, run_id: str) -> int:
    """Move rejected files to ``error_files/<category>/<batch>/``."""
    engine = make_engine(settings.database_url)
    try:
        moved = journal.route_rejected_files(engine, open_store(settings.landing), run_id)
    finally:
        engine.dispose()
    crash_point("after_reject_moves")
    return moved


@io_task("hold-files")
def hold_files(
    settings: Settings, run_id: str, batch_id: str, holds: dict[str, dict[str, Any]]
) -> int:
    """Take accepted files out of the batch after the Spark stage, whole; returns files moved.

    ``holds``: file key -> ``category`` and ``reason`` (plus ``rows_total`` when known), e.g.
    the :func:`sales_etl.tasks.marts.bad_row_hold` records. The caller must already have kept
    the files' rows out of the marts. See :func:`sales_etl.journal.hold_files`.
    """
    engine = make_engine(settings.database_url)
    try:
        moved = journal.hold_files(engine, open_store(settings.landing), run_id, batch_id, holds)
    finally:
        engine.dispose()
    logger = get_run_logger()
    for key, hold in holds.items():
        logger.warning("held %s -> error_files/%s/: %s", key, hold["category"], hold["reason"])
    return moved


def apply_holds(
    plans: Sequence[Mapping[str, Any]], holds: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The run's file plans (``FilePlan.as_dict``) with the held files turned into rejections."""
    return [
        {
            **plan,
            "accepted": False,
            "category": holds[plan["key"]]["category"],
            "reason": holds[plan["key"]]["reason"],
            "plugin": None,
        }
        if plan["key"] in holds
        else dict(plan)
        for plan in plans
    ]


@io_task("files-left-waiting")
def files_left_waiting(
    settings: Settings, listed: list[dict[str, Any]], claimed: list[str]
) -> list[dict[str, str]]:
    """The listed files still in ``to_process/`` after the run settled its claims.

    Returns ``{"file": key, "reason": ...}`` each (:func:`sales_etl.journal.left_waiting`).
    """
    left = journal.left_waiting(open_store(settings.landing), [o["key"] for o in listed], claimed)
    for entry in left:
        get_run_logger().warning("left in to_process/: %s (%s)", entry["file"], entry["reason"])
    return left


@io_task("archive-accepted-files")
def archive_accepted_files(settings: Settings, run_id: str) -> int:
    """Move loaded files to ``processed/<batch>/`` (only after the load committed)."""
    engine = make_engine(settings.database_url)
    try:
        moved = journal.archive_files(engine, open_store(settings.landing), run_id)
    finally:
        engine.dispose()
    get_run_logger().info("archived %d file(s) under processed/", moved)
    return moved
