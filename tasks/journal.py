"""The run journal in the database: lock, runs, staging rows.

These functions are the only writers of ``etl_lock``, ``etl_runs`` and ``staging_files``.
All SQL goes through SQLAlchemy Core with bound parameters.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from sales_etl.clock import batch_id_for, utc_now
from sales_etl.db.schema import (
    ACTIVE,
    COMPLETED,
    FAILED,
    REJECTED,
    RUN_COMPLETED,
    RUN_FAILED,
    RUN_LOADED,
    RUN_STARTED,
    etl_lock,
    etl_runs,
    staging_files,
)

LOCK_NAME = "pipeline"


class RunLockedError(RuntimeError):
    """Another run holds the pipeline lock."""


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


def lock_is_free(engine: Engine) -> bool:
    """True when a run starting now could take the pipeline lock (read only: nothing is taken).

    The idle check of ``sales-etl run`` (:mod:`sales_etl.idle`) uses it; a run still takes the
    lock with :func:`acquire_lock`.
    """
    with engine.connect() as conn:
        row = conn.execute(select(etl_lock).where(etl_lock.c.name == LOCK_NAME)).first()
    return row is None or _lock_is_free(row, None, utc_now())


def acquire_lock(engine: Engine, run_id: str, ttl_seconds: int) -> None:
    """Take the single pipeline lock, or raise :class:`RunLockedError`.

    A lock is free when nobody holds it, its lease expired, or its holder was a process on
    this host that has died (a SIGKILLed run must not block the rerun for hours).
    """
    now = utc_now()
    with engine.begin() as conn:
        row = conn.execute(select(etl_lock).where(etl_lock.c.name == LOCK_NAME)).first()
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
            raise RunLockedError(
                f"another run ({row.run_id}, {row.holder}) holds the pipeline lock until "
                f"{row.expires_at:%Y-%m-%d %H:%M:%S} UTC"
            )
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


@dataclass(frozen=True)
class StagedFile:
    """What a run decided about one input file, before anything moves."""

    key: str
    name: str
    checksum: str
    size: int
    status: str  # ACTIVE or REJECTED
    target: str
    category: str | None = None
    reason: str | None = None


def start_run(
    engine: Engine, run_id: str, files: Sequence[StagedFile], flow_run_id: str | None = None
) -> str:
    """Open the run (STARTED) and record every file's fate in one transaction; returns batch id."""
    now = utc_now()
    with engine.begin() as conn:
        batch_id = new_batch_id(conn)
        conn.execute(
            insert(etl_runs).values(
                run_id=run_id,
                batch_id=batch_id,
                flow_run_id=flow_run_id,
                status=RUN_STARTED,
                started_at=now,
            )
        )
        if files:
            conn.execute(
                insert(staging_files),
                [
                    {
                        "run_id": run_id,
                        "batch_id": batch_id,
                        "file_name": f.name,
                        "file_location": f.key,
                        "target_location": f.target.replace("{batch}", batch_id),
                        "checksum": f.checksum,
                        "size_bytes": f.size,
                        "status": f.status,
                        "category": f.category,
                        "reason": f.reason,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for f in files
                ],
            )
    return batch_id


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


def record_row_counts(engine: Engine, run_id: str, counts: dict[str, dict[str, int]]) -> None:
    """Store rows total / loaded / quarantined on each ACTIVE staging row of the run."""
    _update_active_rows(
        engine,
        run_id,
        {
            key: {
                "rows_total": c["total"],
                "rows_loaded": c["loaded"],
                "rows_quarantined": c["quarantined"],
            }
            for key, c in counts.items()
        },
    )


def hold_staged_files(engine: Engine, run_id: str, holds: Mapping[str, Mapping[str, Any]]) -> None:
    """Take files out of a run after its Spark stage: ACTIVE -> REJECTED, in one transaction.

    ``holds``: file key -> ``category``, ``reason``, ``target`` (where the file goes) and, when
    known, ``rows_total`` (stored with 0 rows loaded and 0 quarantined: none of them were).
    Rows already moved on (a retried task) are left alone.
    """
    values = {}
    for key, hold in holds.items():
        total = hold.get("rows_total")
        values[key] = {
            "status": REJECTED,
            "category": hold["category"],
            "reason": hold["reason"],
            "target_location": hold["target"],
            "rows_total": total,
            "rows_loaded": None if total is None else 0,
            "rows_quarantined": None if total is None else 0,
        }
    _update_active_rows(engine, run_id, values)


def mark_loaded(conn: Connection, run_id: str, months: Sequence[str]) -> None:
    """Inside the reporting transaction: the run's data is now committed."""
    conn.execute(
        update(etl_runs)
        .where(etl_runs.c.run_id == run_id, etl_runs.c.status == RUN_STARTED)
        .values(status=RUN_LOADED, months=json.dumps(sorted(months)))
    )


def complete_run(engine: Engine, run_id: str, summary: dict[str, Any]) -> None:
    """Staging rows ACTIVE -> COMPLETED and the run -> COMPLETED, in one transaction."""
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


def fail_run(engine: Engine, run_id: str, error: str) -> None:
    """A run that never committed its load: ACTIVE files -> FAILED (they stay in to_process/)."""
    now = utc_now()
    with engine.begin() as conn:
        conn.execute(
            update(staging_files)
            .where(staging_files.c.run_id == run_id, staging_files.c.status == ACTIVE)
            .values(status=FAILED, reason=error[:2000], updated_at=now)
        )
        conn.execute(
            update(etl_runs)
            .where(etl_runs.c.run_id == run_id, etl_runs.c.status == RUN_STARTED)
            .values(status=RUN_FAILED, finished_at=now, error=error[:4000])
        )


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


def rejected_rows(engine: Engine, run_id: str) -> list[Any]:
    """REJECTED staging rows of a run (their moves may still be pending after a crash)."""
    return staged_files(engine, run_id, REJECTED)


__all__ = [
    "RunLockedError",
    "StagedFile",
    "acquire_lock",
    "complete_run",
    "completed_checksums",
    "fail_run",
    "hold_staged_files",
    "interrupted_runs",
    "lock_is_free",
    "mark_loaded",
    "new_batch_id",
    "record_row_counts",
    "rejected_rows",
    "release_lock",
    "run_status",
    "staged_files",
    "start_run",
]
