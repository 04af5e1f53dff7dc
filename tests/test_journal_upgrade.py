"""``init_db`` adds the journal's new nullable columns to a ``staging_files`` table made by the
previous release (issue 13: the claim location and the source version), on SQLite and MariaDB,
keeping its rows; a second call changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, MetaData, Table, inspect, text

from sales_etl.db.engine import LEFT_AS_IS, init_db, make_engine
from sales_etl.db.schema import JOURNAL_UPGRADE_COLUMNS, metadata, staging_files
from sales_etl.errors import ConfigError


def create_previous_staging_files(engine: Engine) -> None:
    """``staging_files`` as the release before the claim step created it: without the
    columns that release did not have."""
    new = set(JOURNAL_UPGRADE_COLUMNS["staging_files"])
    old = MetaData()
    Table("staging_files", old, *[c._copy() for c in staging_files.columns if c.name not in new])
    old.create_all(engine)


@pytest.fixture(params=["sqlite", "mariadb"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite, or a MariaDB database and a set-up user with docs/s3-mysql.md's grants."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    mariadb = request.getfixturevalue("mariadb")
    db = mariadb.new_database("upgrade").rsplit("/", 1)[1]
    user, password = mariadb.create_user(
        # docs/s3-mysql.md grants ALTER on staging_files alone; a table grant needs the
        # table to exist, which it does not yet here.
        [f"SELECT, INSERT, UPDATE, DELETE, CREATE, INDEX, ALTER ON `{db}`.*"]
    )
    return mariadb.url(db, user, password)


def test_a_user_without_alter_is_told_what_to_run(mysql_url: str) -> None:
    """The flow's user (no ALTER) meets an old table: one ConfigError naming the fix."""
    engine = make_engine(mysql_url)
    try:
        create_previous_staging_files(engine)
        with pytest.raises(ConfigError) as err:
            init_db(engine)
    finally:
        engine.dispose()
    message = str(err.value)
    assert "'staging_files' lacks the columns claim_location, source_version" in message
    assert "1142" in message and "ALTER command denied" in message
    assert "sales-etl init-db" in err.value.hint and "ALTER TABLE staging_files" in err.value.hint
    assert mysql_url.split(":")[2].split("@")[0] not in message  # the password is masked


def test_init_db_adds_the_new_journal_columns_to_an_old_table(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        create_previous_staging_files(engine)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO staging_files (run_id, batch_id, file_name, file_location, "
                    "checksum, size_bytes, status, created_at, updated_at) VALUES ('r', "
                    "'20240101_000000', 'a.csv', 'to_process/a.csv', :sum, 3, 'COMPLETED', "
                    "'2024-01-01 00:00:00', '2024-01-01 00:00:00')"
                ),
                {"sum": "ab" * 32},
            )
        outcomes = init_db(engine)
        assert outcomes["staging_files"] == "upgraded: added claim_location, source_version"
        columns = {c["name"]: c for c in inspect(engine).get_columns("staging_files")}
        assert columns["claim_location"]["nullable"] and columns["source_version"]["nullable"]
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT file_name, claim_location, source_version FROM staging_files")
            ).all()
        assert [tuple(r) for r in rows] == [("a.csv", None, None)]
        assert init_db(engine)["staging_files"] == LEFT_AS_IS
    finally:
        engine.dispose()


def test_a_user_without_create_is_told_to_run_init_db(mariadb) -> None:
    """A release adds a table (quarantine_ledger, issue 15) that the flow's user, with table
    grants only, may not create: one ConfigError naming it, not a raw SQL error."""
    owner_url = mariadb.new_database("newtable")
    owner = make_engine(owner_url)
    try:
        init_db(owner)
    finally:
        owner.dispose()
    db = owner_url.rsplit("/", 1)[1]
    with mariadb.root_connect(db) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE quarantine_ledger")  # as the release before it had it
    # docs/s3-mysql.md's flow user: table grants only, on every table but the new one
    tables = sorted(set(metadata.tables) - {"quarantine_ledger"})
    user, password = mariadb.create_user(
        [f"SELECT, INSERT, UPDATE, DELETE ON `{db}`.`{t}`" for t in tables]
    )
    flow_url = mariadb.url(db, user, password)
    engine = make_engine(flow_url)
    try:
        with pytest.raises(ConfigError) as err:
            init_db(engine)
    finally:
        engine.dispose()
    message = str(err.value)
    assert "the tables quarantine_ledger are missing" in message
    # MariaDB refuses the existence check first (SELECT on an ungranted table): still 1142
    assert "1142" in message and "command denied" in message
    assert "sales-etl init-db" in err.value.hint
    assert password not in message
