"""Engine creation and table set-up.

The functions taking a ``database_url`` accept ``Settings.database_url`` as it is (a
:class:`~pydantic.SecretStr`) or a plain string; the clear text is unwrapped only here.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from sales_etl.db.schema import JOURNAL_UPGRADE_COLUMNS, metadata
from sales_etl.errors import ConfigError, one_line
from sales_etl.secrets import redact_url, reveal
from sales_etl.settings import setting_label

DATABASE_SETTING = setting_label("database_url")
DATABASE_URL_HINT = (
    "write it as mysql+pymysql://user:password@host:3306/database or sqlite:///path/to/file.db"
)

#: Run on every new MySQL/MariaDB connection.
MYSQL_SESSION_SETUP = (
    "SET SESSION sql_mode = 'STRICT_TRANS_TABLES,STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
    "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION', time_zone = '+00:00'"
)


def parse_database_url(database_url: str | SecretStr) -> URL:
    """``database_url`` as a SQLAlchemy URL.

    Raises:
        ConfigError: it is not a URL SQLAlchemy can read (names the setting, password masked).
    """
    try:
        return make_url(reveal(database_url))
    except ArgumentError as exc:
        raise ConfigError(
            f"{DATABASE_SETTING}: not a database URL: {redact_url(database_url)}",
            hint=DATABASE_URL_HINT,
        ) from exc


def sqlite_file(database_url: str | SecretStr) -> Path | None:
    """The absolute path of a SQLite database file, or None (another database, ``:memory:``).

    A relative ``sqlite:///data/x.db`` is relative to the current working directory.
    """
    url = parse_database_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).expanduser().resolve()


def database_location(database_url: str | SecretStr) -> str:
    """The database as shown to a user: a SQLite file as an absolute ``sqlite:////path``,
    anything else with its password masked."""
    try:
        path = sqlite_file(database_url)
    except ConfigError:
        return redact_url(database_url)
    return f"sqlite:///{path}" if path is not None else redact_url(database_url)


def make_engine(database_url: str | SecretStr) -> Engine:
    """An engine for ``database_url``: SQLite gets its folder and WAL, MySQL strict UTC sessions.

    Nothing is connected yet (connections are opened on first use).

    Raises:
        ConfigError: the URL cannot be read, names an unknown or uninstalled driver
            (``mysql+pymsql://``), or a SQLite file's folder cannot be created.
    """
    url = parse_database_url(database_url)
    kwargs: dict[str, object] = {"future": True, "pool_pre_ping": True}
    if url.get_backend_name() == "sqlite":
        path = sqlite_file(database_url)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"{DATABASE_SETTING}: cannot create the folder of the SQLite database "
                    f"{path}: {exc.strerror or type(exc).__name__}",
                    hint="point the URL at a folder you can write to",
                ) from exc
        kwargs["connect_args"] = {"timeout": 60}
    elif url.get_backend_name() in ("mysql", "mariadb"):
        query = dict(url.query)
        query.setdefault("charset", "utf8mb4")
        url = url.set(query=query)
        kwargs["pool_recycle"] = 3600
        # Same behaviour on every server whatever its my.cnf says: refuse (never truncate or
        # coerce) bad values, and read/write DATETIMEs as UTC.
        kwargs["connect_args"] = {"init_command": MYSQL_SESSION_SETUP}
    try:
        engine = create_engine(url, **kwargs)
    except NoSuchModuleError as exc:
        raise ConfigError(
            f"{DATABASE_SETTING}: unknown database driver {url.drivername!r} in "
            f"{redact_url(database_url)}",
            hint=DATABASE_URL_HINT,
        ) from exc
    except ImportError as exc:  # a known dialect whose DB-API module is not installed
        raise ConfigError(
            f"{DATABASE_SETTING}: the driver of {url.drivername!r} is not installed "
            f"(no module {exc.name!r}) for {redact_url(database_url)}",
            hint="use mysql+pymysql:// (PyMySQL is installed with sales-etl)",
        ) from exc
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

    The outcome is :data:`CREATED`, :data:`LEFT_AS_IS` or ``"upgraded: added <columns>"``
    (names sorted). An existing table is never altered, except that the nullable journal
    columns of :data:`~sales_etl.db.schema.JOURNAL_UPGRADE_COLUMNS` missing from a
    ``staging_files`` made by an earlier release are added (``ALTER TABLE ... ADD COLUMN``, no
    row rewritten). Dimension tables a user made with the tutorial's own DDL (INT
    AUTO_INCREMENT ids, TIMESTAMP, CHAR(1), TEXT) keep their definition and rows.

    Raises:
        ConfigError: a missing table could not be created, or a missing journal column not
            added (the user lacks CREATE / ALTER); the message names them and the fix.
    """
    existing = set(inspect(engine).get_table_names())
    try:
        metadata.create_all(engine, checkfirst=True)
    except DBAPIError as exc:  # typically: the flow's user may not CREATE (docs/s3-mysql.md)
        missing = sorted(set(metadata.tables) - existing)
        raise ConfigError(
            f"{DATABASE_SETTING}: the tables {', '.join(missing)} are missing (or not granted "
            f"to this user) and creating them failed ({type(exc.orig).__name__}: {one_line(str(exc.orig), 200)}) in "
            f"{redact_url(engine.url.render_as_string(hide_password=False))}",
            hint="run `sales-etl init-db` once as the set-up user (it needs CREATE), then "
            "grant the flow's user its tables (docs/s3-mysql.md)",
        ) from None
    outcomes = {
        name: LEFT_AS_IS if name in existing else CREATED for name in sorted(metadata.tables)
    }
    for table_name, columns in JOURNAL_UPGRADE_COLUMNS.items():
        if table_name not in existing:
            continue
        have = {c["name"] for c in inspect(engine).get_columns(table_name)}
        added = [c for c in columns if c not in have]
        statements = [
            f"ALTER TABLE {table_name} ADD COLUMN {name} "
            f"{metadata.tables[table_name].c[name].type.compile(dialect=engine.dialect)} NULL"
            for name in added
        ]
        try:
            with engine.begin() as conn:
                for statement in statements:
                    conn.execute(text(statement))
        except DBAPIError as exc:  # typically: the flow's user may not ALTER (docs/s3-mysql.md)
            raise ConfigError(
                f"{DATABASE_SETTING}: table {table_name!r} lacks the columns "
                f"{', '.join(added)} this release's run journal needs, and adding them failed "
                f"({type(exc.orig).__name__}: {one_line(str(exc.orig), 200)}) in "
                f"{redact_url(engine.url.render_as_string(hide_password=False))}",
                hint="run `sales-etl init-db` once as the set-up user (it needs ALTER on "
                f"{table_name}), or run: " + "; ".join(statements),
            ) from None
        if added:
            outcomes[table_name] = "upgraded: added " + ", ".join(added)
    return outcomes
