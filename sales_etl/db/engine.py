"""Engine creation and table set-up."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url

from sales_etl.db.schema import metadata

#: Run on every new MySQL/MariaDB connection.
MYSQL_SESSION_SETUP = (
    "SET SESSION sql_mode = 'STRICT_TRANS_TABLES,STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
    "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION', time_zone = '+00:00'"
)


def make_engine(database_url: str) -> Engine:
    """An engine for ``database_url``: SQLite gets its folder and WAL, MySQL strict UTC sessions."""
    url = make_url(database_url)
    kwargs: dict[str, object] = {"future": True, "pool_pre_ping": True}
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 60}
    elif url.get_backend_name() in ("mysql", "mariadb"):
        query = dict(url.query)
        query.setdefault("charset", "utf8mb4")
        url = url.set(query=query)
        kwargs["pool_recycle"] = 3600
        # Same behaviour on every server whatever its my.cnf says: refuse (never truncate or
        # coerce) bad values, and read/write DATETIMEs as UTC.
        kwargs["connect_args"] = {"init_command": MYSQL_SESSION_SETUP}
    engine = create_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # WAL lets readers (a user's sqlite3 shell) work while a run writes. FULL sync:
            # files are archived right after the LOADED commit, so that commit must survive a
            # power cut (NORMAL may lose the last transactions in WAL mode).
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()

    return engine


#: :func:`init_db` outcomes, one per table.
CREATED = "created"
LEFT_AS_IS = "exists, left as is"


def init_db(engine: Engine) -> dict[str, str]:
    """Create every table the product uses if missing; returns table name -> outcome.

    The outcome is :data:`CREATED` or :data:`LEFT_AS_IS` (names sorted). An existing table is
    never altered, so dimension tables a user made with the tutorial's own DDL (INT
    AUTO_INCREMENT ids, TIMESTAMP, CHAR(1), TEXT) keep their definition and rows.
    """
    existing = set(inspect(engine).get_table_names())
    metadata.create_all(engine, checkfirst=True)
    return {name: LEFT_AS_IS if name in existing else CREATED for name in sorted(metadata.tables)}
