"""The run journal: every state and transition of runs and files, in one module.

This module is the only writer of ``etl_lock``, ``etl_runs`` and ``staging_files``, and it makes
every move of a landed file (claim, route, hold, archive, and removing the original). The Prefect
tasks in ``tasks/`` are thin wrappers around it; the flow reaches it only through them. All SQL
goes through SQLAlchemy Core with bound parameters. The state diagram is in
docs/architecture.md ("The run journal").

Runs (``etl_runs.status``): :func:`open_run` -> STARTED; :func:`mark_loaded` (inside the
reporting transaction) or :func:`commit_empty_run` -> LOADED; :func:`complete_run` ->
COMPLETED. A STARTED run that fails is rolled back by :func:`roll_back_run` -> FAILED, by the
flow at once or by the next run's :func:`recover`, which also finishes a LOADED run.

Files (``staging_files.status``): :func:`claim_files` copies exactly the listed version of each
file in ``to_process/`` to the run's own key ``_incoming/<batch>/claimed/NNNNNN.csv`` (CLAIMED);
validation, Spark and the final move all use that copy, so the bytes checksummed, loaded and
archived are the same. :func:`record_verdicts` -> ACTIVE or REJECTED; :func:`hold_files`
ACTIVE -> REJECTED after Spark; :func:`complete_run` ACTIVE -> COMPLETED; a rolled back run's
CLAIMED / ACTIVE rows -> FAILED. Once the claim reached its final place (``processed/<batch>/``
after the commit, ``error_files/<category>/<batch>/`` after routing or a hold) the original is
deleted only if it is still the version claimed (``ObjectStore.delete_if_unchanged``): a
version that arrived during the run stays in ``to_process/`` for the next run.

Replays (``etl_runs.kind`` = ``replay``, ``sales-etl replay``) are runs too: same lock, same
STARTED -> LOADED -> COMPLETED states, same rollback and recovery; they claim no file, and
their commit transaction also writes ``quarantine_ledger`` (:func:`record_replay`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from sales_etl.clock import batch_id_for, utc_now
from sales_etl.db.schema import (
    ACTIVE,
    CLAIMED,
    COMPLETED,
    FAILED,
    KIND_NIGHTLY,
    QUARANTINED,
    REJECTED,
    REPLAYED,
    RUN_COMPLETED,
    RUN_FAILED,
    RUN_LOADED,
    RUN_STARTED,
    etl_lock,
    etl_runs,
    quarantine_ledger,
    staging_files,
)
from sales_etl.errors import UserError
from sales_etl.faults import crash_point
from sales_etl.file_fate import FileFate, FileHold, RowCounts
from sales_etl.layout import TO_PROCESS, error_key, incoming_prefix, processed_key
from sales_etl.mart_batches import drop_scratch, rollback_batch
from sales_etl.storage import ObjectInfo, ObjectStore, StorageError, safe_key

LOCK_NAME = "pipeline"

logger = logging.getLogger(__name__)


# --- the pipeline lock -------------------------------------------------------------------------


class RunLockedError(UserError):
    """Another run holds the pipeline lock (exit 2, never retried: waiting is the fix)."""

    @classmethod
    def held_by(cls, row: Any) -> RunLockedError:
        """The error for the lock row ``row`` (``run_id``, ``holder``, ``expires_at`` UTC)."""
        expires = f"{row.expires_at:%Y-%m-%d %H:%M:%S}" if row.expires_at else "?"
        return cls(
            f"another run ({row.run_id} on {row.holder}) is in progress: it holds the pipeline lock",
            hint="wait for it to finish, then run again (a lock left by a process that died on "
            "this host is freed at once; one held from another host when its lease ends, "
            f"{expires} UTC, SALES_ETL_LOCK_TTL_SECONDS)",
        )


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _holder_is_dead(holder: str | None) -> bool:
    """True when the holder is a process on this host that no longer exists."""
    if not holder or ":" not in holder:
        return True
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # cannot tell for another machine: wait for the lease to expire
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False


def _lock_is_free(row: Any, run_id: str | None, now: datetime) -> bool:
    """The rule of :func:`acquire_lock`: nobody holds ``row``'s lock, ``run_id`` does, its lease
    expired, or its holder was a process on this host that has died."""
    return (
        row.run_id is None
        or row.run_id == run_id
        or (row.expires_at is not None and row.expires_at < now)
        or _holder_is_dead(row.holder)
    )


def _lock_row(conn: Connection) -> Any:
    """The pipeline lock's row, or None before the first run took it."""
    return conn.execute(select(etl_lock).where(etl_lock.c.name == LOCK_NAME)).first()


def refuse_when_locked(engine: Engine) -> None:
    """Raise :class:`RunLockedError` when a run starting now could not take the lock (read only)."""
    with engine.connect() as conn:
        row = _lock_row(conn)
    if row is not None and not _lock_is_free(row, None, utc_now()):
        raise RunLockedError.held_by(row)


def lock_is_free(engine: Engine) -> bool:
    """True when a run starting now could take the pipeline lock (read only: nothing is taken).

    The idle check of ``sales-etl run`` (:mod:`sales_etl.idle`) uses it; a run still takes the
    lock with :func:`acquire_lock`.
    """
    try:
        refuse_when_locked(engine)
    except RunLockedError:
        return False
    return True


def acquire_lock(engine: Engine, run_id: str, ttl_seconds: int) -> None:
    """Take the single pipeline lock, or raise :class:`RunLockedError`.

    A lock is free when nobody holds it, its lease expired, or its holder was a process on
    this host that has died (a SIGKILLed run must not block the rerun for hours).
    """
    now = utc_now()
    with engine.begin() as conn:
        row = _lock_row(conn)
        if row is None:
            conn.execute(
                insert(etl_lock).values(
                    name=LOCK_NAME,
                    run_id=run_id,
                    holder=_holder(),
                    expires_at=now + timedelta(seconds=ttl_seconds),
                )
            )
            return
        if not _lock_is_free(row, run_id, now):
            raise RunLockedError.held_by(row)
        # Compare-and-swap on the run id we saw, so two starters cannot both win.
        taken = conn.execute(
            update(etl_lock)
            .where(etl_lock.c.name == LOCK_NAME)
            .where(
                etl_lock.c.run_id.is_(None)
                if row.run_id is None
                else etl_lock.c.run_id == row.run_id
            )
            .values(
                run_id=run_id, holder=_holder(), expires_at=now + timedelta(seconds=ttl_seconds)
            )
        ).rowcount
        if taken != 1:
            raise RunLockedError("another run took the pipeline lock at the same moment")


def release_lock(engine: Engine, run_id: str) -> None:
    """Release the lock if ``run_id`` holds it."""
    with engine.begin() as conn:
        conn.execute(
            update(etl_lock)
            .where(etl_lock.c.name == LOCK_NAME, etl_lock.c.run_id == run_id)
            .values(run_id=None, holder=None, expires_at=None)
        )


# --- opening a run and claiming its files ------------------------------------------------------


def new_batch_id(conn: Connection) -> str:
    """A ``YYYYMMDD_HHMMSS`` (UTC) batch id no earlier run used: a folder is never reused."""
    moment = utc_now()
    while True:
        candidate = batch_id_for(moment)
        used = conn.execute(
            select(etl_runs.c.run_id).where(etl_runs.c.batch_id == candidate)
        ).first()
        if used is None:
            return candidate
        moment += timedelta(seconds=1)


def open_run(
    engine: Engine, run_id: str, flow_run_id: str | None = None, kind: str = KIND_NIGHTLY
) -> str:
    """Open the run (STARTED) and assign its batch id; returns the batch id.

    ``kind``: ``KIND_NIGHTLY`` or ``KIND_REPLAY`` (sales_etl.db.schema). Safe to repeat (a
    retried task): a run already opened keeps its batch id.
    """
    with engine.begin() as conn:
        batch_id = conn.execute(
            select(etl_runs.c.batch_id).where(etl_runs.c.run_id == run_id)
        ).scalar()
        if batch_id is not None:
            return str(batch_id)
        batch_id = new_batch_id(conn)
        conn.execute(
            insert(etl_runs).values(
                run_id=run_id,
                batch_id=batch_id,
                flow_run_id=flow_run_id,
                kind=kind,
                status=RUN_STARTED,
                started_at=utc_now(),
            )
        )
    return batch_id


def claim_key(batch_id: str, number: int) -> str:
    """The run-owned key of a batch's ``number``-th claimed file (landing store).

    Always a plain ``NNNNNN.csv`` name: Hadoop reads it literally (no scheme-like ``a:b``, no
    ``%``, ``#`` or glob characters to escape) and never picks a decompression codec from an
    extension such as ``.gz``: Spark reads exactly the bytes that were checksummed.
    """
    return incoming_prefix(batch_id, f"claimed/{number:06d}.csv")


def incoming_files(store: ObjectStore) -> list[ObjectInfo]:
    """The files waiting in ``to_process/`` (all pages): what a run lists and claims.

    Skips keys that could escape the root (logged) and hidden names (a leading dot: editor swap
    files, uploads in progress written as ``.name.csv`` and renamed when complete).
    """
    found = []
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


def stray_files_warning(store: ObjectStore, shown: int = 3) -> str | None:
    """One line when files sit at the top of the landing zone, outside ``to_process/`` (a
    newcomer's drop in the wrong place: a run never reads them), else None. Hidden names are
    not counted. For a run that found ``to_process/`` empty; one listing of the root's level.
    """
    stray = [o.key for o in store.list_top_level() if not o.key.startswith(".")]
    if not stray:
        return None
    names = ", ".join(stray[:shown]) + (", ..." if len(stray) > shown else "")
    return (
        f"{len(stray)} file(s) at the top of the landing zone {store.url} ({names}) are not "
        f"read: a run takes only the files in {TO_PROCESS}/; move them there"
    )


#: Why a listed file is still in ``to_process/`` after its run (:func:`left_waiting`).
NOT_CLAIMED = "changed or vanished while it was being claimed: the next run takes it"
NEW_VERSION = (
    "a new version arrived during the run: it waits for the next run "
    "(this run used the version it claimed)"
)


@dataclass(frozen=True)
class WaitingFile:
    """A listed file still in ``to_process/`` after its run (``file``: its key), and why
    (:data:`NOT_CLAIMED` or :data:`NEW_VERSION`)."""

    file: str
    reason: str


def left_waiting(
    landing: ObjectStore, listed: Sequence[str], claimed: Sequence[str]
) -> list[WaitingFile]:
    """The listed files still in ``to_process/`` once the run settled its claims, and why.

    ``listed``: keys the run listed; ``claimed``: those it claimed. A claimed file whose key
    still exists has a new version (the claimed one was settled and removed only if
    unchanged); a listed file not claimed changed while it was being claimed. Returns them in
    listing order.
    """
    waiting = {obj.key for obj in incoming_files(landing)}
    taken = set(claimed)
    return [
        WaitingFile(key, NEW_VERSION if key in taken else NOT_CLAIMED)
        for key in listed
        if key in waiting
    ]


def claim_files(
    engine: Engine, landing: ObjectStore, run_id: str, batch_id: str, listed: Sequence[ObjectInfo]
) -> list[str]:
    """Claim each listed file for the run: copy exactly the listed version, record it CLAIMED.

    A file that changed or vanished since it was listed is not claimed (logged): it stays in
    ``to_process/`` for the next run. Safe to repeat: a key the run already claimed is skipped.
    The copy comes before its row, so a crash in between leaves only an unrecorded copy under
    ``_incoming/<batch>/``, which :func:`roll_back_run` deletes with the folder. Returns the
    original keys claimed (listing order).

    Raises:
        sales_etl.storage.StorageError: the store failed (not a changed file).
    """
    with engine.connect() as conn:
        done = {
            r.file_location: r.claim_location
            for r in conn.execute(
                select(staging_files.c.file_location, staging_files.c.claim_location).where(
                    staging_files.c.run_id == run_id
                )
            )
        }
    claimed = [obj.key for obj in listed if obj.key in done]
    number = len(done)
    for obj in listed:
        if obj.key in done:
            continue
        if obj.version is None:
            raise ValueError(f"{obj.key!r} was listed without a version: cannot claim it")
        number += 1
        target = claim_key(batch_id, number)
        if not landing.claim(obj.key, target, obj.version):
            logger.warning(
                "%s changed or vanished since it was listed: not claimed, left for the next run",
                obj.key,
            )
            continue
        now = utc_now()
        with engine.begin() as conn:
            conn.execute(
                insert(staging_files).values(
                    run_id=run_id,
                    batch_id=batch_id,
                    file_name=obj.key.rsplit("/", 1)[-1],
                    file_location=obj.key,
                    claim_location=target,
                    source_version=obj.version,
                    checksum="",  # known once the claim is validated (record_verdicts)
                    size_bytes=obj.size,
                    status=CLAIMED,
                    created_at=now,
                    updated_at=now,
                )
            )
        claimed.append(obj.key)
        if len(claimed) == 1:
            crash_point("during_claim")
    crash_point("after_claim")
    return claimed


# --- verdicts, counts, holds -------------------------------------------------------------------


def record_verdicts(engine: Engine, run_id: str, batch_id: str, fates: Sequence[FileFate]) -> None:
    """CLAIMED -> ACTIVE (target ``processed/<batch>/``) or REJECTED (target
    ``error_files/<category>/<batch>/``), with checksum and size, in one transaction.

    ``fates``: validation's decision on each claimed file (``tasks.files.plan_files``).
    """
    now = utc_now()
    with engine.begin() as conn:
        for fate in fates:
            category = None if fate.accepted else fate.category
            conn.execute(
                update(staging_files)
                .where(
                    staging_files.c.run_id == run_id,
                    staging_files.c.file_location == fate.key,
                    staging_files.c.status == CLAIMED,
                )
                .values(
                    status=REJECTED if category else ACTIVE,
                    target_location=error_key(category, batch_id, fate.key)
                    if category
                    else processed_key(batch_id, fate.key),
                    checksum=fate.checksum,
                    size_bytes=fate.size,
                    category=category,
                    reason=None if fate.accepted else fate.reason,
                    updated_at=now,
                )
            )


def completed_checksums(engine: Engine, checksums: Iterable[str]) -> set[str]:
    """The subset of ``checksums`` already loaded by a completed run."""
    wanted = sorted(set(checksums))
    found: set[str] = set()
    with engine.connect() as conn:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = conn.execute(
                select(staging_files.c.checksum).where(
                    staging_files.c.status == COMPLETED, staging_files.c.checksum.in_(chunk)
                )
            )
            found.update(r.checksum for r in rows)
    return found


def staged_files(engine: Engine, run_id: str, status: str | None = None) -> list[Any]:
    """The staging rows of one run (optionally of one status), ordered by id."""
    query = select(staging_files).where(staging_files.c.run_id == run_id)
    if status is not None:
        query = query.where(staging_files.c.status == status)
    with engine.connect() as conn:
        return list(conn.execute(query.order_by(staging_files.c.id)))


def claimed_copies(engine: Engine, batch_id: str) -> dict[str, str]:
    """Original key -> claim key of the batch's ACTIVE files (what Spark must read)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(staging_files.c.file_location, staging_files.c.claim_location).where(
                staging_files.c.batch_id == batch_id, staging_files.c.status == ACTIVE
            )
        )
        return {r.file_location: r.claim_location or r.file_location for r in rows}


def _update_active_rows(
    engine: Engine, run_id: str, values_by_key: Mapping[str, Mapping[str, Any]]
) -> None:
    """Set ``values`` on the run's ACTIVE staging row of each file key, in one transaction."""
    now = utc_now()
    with engine.begin() as conn:
        for key, values in values_by_key.items():
            conn.execute(
                update(staging_files)
                .where(
                    staging_files.c.run_id == run_id,
                    staging_files.c.file_location == key,
                    staging_files.c.status == ACTIVE,
                )
                .values(**values, updated_at=now)
            )


def record_row_counts(engine: Engine, run_id: str, counts: Mapping[str, RowCounts]) -> None:
    """Store rows total / loaded / quarantined on each ACTIVE staging row of the run."""
    _update_active_rows(
        engine,
        run_id,
        {
            key: {
                "rows_total": c.total,
                "rows_loaded": c.loaded,
                "rows_quarantined": c.quarantined,
            }
            for key, c in counts.items()
        },
    )


def hold_files(
    engine: Engine,
    landing: ObjectStore,
    run_id: str,
    batch_id: str,
    holds: Mapping[str, FileHold],
) -> int:
    """Take files out of a run after its Spark stage, whole; returns files moved.

    ``holds``: file key -> ``category``, ``reason`` and, when known, ``rows_total`` (stored
    with 0 rows loaded and 0 quarantined: none of them were). The rows go ACTIVE -> REJECTED
    with the target ``error_files/<category>/<batch>/`` in one transaction (rows already moved
    on by a retried task are left alone), then each claim moves there and the original is
    removed if unchanged, exactly like a validator's rejection. A crash before the move leaves
    the run STARTED: :func:`roll_back_run` marks an unmoved file FAILED (the next run judges
    it again) or finishes a move that had begun. A held file was never loaded, so a resend of
    the same bytes is judged again, not refused as a duplicate.
    """
    values = {}
    for key, hold in holds.items():
        total = hold.rows_total
        values[key] = {
            "status": REJECTED,
            "category": hold.category,
            "reason": hold.reason,
            "target_location": error_key(hold.category, batch_id, key),
            "rows_total": total,
            "rows_loaded": None if total is None else 0,
            "rows_quarantined": None if total is None else 0,
        }
    _update_active_rows(engine, run_id, values)
    crash_point("after_files_held")
    rows = [r for r in staged_files(engine, run_id, REJECTED) if r.file_location in holds]
    return _settle_all(landing, rows)


# --- moves to the final place ------------------------------------------------------------------


def _settle(landing: ObjectStore, row: Any) -> bool:
    """Move a row's claim to its target, then remove the original if it is the claimed version.

    Idempotent (``ObjectStore.move`` and ``delete_if_unchanged`` are). Rows written before
    claims existed (no ``claim_location``) move the original itself. Returns True when this
    call moved the file.
    """
    moved = landing.move(row.claim_location or row.file_location, row.target_location)
    if (
        row.claim_location
        and row.source_version
        and not landing.delete_if_unchanged(row.file_location, row.source_version)
        and landing.exists(row.file_location)
    ):
        logger.warning(
            "%s was replaced during the run: the new version stays in to_process/ "
            "for the next run (this run used the version it claimed)",
            row.file_location,
        )
    return moved


def _settle_all(
    landing: ObjectStore, rows: Iterable[Any], on_first_move: Callable[[], None] | None = None
) -> int:
    """:func:`_settle` every row; returns the files moved.

    One at a time until a file actually moves (then ``on_first_move``, a crash point, runs with
    exactly one file moved), then ``landing.concurrent_moves`` at a time: each settle is
    idempotent and touches only its own row's keys, so order does not matter. The first error
    (in row order) cancels the moves not yet started, lets those under way finish, and is
    raised: with the store down, the task fails after one round of retries, not one per file;
    its retry settles what is left.
    """
    pending = iter(rows)
    moved = 0
    for row in pending:
        if _settle(landing, row):
            moved = 1
            if on_first_move is not None:
                on_first_move()
            break
    if landing.concurrent_moves <= 1:
        return moved + sum(_settle(landing, row) for row in pending)
    with ThreadPoolExecutor(landing.concurrent_moves, thread_name_prefix="settle") as pool:
        futures = [pool.submit(_settle, landing, row) for row in pending]
        try:
            return moved + sum(future.result() for future in futures)
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def route_rejected_files(engine: Engine, landing: ObjectStore, run_id: str) -> int:
    """Move the run's REJECTED files to ``error_files/<category>/<batch>/``; returns moved."""
    return _settle_all(landing, staged_files(engine, run_id, REJECTED))


def archive_files(engine: Engine, landing: ObjectStore, run_id: str) -> int:
    """Move the run's loaded (ACTIVE) files to ``processed/<batch>/``; only after the commit."""
    return _settle_all(
        landing,
        staged_files(engine, run_id, ACTIVE),
        on_first_move=lambda: crash_point("during_archive"),
    )


# --- commit, complete, roll back, recover ------------------------------------------------------


def mark_loaded(conn: Connection, run_id: str, months: Sequence[str]) -> None:
    """Inside the reporting transaction: STARTED -> LOADED, the run's data is now committed."""
    conn.execute(
        update(etl_runs)
        .where(etl_runs.c.run_id == run_id, etl_runs.c.status == RUN_STARTED)
        .values(status=RUN_LOADED, months=json.dumps(sorted(months)))
    )


class ReplayConflictError(RuntimeError):
    """A replay tried to record a quarantined row that a replay already loaded."""


@dataclass(frozen=True)
class LedgerEntry:
    """One replay decision about one quarantined row (a ``quarantine_ledger`` row).

    ``status``: ``REPLAYED`` (loaded; ``reason`` None) or ``QUARANTINED`` (still fails;
    ``reason`` the up-to-date reason codes, comma separated).
    """

    row_id: str
    origin_batch_id: str
    source_file: str | None
    status: str
    reason: str | None


def ledger_entries(engine: Engine) -> list[Any]:
    """Every ``quarantine_ledger`` row (row_id, origin_batch_id, source_file, status, reason,
    replay_batch_id, updated_at), ordered by row_id."""
    with engine.connect() as conn:
        return list(conn.execute(select(quarantine_ledger).order_by(quarantine_ledger.c.row_id)))


def record_replay(conn: Connection, batch_id: str, entries: Sequence[LedgerEntry]) -> None:
    """Inside a replay's commit transaction: record what it decided about each row.

    A new row_id is inserted; a ``QUARANTINED`` one is updated (status, reason, batch); a
    ``REPLAYED`` one is never changed again. Raises :class:`ReplayConflictError` (the
    transaction then rolls back: nothing of the replay is committed) when an entry names a
    row already ``REPLAYED`` -- the rule that counts a row at most once
    (docs/architecture.md "Replaying quarantined rows").
    """
    now = utc_now()
    by_id = {e.row_id: e for e in entries}
    ids = sorted(by_id)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        known = dict(
            conn.execute(
                select(quarantine_ledger.c.row_id, quarantine_ledger.c.status).where(
                    quarantine_ledger.c.row_id.in_(chunk)
                )
            ).all()
        )
        inserts = []
        for row_id in chunk:
            entry = by_id[row_id]
            values = {
                "status": entry.status,
                "reason": entry.reason,
                "replay_batch_id": batch_id,
                "updated_at": now,
            }
            if known.get(row_id) == REPLAYED:
                raise ReplayConflictError(
                    f"quarantined row {row_id} ({entry.source_file}, batch "
                    f"{entry.origin_batch_id}) was already loaded by a replay"
                )
            if row_id in known:
                conn.execute(
                    update(quarantine_ledger)
                    .where(
                        quarantine_ledger.c.row_id == row_id,
                        quarantine_ledger.c.status == QUARANTINED,
                    )
                    .values(**values)
                )
            else:
                inserts.append(
                    {
                        "row_id": row_id,
                        "origin_batch_id": entry.origin_batch_id,
                        "source_file": entry.source_file,
                        **values,
                    }
                )
        if inserts:
            conn.execute(insert(quarantine_ledger), inserts)


def last_replayable_count(engine: Engine) -> tuple[int, str] | None:
    """``(replayable_rows, replayable_watermark)`` of the last COMPLETED run, or None when that
    run counted nothing (a replay, a run without accepted files, one a later run recovered).

    The last completed run, not the last that counted: a replay in between changed the
    ledger, so an older count is no longer a base (tasks/replay.py ``count_replayable``).
    """
    with engine.connect() as conn:
        row = conn.execute(
            select(etl_runs.c.summary)
            .where(etl_runs.c.status == RUN_COMPLETED)
            .order_by(etl_runs.c.finished_at.desc(), etl_runs.c.batch_id.desc())
            .limit(1)
        ).first()
    if row is None or not row.summary:
        return None
    summary = json.loads(row.summary)
    count, watermark = summary.get("replayable_rows"), summary.get("replayable_watermark")
    if not isinstance(count, int) or not isinstance(watermark, str):
        return None
    return count, watermark


def commit_empty_run(engine: Engine, run_id: str) -> None:
    """A batch with no loadable rows has nothing to recompute, but still commits (LOADED)
    before anything is archived."""
    with engine.begin() as conn:
        mark_loaded(conn, run_id, [])


def _mark_completed(engine: Engine, run_id: str, summary: dict[str, Any]) -> None:
    now = utc_now()
    with engine.begin() as conn:
        conn.execute(
            update(staging_files)
            .where(staging_files.c.run_id == run_id, staging_files.c.status == ACTIVE)
            .values(status=COMPLETED, updated_at=now)
        )
        conn.execute(
            update(etl_runs)
            .where(etl_runs.c.run_id == run_id)
            .values(status=RUN_COMPLETED, finished_at=now, summary=json.dumps(summary, default=str))
        )


def complete_run(
    engine: Engine,
    landing: ObjectStore,
    marts: ObjectStore,
    run_id: str,
    batch_id: str,
    summary: dict[str, Any],
) -> None:
    """LOADED -> COMPLETED: scratch folders removed, then staging ACTIVE -> COMPLETED and the
    run COMPLETED in one transaction."""
    crash_point("before_staging_complete")
    # Scratch first: once the run is COMPLETED nothing looks at it again, so a crash between
    # the two steps must not leave a copy of the batch's rows (or a claim) behind.
    drop_scratch(marts, batch_id)
    drop_scratch(landing, batch_id)
    _mark_completed(engine, run_id, summary)


def roll_back_run(
    engine: Engine, landing: ObjectStore, marts: ObjectStore, run_id: str, batch_id: str, error: str
) -> int:
    """Undo an uncommitted (STARTED) run; returns mart files deleted.

    The batch's mart files and claims are deleted (the originals never left ``to_process/``);
    CLAIMED and ACTIVE rows -> FAILED; the run -> FAILED. A rejected file whose move had
    begun is finished; one not yet touched is marked FAILED too and judged again next run.
    """
    deleted = rollback_batch(marts, batch_id)
    now = utc_now()
    for row in staged_files(engine, run_id, REJECTED):
        source = row.claim_location or row.file_location
        if landing.exists(row.target_location) or not landing.exists(source):
            _settle(landing, row)
        else:
            with engine.begin() as conn:
                conn.execute(
                    update(staging_files)
                    .where(staging_files.c.id == row.id)
                    .values(
                        status=FAILED, reason=f"not moved, run failed: {row.reason}", updated_at=now
                    )
                )
    drop_scratch(landing, batch_id)  # the claims
    with engine.begin() as conn:
        conn.execute(
            update(staging_files)
            .where(staging_files.c.run_id == run_id, staging_files.c.status.in_([CLAIMED, ACTIVE]))
            .values(status=FAILED, reason=error[:2000], updated_at=now)
        )
        conn.execute(
            update(etl_runs)
            .where(etl_runs.c.run_id == run_id, etl_runs.c.status == RUN_STARTED)
            .values(status=RUN_FAILED, finished_at=now, error=error[:4000])
        )
    return deleted


def run_status(engine: Engine, run_id: str) -> str | None:
    """The journal status of one run, or None if it never started."""
    with engine.connect() as conn:
        return conn.execute(select(etl_runs.c.status).where(etl_runs.c.run_id == run_id)).scalar()


def interrupted_runs(engine: Engine) -> list[Any]:
    """Runs a crash left STARTED or LOADED, oldest first."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(etl_runs)
                .where(etl_runs.c.status.in_([RUN_STARTED, RUN_LOADED]))
                .order_by(etl_runs.c.started_at, etl_runs.c.batch_id)
            )
        )


@dataclass(frozen=True)
class RecoveredRun:
    """What :func:`recover` did to one run a crash interrupted.

    ``action``: ``"rolled back"`` (it had not committed; ``mart_files_deleted`` counts its
    mart files deleted) or ``"completed"`` (it had; ``files_moved`` counts the files moved to
    their final place). The count that does not apply is None.
    """

    run_id: str
    batch_id: str
    action: str
    mart_files_deleted: int | None = None
    files_moved: int | None = None

    def to_json(self) -> dict[str, Any]:
        """``run_id``, ``batch_id``, ``action`` and the count that applies."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def recover(engine: Engine, landing: ObjectStore, marts: ObjectStore) -> list[RecoveredRun]:
    """Finish or undo every run a crash interrupted; returns what was done, per run.

    Runs under the pipeline lock at the start of every run. A STARTED run never committed:
    :func:`roll_back_run`. A LOADED run did: its claims are moved to their final places, the
    unchanged originals removed, and it is completed.
    """
    actions = []
    for run in interrupted_runs(engine):
        if run.status == RUN_STARTED:
            deleted = roll_back_run(
                engine,
                landing,
                marts,
                run.run_id,
                run.batch_id,
                "run interrupted before its load committed: rolled back by the next run; "
                "its files stayed in to_process/",
            )
            actions.append(
                RecoveredRun(run.run_id, run.batch_id, "rolled back", mart_files_deleted=deleted)
            )
        else:  # LOADED: the data is committed, only the file moves may be unfinished
            moved = archive_files(engine, landing, run.run_id)
            moved += route_rejected_files(engine, landing, run.run_id)
            drop_scratch(marts, run.batch_id)  # before COMPLETED: see complete_run
            drop_scratch(landing, run.batch_id)
            _mark_completed(engine, run.run_id, {"recovered_by_next_run": True})
            actions.append(RecoveredRun(run.run_id, run.batch_id, "completed", files_moved=moved))
    return actions
