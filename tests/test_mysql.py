"""The database layer on a real MariaDB server (tests/services.py), through ``mysql+pymysql://``.

Every test gets a fresh database and connects as the least-privilege application user
(SELECT, INSERT, UPDATE, DELETE, CREATE, INDEX on that database only).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal

import pytest
from helpers import read_table, write_dimensions
from sqlalchemy import func, insert, select, text

from sales_etl.db.dimensions import load_dimensions
from sales_etl.db.engine import LEFT_AS_IS, init_db, make_engine
from sales_etl.db.schema import (
    customer,
    customer_monthly_purchase,
    etl_runs,
    metadata,
    product,
    sales_team_incentive,
    staging_files,
)

EMOJI_NAME = "Zoë 😀"  # 4-byte UTF-8: needs utf8mb4


@pytest.fixture
def engine(mysql_url):
    eng = make_engine(mysql_url)
    init_db(eng)
    yield eng
    eng.dispose()


def _dims(folder, first_name: str = "Saurabh", price: str = "10.10"):
    return write_dimensions(
        folder,
        customer=[
            {"customer_id": 1, "first_name": first_name, "last_name": "Jain", "pincode": "110001"},
            {"customer_id": 2, "first_name": EMOJI_NAME, "last_name": "Nair", "address": "A, B"},
        ],
        store=[{"id": 121, "address": "Delhi", "store_manager_name": "Manish"}],
        sales_team=[
            {
                "id": 1,
                "first_name": "Rahul",
                "last_name": "Verma",
                "manager_id": 2,
                "is_manager": "N",
            },
            {
                "id": 2,
                "first_name": "Rajesh",
                "last_name": "Gupta",
                "manager_id": 2,
                "is_manager": "Y",
            },
        ],
        product=[{"id": 1, "name": "quaker oats", "current_price": price, "old_price": "9.99"}],
    )


def test_init_db_creates_innodb_utf8mb4_tables(engine, mariadb):
    # a second run changes nothing and says so, table by table
    assert init_db(engine) == dict.fromkeys(sorted(metadata.tables), LEFT_AS_IS)
    database = engine.url.database
    with mariadb.root_connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT table_name, engine, table_collation FROM information_schema.tables "
            "WHERE table_schema = %s",
            (database,),
        )
        tables = {name: (eng, coll) for name, eng, coll in cur.fetchall()}
        cur.execute(
            "SELECT table_name, column_name, column_type FROM information_schema.columns "
            "WHERE table_schema = %s",
            (database,),
        )
        columns = {(t, c): ty.lower() for t, c, ty in cur.fetchall()}
    assert set(tables) == set(metadata.tables)
    assert all(v == ("InnoDB", "utf8mb4_bin") for v in tables.values()), tables
    assert columns[("customer_monthly_purchase", "monthly_total")] == "decimal(18,2)"
    assert columns[("sales_team_incentive", "incentive")] == "decimal(18,2)"
    assert columns[("product", "current_price")] == "decimal(12,2)"
    assert columns[("etl_runs", "summary")] == "longtext"
    assert columns[("staging_files", "created_at")] == "datetime(6)"
    assert columns[("product", "created_date")] == "datetime(6)"  # the tutorial's TIMESTAMP


def test_dimension_load_upsert_and_read_into_spark(engine, tmp_path, spark):
    from sales_etl.tasks.dimensions import read_dimensions

    counts = load_dimensions(engine, _dims(tmp_path / "v1"))
    assert counts == {"customer": 2, "store": 1, "sales_team": 2, "product": 1}
    load_dimensions(engine, _dims(tmp_path / "v2", first_name="Saurabh K", price="12.35"))
    rows = read_table(engine.url.render_as_string(hide_password=False), "customer", ["customer_id"])
    assert [r["first_name"] for r in rows] == ["Saurabh K", EMOJI_NAME]
    assert rows[1]["address"] == "A, B" and rows[1]["pincode"] is None
    with engine.connect() as conn:
        assert conn.execute(select(product.c.current_price)).scalar_one() == Decimal("12.35")

    dims = read_dimensions(spark, engine)
    got = sorted(tuple(r) for r in dims.customer.collect())
    assert got == [
        (1, "Saurabh K", "Jain", None, "110001", None),
        (2, EMOJI_NAME, "Nair", "A, B", None, None),
    ]
    assert sorted(tuple(r) for r in dims.store.collect()) == [(121, "Delhi", "Manish")]
    assert [r.manager_id for r in dims.sales_team.orderBy("sales_person_id").collect()] == [2, 2]


def test_money_is_exact_decimal(engine):
    values = [
        Decimal("0.10"),
        Decimal("0.20"),
        Decimal("9999999999999999.99"),  # the largest DECIMAL(18,2)
        Decimal("-0.01"),
        Decimal("0.125"),  # more than 2 places: rounded half-up, like the incentive rule
    ]
    with engine.begin() as conn:
        conn.execute(
            insert(customer_monthly_purchase),
            [
                {"customer_id": i, "year": 2024, "month": 1, "monthly_total": v}
                for i, v in enumerate(values)
            ],
        )
    with engine.connect() as conn:
        stored = conn.execute(
            select(customer_monthly_purchase.c.monthly_total).order_by(
                customer_monthly_purchase.c.customer_id
            )
        ).scalars()
        assert list(stored) == [
            Decimal("0.10"),
            Decimal("0.20"),
            Decimal("9999999999999999.99"),
            Decimal("-0.01"),
            Decimal("0.13"),
        ]
        total = conn.execute(
            select(func.sum(customer_monthly_purchase.c.monthly_total)).where(
                customer_monthly_purchase.c.customer_id < 2
            )
        ).scalar_one()
        assert Decimal(total) == Decimal("0.30")  # not 0.30000000000000004
        # Strict mode: an out-of-range value is refused, never clipped.
        with pytest.raises(Exception, match=r"(?i)out of range"):
            conn.execute(
                insert(customer_monthly_purchase).values(
                    customer_id=99, year=2024, month=2, monthly_total=Decimal("1e17")
                )
            )


def _month_rows(months, total):
    return [
        {
            "customer_id": c,
            "first_name": "x",
            "last_name": "y",
            "year": int(m[:4]),
            "month": int(m[5:]),
            "monthly_total": total,
        }
        for m in months
        for c in (1, 2)
    ]


def test_monthly_replacement_is_one_transaction(engine):
    """tasks.reporting.replace_months: an error half way leaves the old months untouched."""
    from sales_etl.tasks.reporting import replace_months

    with engine.begin() as conn:
        conn.execute(insert(customer_monthly_purchase), _month_rows(["2024-01", "2024-02"], "5.00"))
        conn.execute(
            insert(sales_team_incentive),
            [
                {
                    "sales_person_id": 1,
                    "year": 2024,
                    "month": 1,
                    "total_sales": Decimal("5.00"),
                    "incentive": Decimal("0.05"),
                }
            ],
        )
    before = read_table(
        engine.url.render_as_string(hide_password=False),
        "customer_monthly_purchase",
        ["year", "month", "customer_id"],
    )

    def failing_rows():
        yield from _month_rows(["2024-01"], "7.00")[:1]
        raise RuntimeError("Spark died while streaming the new totals")

    with pytest.raises(RuntimeError, match="Spark died"), engine.begin() as conn:
        replace_months(conn, ["2024-01"], failing_rows(), [])
    url = engine.url.render_as_string(hide_password=False)
    assert read_table(url, "customer_monthly_purchase", ["year", "month", "customer_id"]) == before
    assert len(read_table(url, "sales_team_incentive")) == 1

    with engine.begin() as conn:
        inserted = replace_months(
            conn,
            ["2024-01"],
            iter(_month_rows(["2024-01"], "7.00")),
            [
                {
                    "sales_person_id": 2,
                    "first_name": "R",
                    "last_name": "G",
                    "year": 2024,
                    "month": 1,
                    "total_sales": Decimal("7.00"),
                    "incentive": Decimal("0.07"),
                }
            ],
        )
    assert inserted == 2
    after = read_table(url, "customer_monthly_purchase", ["year", "month", "customer_id"])
    assert [(r["month"], r["monthly_total"]) for r in after] == [
        (1, Decimal("7.00")),
        (1, Decimal("7.00")),
        (2, Decimal("5.00")),
        (2, Decimal("5.00")),
    ]
    assert [r["sales_person_id"] for r in read_table(url, "sales_team_incentive")] == [2]


def test_journal_keeps_large_summaries_and_microseconds(engine):
    """A run summary listing thousands of files outgrows TEXT (64 KiB); timestamps keep µs."""
    from sales_etl.journal import _mark_completed, open_run

    open_run(engine, "run-1")
    summary = {"files": [{"file": f"to_process/sales_{i:05d}.csv"} for i in range(5000)]}
    assert len(json.dumps(summary)) > 65_535
    _mark_completed(engine, "run-1", summary)
    with engine.connect() as conn:
        row = conn.execute(select(etl_runs)).one()
        assert json.loads(row.summary) == summary
        moment = dt.datetime(2024, 3, 1, 12, 0, 0, 123456)
        conn.execute(
            insert(staging_files).values(
                run_id="r",
                batch_id="b",
                file_name="f",
                file_location="to_process/f",
                checksum="0" * 64,
                size_bytes=1,
                status="ACTIVE",
                created_at=moment,
                updated_at=moment,
            )
        )
        assert conn.execute(select(staging_files.c.created_at)).scalar_one() == moment
        conn.rollback()


def test_session_is_strict_and_utc(engine):
    with engine.connect() as conn:
        mode = conn.execute(text("SELECT @@SESSION.sql_mode")).scalar_one()
        assert "STRICT_ALL_TABLES" in mode and "NO_ZERO_DATE" in mode
        assert conn.execute(text("SELECT @@SESSION.time_zone")).scalar_one() == "+00:00"
        assert conn.execute(text("SELECT @@character_set_client")).scalar_one() == "utf8mb4"


@pytest.mark.slow
def test_a_million_customers_reach_spark(engine, mariadb, spark):
    """The 1M-row customer dimension streams from MySQL into Spark in bounded memory."""
    from sales_etl.tasks.dimensions import read_dimensions

    database = engine.url.database
    n = 1_000_000
    with mariadb.root_connect(database) as conn, conn.cursor() as cur:
        # MariaDB's SEQUENCE engine makes the rows server-side in seconds.
        cur.execute(
            "INSERT INTO customer (customer_id, first_name, last_name, address, pincode, "
            "phone_number, customer_joining_date) "
            f"SELECT seq, CONCAT('First', seq), CONCAT('Last', seq), CONCAT(seq, ', Main Road'), "
            f"LPAD(seq MOD 1000000, 6, '0'), NULL, '2020-01-01' FROM seq_1_to_{n}"
        )
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(customer)).scalar_one() == n
    started = time.monotonic()
    dims = read_dimensions(spark, engine)
    read_seconds = time.monotonic() - started
    stats = dims.customer.selectExpr(
        "count(*) AS n", "count(DISTINCT customer_id) AS ids", "sum(customer_id) AS total"
    ).first()
    assert (stats.n, stats.ids, stats.total) == (n, n, n * (n + 1) // 2)
    sample = dims.customer.where("customer_id IN (1, 777777, 1000000)").orderBy("customer_id")
    assert [(r.customer_id, r.first_name, r.pincode) for r in sample.collect()] == [
        (1, "First1", "000001"),
        (777777, "First777777", "777777"),
        (1000000, "First1000000", "000000"),
    ]
    print(f"read 1M customers from MariaDB into Spark in {read_seconds:.1f} s")
