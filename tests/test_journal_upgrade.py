"""``init_db`` adds the journal's new nullable columns to a ``staging_files`` table made by the
previous release (issue 13: the claim location and the source version), on SQLite and MariaDB,
keeping its rows; a second call changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    text,
)

from sales_etl.db.engine import LEFT_AS_IS, init_db, make_engine
from sales_etl.errors import ConfigError


def previous_staging_files(metadata: MetaData) -> Table:
    """``staging_files`` as the release before the claim step created it (plain types)."""
    return Table(
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
        Column("reason", Text),
        Column("rows_total", BigInteger),
        Column("rows_loaded", BigInteger),
        Column("rows_quarantined", BigInteger),
        Column("created_at", String(32), nullable=False),
        Column("updated_at", String(32), nullable=False),
        Index("ix_staging_files_checksum_status", "checksum", "status"),
    )


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
        old = MetaData()
        previous_staging_files(old)
        old.create_all(engine)
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
        old = MetaData()
        previous_staging_files(old)
        old.create_all(engine)
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
