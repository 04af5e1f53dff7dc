"""Tasks that look at and move landed files: list, validate, route rejects, archive."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Engine

from sales_etl.db.engine import make_engine
from sales_etl.db.schema import ACTIVE, REJECTED
from sales_etl.faults import crash_point
from sales_etl.layout import TO_PROCESS, error_key, processed_key
from sales_etl.settings import Settings
from sales_etl.storage import ObjectInfo, ObjectStore, StorageError, open_store, safe_key
from sales_etl.tasks.journal import (
    StagedFile,
    completed_checksums,
    hold_staged_files,
    staged_files,
    start_run,
)
from sales_etl.tasks.retry import retry_options
from sales_etl.validators.manager import get_plugin_manager, validate_file
from sales_etl.validators.model import DUPLICATE, UNKNOWN, IncomingFile

BATCH = "{batch}"  # placeholder for the batch id, filled in when the run is opened


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

    def staged(self) -> StagedFile:
        """The staging-table view of this decision."""
        if self.accepted:
            return StagedFile(
                self.key,
                self.name,
                self.checksum,
                self.size,
                ACTIVE,
                processed_key(BATCH, self.key),
            )
        return StagedFile(
            self.key,
            self.name,
            self.checksum,
            self.size,
            REJECTED,
            error_key(self.category or UNKNOWN, BATCH, self.key),
            self.category,
            self.reason,
        )

    def as_dict(self) -> dict[str, object]:
        """Plain-dict form for summaries and artifacts."""
        return asdict(self)


def incoming_files(store: ObjectStore) -> list[ObjectInfo]:
    """Every object under ``to_process/`` (all pages), skipping keys that could escape the root."""
    found = []
    logger = logging.getLogger(__name__)
    for obj in store.list(TO_PROCESS + "/"):
        try:
            safe_key(obj.key)
        except StorageError:
            # Cannot be addressed safely (e.g. an S3 key with "../" or "//"): leave it alone, loudly.
            logger.warning("ignoring object with an unsafe key: %r", obj.key)
            continue
        if obj.key.rsplit("/", 1)[-1].startswith("."):  # editor swap files, partial uploads
            continue
        found.append(obj)
    return found


@task(name="list-incoming-files", cache_policy=NO_CACHE, **retry_options())
def list_incoming_files(settings: Settings) -> list[str]:
    """Keys of the files waiting in ``to_process/``."""
    keys = [obj.key for obj in incoming_files(open_store(settings.landing))]
    get_run_logger().info("%d file(s) waiting in %s/", len(keys), TO_PROCESS)
    return keys


def plan_files(
    store: ObjectStore, keys: Sequence[str], settings: Settings, engine: Engine
) -> list[FilePlan]:
    """Validate every file through the plugin manager and spot duplicates."""
    pm = get_plugin_manager(settings)
    plans: list[FilePlan] = []
    for key in keys:
        name = key.rsplit("/", 1)[-1]
        try:
            incoming = IncomingFile.scan(store, key, settings)
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
            )
        )
    _mark_duplicates(plans, completed_checksums(engine, [p.checksum for p in plans if p.accepted]))
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


def move_staged(store: ObjectStore, rows: Sequence[object]) -> int:
    """Move each staging row's file to its recorded target (idempotent); returns files moved."""
    # ObjectStore.move is itself idempotent and says whether it had work to do.
    return sum(
        store.move(row.file_location, row.target_location)  # type: ignore[attr-defined]
        for row in rows
    )


@task(name="validate-files", cache_policy=NO_CACHE, **retry_options())
def validate_incoming_files(
    settings: Settings, run_id: str, flow_run_id: str | None, keys: list[str]
) -> dict[str, object]:
    """Validate every waiting file and open the run in the journal (one transaction)."""
    engine = make_engine(settings.database_url)
    try:
        plans = plan_files(open_store(settings.landing), keys, settings, engine)
        batch_id = start_run(engine, run_id, [p.staged() for p in plans], flow_run_id)
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
    return {"batch_id": batch_id, "plans": [p.as_dict() for p in plans]}


@task(name="route-rejected-files", cache_policy=NO_CACHE, **retry_options())
def route_rejected_files(settings: Settings, run_id: str) -> int:
    """Move rejected files to ``error_files/<category>/<batch>/``."""
    engine = make_engine(settings.database_url)
    try:
        moved = move_staged(open_store(settings.landing), staged_files(engine, run_id, REJECTED))
    finally:
        engine.dispose()
    crash_point("after_reject_moves")
    return moved


@task(name="hold-files", cache_policy=NO_CACHE, **retry_options())
def hold_files(
    settings: Settings, run_id: str, batch_id: str, holds: dict[str, dict[str, Any]]
) -> int:
    """Take accepted files out of the batch after the Spark stage, whole; returns files moved.

    ``holds``: file key -> ``category`` and ``reason`` (plus ``rows_total`` when known), e.g.
    the :func:`sales_etl.tasks.marts.bad_row_hold` records. The caller must already have kept
    the files' rows out of the marts. Their staging rows become REJECTED with the target
    ``error_files/<category>/<batch>/`` (committed first), then the files move there, exactly
    like a validator's rejection: a crash before the move leaves the run STARTED, and recovery
    (:func:`sales_etl.tasks.recovery.abandon_run`) marks an unmoved file FAILED so the next run
    judges it again, or finishes a move that had begun. A held file was never loaded, so a
    resend of the same bytes is judged again, not refused as a duplicate.
    """
    targets = {
        key: {**hold, "target": error_key(hold["category"], batch_id, key)}
        for key, hold in holds.items()
    }
    engine = make_engine(settings.database_url)
    try:
        hold_staged_files(engine, run_id, targets)
        crash_point("after_files_held")
        rows = [r for r in staged_files(engine, run_id, REJECTED) if r.file_location in holds]
        moved = move_staged(open_store(settings.landing), rows)
    finally:
        engine.dispose()
    logger = get_run_logger()
    for key, hold in holds.items():
        logger.warning("held %s -> %s: %s", key, targets[key]["target"], hold["reason"])
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


@task(name="archive-accepted-files", cache_policy=NO_CACHE, **retry_options())
def archive_accepted_files(settings: Settings, run_id: str) -> int:
    """Move loaded files to ``processed/<batch>/`` (only after the load committed)."""
    engine = make_engine(settings.database_url)
    store = open_store(settings.landing)
    moved = 0
    try:
        for row in staged_files(engine, run_id, ACTIVE):
            moved += move_staged(store, [row])
            if moved == 1:
                crash_point("during_archive")
    finally:
        engine.dispose()
    get_run_logger().info("archived %d file(s) under processed/", moved)
    return moved
