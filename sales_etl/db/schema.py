"""Every table the product reads or owns (SQLAlchemy Core).

Dimension tables keep the upstream tutorial's column names and its kinds of column (its
``table_scripts.sql``: ``product.created_date`` / ``updated_date`` are timestamps, the rest of
the dates are DATEs, ``is_manager`` is CHAR(1), ``reviews`` TEXT). A user's dimension tables made
by that DDL (INT AUTO_INCREMENT ids, VARCHAR(50) names, DECIMAL(10, 2), TIMESTAMP) are used as
they are: :func:`check_dimension_columns` only asks for the columns the product reads. Owned tables: ``staging_files``
(one row per input file per run), ``etl_runs`` (one row per run, the recovery journal),
``etl_lock`` (one row, so two runs never interleave) and the two reporting tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
)
from sqlalchemy.engine import Engine

from sales_etl.db.types import MYSQL_TABLE_OPTIONS, LongText, Money, UtcDateTime
from sales_etl.errors import ConfigError
from sales_etl.secrets import redact_url

metadata = MetaData()

# --- dimensions -------------------------------------------------------------------------------

customer = Table(
    "customer",
    metadata,
    Column("customer_id", BigInteger, primary_key=True, autoincrement=False),
    Column("first_name", String(100)),
    Column("last_name", String(100)),
    Column("address", String(255)),
    Column("pincode", String(20)),
    Column("phone_number", String(32)),
    Column("customer_joining_date", Date),
    **MYSQL_TABLE_OPTIONS,
)

store = Table(
    "store",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("address", String(255)),
    Column("store_pincode", String(20)),
    Column("store_manager_name", String(100)),
    Column("store_opening_date", Date),
    Column("reviews", Text),
    **MYSQL_TABLE_OPTIONS,
)

sales_team = Table(
    "sales_team",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("first_name", String(100)),
    Column("last_name", String(100)),
    Column("manager_id", BigInteger),
    Column("is_manager", String(1)),  # 'Y' / 'N', the tutorial's CHAR(1)
    Column("address", String(255)),
    Column("pincode", String(20)),
    Column("joining_date", Date),
    **MYSQL_TABLE_OPTIONS,
)

product = Table(
    "product",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", String(255)),
    Column("current_price", Money(12, 2)),
    Column("old_price", Money(12, 2)),
    Column("created_date", UtcDateTime),  # the tutorial's TIMESTAMP; UTC
    Column("updated_date", UtcDateTime),  # the tutorial's TIMESTAMP; UTC
    Column("expiry_date", Date),
    **MYSQL_TABLE_OPTIONS,
)

DIMENSION_TABLES = {
    "customer": customer,
    "store": store,
    "sales_team": sales_team,
    "product": product,
}

#: The dimension columns a run reads (tasks/dimensions.py selects exactly these); a user's table
#: must have them, and may have more.
DIMENSION_COLUMNS_READ: dict[str, tuple[str, ...]] = {
    "customer": tuple(c.name for c in customer.columns if c.name != "customer_joining_date"),
    "store": ("id", "address", "store_manager_name"),
    "sales_team": tuple(c.name for c in sales_team.columns if c.name != "joining_date"),
}


def check_dimension_columns(
    engine: Engine, required: Mapping[str, Sequence[str]] = DIMENSION_COLUMNS_READ
) -> None:
    """Check that every dimension table in ``required`` exists and has those columns.

    ``required`` maps table -> column names (default: what a run reads; ``load-dimensions``
    passes every column its files fill). Extra columns in the user's tables are fine.
    Raises :class:`~sales_etl.errors.ConfigError` naming the first missing table or column,
    the database (``SALES_ETL_DATABASE_URL`` / ``--database-url``, password masked) and a fix.
    """
    inspector = inspect(engine)
    where = (
        f"in the database SALES_ETL_DATABASE_URL / --database-url = "
        f"{redact_url(engine.url.render_as_string(hide_password=False))}"
    )
    present = set(inspector.get_table_names())
    for table_name, columns in required.items():
        if table_name not in present:
            raise ConfigError(
                f"dimension table {table_name!r} does not exist {where}",
                hint="run `sales-etl init-db`, then `sales-etl load-dimensions DIR`",
            )
        have = {c["name"] for c in inspector.get_columns(table_name)}
        for column in columns:
            if column not in have:
                ddl = metadata.tables[table_name].c[column].type.compile(dialect=engine.dialect)
                raise ConfigError(
                    f"dimension table {table_name!r} has no column {column!r} {where}",
                    hint=f"add it: ALTER TABLE {table_name} ADD COLUMN {column} {ddl}",
                )


# --- owned tables -----------------------------------------------------------------------------

# Status values of staging_files.status (transitions: sales_etl/journal.py, docs/architecture.md)
CLAIMED = "CLAIMED"  # copied into the run's claim folder, not judged yet
ACTIVE = "ACTIVE"  # accepted, being loaded by its run
COMPLETED = "COMPLETED"  # loaded and archived under processed/
REJECTED = "REJECTED"  # moved to error_files/<category>/
FAILED = "FAILED"  # its run failed before the load committed; the file stays in to_process/

staging_files = Table(
    "staging_files",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("batch_id", String(32), nullable=False),
    Column("file_name", String(512), nullable=False),
    Column("file_location", String(1024), nullable=False),
    Column("target_location", String(1024)),
    Column("checksum", String(64), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("category", String(64)),
    Column("reason", LongText),
    Column("rows_total", BigInteger),
    Column("rows_loaded", BigInteger),
    Column("rows_quarantined", BigInteger),
    Column("created_at", UtcDateTime, nullable=False),  # UTC
    Column("updated_at", UtcDateTime, nullable=False),  # UTC
    # The run's own copy of the file (landing _incoming/<batch>/claimed/NNNNNN.csv) and the
    # version of the original it copied (S3 ETag, local inode:size:mtime_ns). Added after the
    # first release: nullable, and init_db adds them to an older table (JOURNAL_UPGRADE_COLUMNS).
    Column("claim_location", String(1024)),
    Column("source_version", String(255)),
    Index("ix_staging_files_checksum_status", "checksum", "status"),
    Index("ix_staging_files_run_id", "run_id"),
    **MYSQL_TABLE_OPTIONS,
)

#: Nullable journal columns :func:`sales_etl.db.engine.init_db` adds to an existing table.
JOURNAL_UPGRADE_COLUMNS = {
    "staging_files": ("claim_location", "source_version"),
    "etl_runs": ("kind",),
}

# Status values of etl_runs.status
RUN_STARTED = "STARTED"  # marts may be half written; recovery rolls this run back
RUN_LOADED = "LOADED"  # reporting tables committed; recovery only finishes archiving
RUN_COMPLETED = "COMPLETED"
RUN_FAILED = "FAILED"  # rolled back; its files were left in to_process/

# Kinds of run (etl_runs.kind; null in rows written before replays existed = nightly)
KIND_NIGHTLY = "nightly"
KIND_REPLAY = "replay"  # sales-etl replay: loads quarantined rows, claims no file

etl_runs = Table(
    "etl_runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("batch_id", String(32), nullable=False, unique=True),
    Column("flow_run_id", String(64)),  # the Prefect flow run (several attempts share one)
    Column("status", String(16), nullable=False),
    Column("months", LongText),  # JSON list of "YYYY-MM" the run recomputed
    Column("summary", LongText),  # JSON summary for the CLI and artifacts (every file listed)
    Column("error", LongText),
    Column("started_at", UtcDateTime, nullable=False),  # UTC
    Column("finished_at", UtcDateTime),  # UTC
    # KIND_NIGHTLY / KIND_REPLAY; added after the first release (JOURNAL_UPGRADE_COLUMNS).
    Column("kind", String(16)),
    **MYSQL_TABLE_OPTIONS,
)

# Status values of quarantine_ledger.status
REPLAYED = "REPLAYED"  # loaded into the marts by the replay batch replay_batch_id
QUARANTINED = "QUARANTINED"  # judged again by a replay, still fails (reason brought up to date)

#: What replays decided about quarantined rows (the quarantine Parquet is never rewritten).
#: Written only by sales_etl.journal.record_replay, inside a replay's commit transaction;
#: docs/architecture.md "Replaying quarantined rows" defines row_id and the invariants.
quarantine_ledger = Table(
    "quarantine_ledger",
    metadata,
    Column("row_id", String(80), primary_key=True),  # sha256 hex + "#<occurrence>"
    Column("origin_batch_id", String(32), nullable=False),
    Column("source_file", String(1024)),
    Column("status", String(16), nullable=False),
    Column("reason", LongText),  # current reason while QUARANTINED, null once REPLAYED
    Column("replay_batch_id", String(32), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),  # UTC
    Index("ix_quarantine_ledger_replay_batch", "replay_batch_id"),
    **MYSQL_TABLE_OPTIONS,
)

etl_lock = Table(
    "etl_lock",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("run_id", String(64)),
    Column("holder", String(255)),  # hostname:pid of the holder
    Column("expires_at", UtcDateTime),  # UTC
    **MYSQL_TABLE_OPTIONS,
)

customer_monthly_purchase = Table(
    "customer_monthly_purchase",
    metadata,
    Column("customer_id", BigInteger, nullable=False),
    Column("first_name", String(100)),
    Column("last_name", String(100)),
    Column("year", Integer, nullable=False),
    Column("month", Integer, nullable=False),
    Column("monthly_total", Money(18, 2), nullable=False),
    UniqueConstraint("customer_id", "year", "month", name="uq_cmp_customer_month"),
    Index("ix_cmp_year_month", "year", "month"),
    **MYSQL_TABLE_OPTIONS,
)

sales_team_incentive = Table(
    "sales_team_incentive",
    metadata,
    Column("sales_person_id", BigInteger, nullable=False),
    Column("first_name", String(100)),
    Column("last_name", String(100)),
    Column("year", Integer, nullable=False),
    Column("month", Integer, nullable=False),
    Column("total_sales", Money(18, 2), nullable=False),
    Column("incentive", Money(18, 2), nullable=False),
    UniqueConstraint("sales_person_id", "year", "month", name="uq_sti_person_month"),
    Index("ix_sti_year_month", "year", "month"),
    **MYSQL_TABLE_OPTIONS,
)
