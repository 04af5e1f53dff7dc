"""The marts' batch files: publish a batch, roll one back, drop its scratch folder.

A batch's files are its rows in the marts and its partial aggregates
(:data:`~sales_etl.layout.BATCH_FOLDERS`): they are published, rolled back and dropped together.

Storage primitives only (no Prefect, no database): the run journal (:mod:`sales_etl.journal`)
calls them for commit, rollback and recovery, the ``publish-marts`` task for publishing.
Publishing is a rename of each Parquet file from the batch's scratch folder into the mart,
with the batch id as a file-name prefix. A batch that never reached the database commit can
therefore be removed from the marts exactly (:func:`rollback_batch`), and one that did is final.
"""

from __future__ import annotations

import posixpath

from sales_etl.faults import crash_point
from sales_etl.layout import BATCH_FOLDERS, INCOMING, incoming_prefix, published_name
from sales_etl.storage import ObjectStore


def publish_batch(store: ObjectStore, batch_id: str) -> int:
    """Rename the batch's Parquet files into the marts (safe to repeat); returns files moved."""
    moved = 0
    for mart in BATCH_FOLDERS:
        prefix = incoming_prefix(batch_id, mart) + "/"
        for obj in store.list(prefix):
            rel = obj.key[len(prefix) :]
            folder, name = posixpath.split(rel)
            if not name.endswith(".parquet") or name.startswith((".", "_")):
                continue  # Hadoop .crc side files and markers stay behind
            target = posixpath.join(mart, folder, published_name(batch_id, name))
            store.move(obj.key, target)
            moved += 1
            if moved == 1:
                crash_point("during_marts_publish")
    return moved


def rollback_batch(store: ObjectStore, batch_id: str) -> int:
    """Remove every trace of an uncommitted batch from the marts; returns files deleted."""
    deleted = 0
    marker = published_name(batch_id, "")
    for mart in BATCH_FOLDERS:
        for obj in store.list(mart + "/"):
            if posixpath.basename(obj.key).startswith(marker):
                store.delete(obj.key)
                deleted += 1
    store.delete_prefix(incoming_prefix(batch_id))
    return deleted


def drop_scratch(store: ObjectStore, batch_id: str) -> None:
    """Delete a finished batch's scratch folder."""
    store.delete_prefix(incoming_prefix(batch_id))
    if not store.list(INCOMING + "/"):
        store.delete_prefix(INCOMING)
