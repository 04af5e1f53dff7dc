"""Where things live in the landing zone and the marts root (DESIGN.md "Storage layout")."""

from __future__ import annotations

import posixpath

TO_PROCESS = "to_process"
PROCESSED = "processed"
ERROR_FILES = "error_files"

CUSTOMER_MART = "customer_data_mart"
SALES_TEAM_MART = "sales_team_data_mart"
QUARANTINE = "quarantine"
MARTS = (CUSTOMER_MART, SALES_TEAM_MART, QUARANTINE)
#: Per-batch partial aggregates of the two sale marts (issue 16, section 2;
#: sales_etl/partials.py): what the reporting recompute reads instead of the mart rows.
CUSTOMER_MONTH_PARTIALS = "partial_aggregates/customer_month"
SALES_PERSON_MONTH_PARTIALS = "partial_aggregates/sales_person_store_month"
#: Partial aggregate folder -> the mart it aggregates.
PARTIAL_SOURCES = {
    CUSTOMER_MONTH_PARTIALS: CUSTOMER_MART,
    SALES_PERSON_MONTH_PARTIALS: SALES_TEAM_MART,
}
#: Every folder a batch publishes into and is rolled back from (sales_etl.mart_batches).
BATCH_FOLDERS = (*MARTS, *PARTIAL_SOURCES)
#: A batch's scratch folder: in the marts root its Spark output before it is published, in the
#: landing root its claimed copies of the input files (sales_etl.journal.claim_files).
INCOMING = "_incoming"
CLASSIFIED = "classified"  # every row of the batch, parsed and judged (scratch)

# Partition columns of each mart, outermost first.
MART_PARTITIONS = {
    CUSTOMER_MART: ("sales_month",),
    SALES_TEAM_MART: ("sales_month", "store_id"),
    QUARANTINE: (),
    CUSTOMER_MONTH_PARTIALS: ("sales_month",),
    SALES_PERSON_MONTH_PARTIALS: ("sales_month",),
}


def relative_to_inbox(key: str) -> str:
    """``to_process/sub/a.csv`` -> ``sub/a.csv`` (sub-folders of the inbox are kept)."""
    prefix = TO_PROCESS + "/"
    if not key.startswith(prefix):
        raise ValueError(f"{key!r} is not under {prefix}")
    return key[len(prefix) :]


def processed_key(batch_id: str, key: str) -> str:
    """Archive location of an accepted file."""
    return posixpath.join(PROCESSED, batch_id, relative_to_inbox(key))


def error_key(category: str, batch_id: str, key: str) -> str:
    """Location of a rejected file under ``error_files/<category>/<batch>/``."""
    return posixpath.join(ERROR_FILES, category, batch_id, relative_to_inbox(key))


def incoming_prefix(batch_id: str, part: str | None = None) -> str:
    """Scratch folder of one batch (marts root: Spark output; landing root: claimed files)."""
    base = posixpath.join(INCOMING, batch_id)
    return posixpath.join(base, part) if part else base


def published_name(batch_id: str, file_name: str) -> str:
    """Mart file names start with the batch id, so one batch's files can be found exactly."""
    return f"{batch_id}-{file_name}"
