"""Tasks over the landed files: list, claim, validate, route rejects, hold, archive.

Every state change and every move is made by the run journal (:mod:`sales_etl.journal`);
these tasks open the stores and the database around it, validate, and log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from prefect import get_run_logger
from sqlalchemy import Engine

from sales_etl import journal
from sales_etl.db.engine import make_engine
from sales_etl.db.schema import CLAIMED, KIND_NIGHTLY
from sales_etl.faults import crash_point
from sales_etl.file_fate import MULTILINE, SPLIT_BY_LINE, FileFate, FileHold
from sales_etl.layout import TO_PROCESS
from sales_etl.settings import Settings
from sales_etl.storage import ObjectInfo, ObjectStore, open_store
from sales_etl.tasks.retry import io_task
from sales_etl.validators.manager import get_plugin_manager, validate_file
from sales_etl.validators.model import DUPLICATE, UNKNOWN, IncomingFile

if TYPE_CHECKING:
    from sales_etl.tasks.marts import BatchStats


@io_task("list-incoming-files")
def list_incoming_files(settings: Settings) -> list[ObjectInfo]:
    """The files waiting in ``to_process/`` (:func:`sales_etl.journal.incoming_files`)."""
    listed = journal.incoming_files(open_store(settings.landing))
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
    settings: Settings, run_id: str, batch_id: str, listed: list[ObjectInfo]
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
            listed,
        )
    finally:
        engine.dispose()
    get_run_logger().info("batch %s: claimed %d of %d file(s)", batch_id, len(claimed), len(listed))
    return claimed


def plan_files(
    store: ObjectStore, claims: Sequence[Any], settings: Settings, engine: Engine
) -> list[FileFate]:
    """Validate every claimed file through the plugin manager and spot duplicates.

    ``claims``: staging rows (``file_location`` = the original key validators see,
    ``claim_location`` = the run's copy whose bytes are read). Returns one fate per claim.
    """
    pm = get_plugin_manager(settings)
    fates: list[FileFate] = []
    for claim in claims:
        key = claim.file_location
        try:
            incoming = IncomingFile.scan(store, key, settings, read_from=claim.claim_location)
        except Exception as exc:  # unreadable object: keep it, say why
            fates.append(
                FileFate(
                    key=key,
                    accepted=False,
                    category=UNKNOWN,
                    reason=f"could not read the file: {type(exc).__name__}: {str(exc)[:300]}",
                    plugin=None,
                    header=[],
                )
            )
            continue
        verdict = validate_file(pm, incoming)
        fates.append(
            FileFate(
                **asdict(verdict),
                key=key,
                size=incoming.size,
                checksum=incoming.checksum,
                max_line_fields=incoming.max_line_fields,
                splittable=incoming.splittable,
            )
        )
    already = journal.completed_checksums(engine, [f.checksum for f in fates if f.accepted])
    return _mark_duplicates(fates, already)


def _mark_duplicates(fates: Sequence[FileFate], already_loaded: set[str]) -> list[FileFate]:
    """Byte-identical to a loaded file, or to an earlier file of this batch -> duplicates."""
    first_in_batch: dict[str, str] = {}
    marked = []
    for fate in fates:
        reason = None
        if not fate.accepted:
            pass
        elif fate.checksum in already_loaded:
            reason = "byte-identical to a file already loaded by an earlier run"
        elif fate.checksum in first_in_batch:
            reason = f"byte-identical to {first_in_batch[fate.checksum]!r} in this batch"
        else:
            first_in_batch[fate.checksum] = fate.key
        marked.append(fate if reason is None else fate.rejected(DUPLICATE, reason))
    return marked


@io_task("validate-files")
def validate_claimed_files(settings: Settings, run_id: str, batch_id: str) -> list[FileFate]:
    """Validate the run's claimed files and record each verdict (one transaction); returns
    their fates (:func:`plan_files`)."""
    engine = make_engine(settings.database_url)
    try:
        claims = journal.staged_files(engine, run_id, CLAIMED)
        fates = plan_files(open_store(settings.landing), claims, settings, engine)
        journal.record_verdicts(engine, run_id, batch_id, fates)
    finally:
        engine.dispose()
    logger = get_run_logger()
    for fate in fates:
        if not fate.accepted:
            logger.warning("rejected %s -> %s: %s", fate.key, fate.category, fate.reason)
    logger.info(
        "batch %s: %d accepted, %d rejected",
        batch_id,
        sum(f.accepted for f in fates),
        sum(not f.accepted for f in fates),
    )
    crash_point("after_validation")
    return fates


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
def hold_files(settings: Settings, run_id: str, batch_id: str, holds: dict[str, FileHold]) -> int:
    """Take accepted files out of the batch after the Spark stage, whole; returns files moved.

    ``holds``: file key -> why (e.g. :func:`sales_etl.tasks.marts.bad_row_hold`). The caller
    must already have kept
    the files' rows out of the marts. See :func:`sales_etl.journal.hold_files`.
    """
    engine = make_engine(settings.database_url)
    try:
        moved = journal.hold_files(engine, open_store(settings.landing), run_id, batch_id, holds)
    finally:
        engine.dispose()
    logger = get_run_logger()
    for key, hold in holds.items():
        logger.warning("held %s -> error_files/%s/: %s", key, hold.category, hold.reason)
    return moved


def apply_spark_outcome(fates: Sequence[FileFate], stats: BatchStats) -> list[FileFate]:
    """The run's fates after the Spark stage (:func:`sales_etl.tasks.marts.build_marts`).

    A held file (``stats.held``) becomes a rejection with the hold's category and reason, and,
    when the hold counted them, its rows (``rows_total``, ``rows_bad``, ``top_reasons``; 0
    loaded, 0 quarantined: none of them were). A file that stayed in the batch gets its row
    counts (``stats.per_file``) and how Spark read it (``stats.split_by_line``).
    """
    settled = []
    for fate in fates:
        hold = stats.held.get(fate.key)
        if hold is not None:
            fate = fate.rejected(hold.category, hold.reason)
            if hold.rows_total is not None:  # read, judged, then held: none loaded or quarantined
                fate = replace(
                    fate,
                    rows_total=hold.rows_total,
                    rows_loaded=0,
                    rows_quarantined=0,
                    rows_bad=hold.rows_bad,
                    top_reasons=hold.top_reasons,
                )
        elif fate.accepted:
            counts = stats.per_file.get(fate.key)
            fate = replace(
                fate,
                spark_read=SPLIT_BY_LINE if fate.key in stats.split_by_line else MULTILINE,
                rows_total=counts.total if counts else None,
                rows_loaded=counts.loaded if counts else None,
                rows_quarantined=counts.quarantined if counts else None,
            )
        settled.append(fate)
    return settled


@io_task("files-left-waiting")
def files_left_waiting(
    settings: Settings, listed: list[ObjectInfo], claimed: list[str]
) -> list[journal.WaitingFile]:
    """The listed files still in ``to_process/`` after the run settled its claims, and why
    (:func:`sales_etl.journal.left_waiting`)."""
    left = journal.left_waiting(open_store(settings.landing), [o.key for o in listed], claimed)
    for entry in left:
        get_run_logger().warning("left in to_process/: %s (%s)", entry.file, entry.reason)
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
