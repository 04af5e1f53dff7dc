"""Issue 12, acceptance 3: dimension data as people have it, and tables as people made them.

The upstream tutorial's ``table_scripts.sql`` makes the dimension tables with INT AUTO_INCREMENT
ids, VARCHAR(50) names, DECIMAL(10, 2) prices, TIMESTAMP ``created_date`` / ``updated_date``
(NULL allowed), CHAR(1) ``is_manager`` and TEXT ``reviews``, and fills them with the rows below
(25 customers, 4 stores, 10 salespeople, 8 products). This module writes those rows as a MySQL
export holds them (time parts on dates, ``NULL`` / ``\\N`` / empty values, ``212.0`` money),
loads them on SQLite and on MariaDB (whose tables are first made by tutorial-shaped DDL), runs a
batch of sales through the real flow and checks the tables and marts against values computed
here from the sales rows and the dimension rows (row verdicts by the independent rule oracle
``tests/corpus.expected_reason``). Unit tests cover every accepted and refused value form.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from corpus import expected_reason
from harness import assert_reporting_tables_match
from helpers import DIMENSION_HEADERS, SALES_COLUMNS, read_parquet_rows, read_table, write_bytes
from sqlalchemy import Engine, func, select, text

from sales_etl.db.dimensions import DimensionLoadError, load_dimension_file, load_dimensions
from sales_etl.db.engine import CREATED, LEFT_AS_IS, init_db, make_engine
from sales_etl.db.schema import (
    DIMENSION_TABLES,
    check_dimension_columns,
    customer,
    metadata,
    product,
    sales_team,
    store,
)
from sales_etl.errors import ConfigError, InputError

CENT = Decimal("0.01")

# --- the tutorial's dimension rows (table_scripts.sql), ids as AUTO_INCREMENT gave them --------

TUTORIAL_CUSTOMERS = [  # first, last, phone, joining date; all in Delhi, pincode 122009
    ("Saanvi", "Krishna", "9173121081", "2021-01-20"),
    ("Dhanush", "Sahni", "9155328165", "2022-03-27"),
    ("Yasmin", "Shan", "9191478300", "2023-04-08"),
    ("Vidur", "Mammen", "9119017511", "2020-10-12"),
    ("Shamik", "Doctor", "9105180499", "2022-10-30"),
    ("Ryan", "Dugar", "9142616565", "2020-08-10"),
    ("Romil", "Shanker", "9129451313", "2021-10-29"),
    ("Krish", "Tandon", "9145683399", "2020-01-08"),
    ("Divij", "Garde", "9141984713", "2020-11-10"),
    ("Hunar", "Tank", "9169808085", "2023-01-27"),
    ("Zara", "Dhaliwal", "9129776379", "2023-06-13"),
    ("Sumer", "Mangal", "9138607933", "2020-05-01"),
    ("Rhea", "Chander", "9103434731", "2023-08-09"),
    ("Yuvaan", "Bawa", "9162077019", "2023-02-18"),
    ("Sahil", "Sabharwal", "9174928780", "2021-03-16"),
    ("Tiya", "Kashyap", "9105126094", "2023-03-23"),
    ("Kimaya", "Lala", "9115616831", "2021-03-14"),
    ("Vardaniya", "Jani", "9125068977", "2022-07-19"),
    ("Indranil", "Dutta", "9120667755", "2023-07-18"),
    ("Kavya", "Sachar", "9157628717", "2022-05-04"),
    ("Manjari", "Sule", "9112525501", "2023-02-12"),
    ("Akarsh", "Kalla", "9113226332", "2021-03-05"),
    ("Miraya", "Soman", "9111455455", "2023-07-06"),
    ("Shalv", "Chaudhary", "9158099495", "2021-03-14"),
    ("Jhanvi", "Bava", "9110074097", "2022-07-14"),
]
CUSTOMERS = {i: row for i, row in enumerate(TUTORIAL_CUSTOMERS, start=1)}
STORES = {  # id: pincode, manager, opening date, review; all in Delhi
    121: ("122009", "Manish", "2022-01-15", "Great store with a friendly staff."),
    122: ("110011", "Nikita", "2021-08-10", "Excellent selection of products."),
    123: ("201301", "vikash", "2023-01-20", "Clean and organized store."),
    124: ("400001", "Rakesh", "2020-05-05", "Good prices and helpful staff."),
}
PRODUCTS = {  # id: name, price (current = old), created date; updated NULL, expiry 2025-01-01
    1: ("quaker oats", "212", "2022-05-15"),
    2: ("sugar", "50", "2021-08-10"),
    3: ("maida", "20", "2023-03-20"),
    4: ("besan", "52", "2020-05-05"),
    5: ("refined oil", "110", "2022-01-15"),
    6: ("clinic plus", "1.5", "2021-09-25"),
    7: ("dantkanti", "100", "2023-07-10"),
    8: ("nutrella", "40", "2020-11-30"),
}
SALES_TEAM = {  # id: first, last; manager 10, joined 2020-05-01, Delhi 122007; 10 is the manager
    1: ("Rahul", "Verma"),
    2: ("Priya", "Singh"),
    3: ("Amit", "Sharma"),
    4: ("Sneha", "Gupta"),
    5: ("Neha", "Kumar"),
    6: ("Vijay", "Yadav"),
    7: ("Anita", "Malhotra"),
    8: ("Alok", "Rajput"),
    9: ("Monica", "Jain"),
    10: ("Rajesh", "Gupta"),
}

# The tutorial's DDL, as MariaDB is given it (column kinds and sizes as in table_scripts.sql).
TUTORIAL_DDL = [
    """CREATE TABLE customer (
        customer_id INT AUTO_INCREMENT PRIMARY KEY, first_name VARCHAR(50),
        last_name VARCHAR(50), address VARCHAR(255), pincode VARCHAR(10),
        phone_number VARCHAR(20), customer_joining_date DATE)""",
    """CREATE TABLE store (
        id INT PRIMARY KEY, address VARCHAR(255), store_pincode VARCHAR(10),
        store_manager_name VARCHAR(100), store_opening_date DATE, reviews TEXT)""",
    """CREATE TABLE product (
        id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(255), current_price DECIMAL(10, 2),
        old_price DECIMAL(10, 2), created_date TIMESTAMP, updated_date TIMESTAMP,
        expiry_date DATE)""",
    """CREATE TABLE sales_team (
        id INT AUTO_INCREMENT PRIMARY KEY, first_name VARCHAR(50), last_name VARCHAR(50),
        manager_id INT, is_manager CHAR(1), address VARCHAR(255), pincode VARCHAR(10),
        joining_date DATE)""",
]

# How the tutorial's columns look in information_schema after it (MariaDB), and must stay.
TUTORIAL_COLUMN_TYPES = {
    ("customer", "customer_id"): ("int(11)", "auto_increment"),
    ("customer", "first_name"): ("varchar(50)", ""),
    ("product", "current_price"): ("decimal(10,2)", ""),
    ("product", "created_date"): ("timestamp", ""),
    ("product", "updated_date"): ("timestamp", ""),
    ("sales_team", "is_manager"): ("char(1)", ""),
    ("store", "reviews"): ("text", ""),
}


def _export_csv(header: tuple[str, ...], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # as Workbench / Excel write it
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def write_tutorial_export(folder: Path) -> Path:
    """The tutorial's rows as a MySQL export holds them: DATE values with a time part (both
    separators, with and without fractions), TIMESTAMPs with times, NULL written three ways,
    whole-number money as ``212`` and ``212.0``."""
    customers = [
        [
            str(cid),
            first,
            last,
            "Delhi",
            "122009",
            phone,
            joined + (" 00:00:00" if cid % 3 == 0 else "T00:00:00.000" if cid % 3 == 1 else ""),
        ]
        for cid, (first, last, phone, joined) in CUSTOMERS.items()
    ]
    stores = [
        [str(sid), "Delhi", pincode, manager, opened + " 00:00:00", review]
        for sid, (pincode, manager, opened, review) in STORES.items()
    ]
    nulls = ["", "NULL", "\\N"]
    products = [
        [
            str(pid),
            name,
            f"{price}.0" if pid % 2 and "." not in price else price,
            price,
            f"{created} 08:15:30" if pid % 2 else f"{created}T00:00:00",
            nulls[pid % 3],
            "2025-01-01 00:00:00",
        ]
        for pid, (name, price, created) in PRODUCTS.items()
    ]
    team = [
        [
            str(pid),
            first,
            last,
            "10",
            "Y" if pid == 10 else "N",
            "Delhi",
            "122007",
            "2020-05-01 00:00:00",
        ]
        for pid, (first, last) in SALES_TEAM.items()
    ]
    for name, rows in (
        ("customer", customers),
        ("store", stores),
        ("sales_team", team),
        ("product", products),
    ):
        write_bytes(folder / f"{name}.csv", _export_csv(DIMENSION_HEADERS[name], rows))
    return folder


# --- unit tests: every accepted and refused value form (SQLite) --------------------------------


@pytest.fixture
def engine(tmp_path: Path):
    eng = make_engine(f"sqlite:///{tmp_path / 'etl.db'}")
    init_db(eng)
    yield eng
    eng.dispose()


def _one_row_file(folder: Path, table_name: str, values: dict[str, str]) -> Path:
    """``table.csv`` with one record: a plain valid row with ``values`` put in."""
    base = {
        "customer": ["1", "Saanvi", "Krishna", "Delhi", "122009", "9173121081", "2021-01-20"],
        "store": ["121", "Delhi", "122009", "Manish", "2022-01-15", "Great store"],
        "sales_team": ["1", "Rahul", "Verma", "10", "N", "Delhi", "122007", "2020-05-01"],
        "product": ["1", "quaker oats", "212", "212", "2022-05-15", "", "2025-01-01"],
    }[table_name]
    header = DIMENSION_HEADERS[table_name]
    row = [values.get(name, value) for name, value in zip(header, base, strict=True)]
    return write_bytes(folder / f"{table_name}.csv", _export_csv(header, [row]))


ACCEPTED = [
    ("product", "created_date", "2023-01-01 00:00:00", dt.datetime(2023, 1, 1)),
    ("product", "created_date", "2023-01-01T00:00:00", dt.datetime(2023, 1, 1)),
    ("product", "created_date", "2023-01-01 10:30:05", dt.datetime(2023, 1, 1, 10, 30, 5)),
    (
        "product",
        "created_date",
        "2023-01-01T10:30:05.5",
        dt.datetime(2023, 1, 1, 10, 30, 5, 500000),
    ),
    (
        "product",
        "updated_date",
        "2023-01-01 10:30:05.123456",
        dt.datetime(2023, 1, 1, 10, 30, 5, 123456),
    ),
    ("product", "created_date", "2023-01-01", dt.datetime(2023, 1, 1)),
    ("product", "updated_date", "", None),
    ("product", "updated_date", "NULL", None),
    ("product", "updated_date", "\\N", None),
    ("product", "current_price", "212", Decimal("212.00")),
    ("product", "current_price", "212.0", Decimal("212.00")),
    ("product", "current_price", "212.000", Decimal("212.00")),
    ("product", "old_price", "1.5", Decimal("1.50")),
    ("product", "expiry_date", "2025-01-01 00:00:00", dt.date(2025, 1, 1)),
    ("product", "expiry_date", "2025-01-01T00:00:00.000000", dt.date(2025, 1, 1)),
    ("customer", "customer_joining_date", "2021-01-20 00:00:00", dt.date(2021, 1, 20)),
    ("customer", "customer_joining_date", "NULL", None),
    ("customer", "phone_number", "\\N", None),
    ("store", "reviews", "NULL", None),
    ("store", "store_opening_date", "2022-01-15T00:00:00", dt.date(2022, 1, 15)),
    ("sales_team", "is_manager", "Y", "Y"),
    ("sales_team", "is_manager", "N", "N"),
    ("sales_team", "manager_id", "\\N", None),
    ("sales_team", "manager_id", "", None),
]


@pytest.mark.parametrize(("table_name", "column", "raw", "stored"), ACCEPTED)
def test_accepted_value_forms(
    engine: Engine, tmp_path: Path, table_name: str, column: str, raw: str, stored: Any
) -> None:
    path = _one_row_file(tmp_path, table_name, {column: raw})
    assert load_dimension_file(engine, table_name, path) == 1
    table = DIMENSION_TABLES[table_name]
    with engine.connect() as conn:
        assert conn.execute(select(table.c[column])).scalar_one() == stored


REFUSED = [  # table, column, raw, words the reason must hold
    ("customer", "customer_joining_date", "2021-01-20 10:30:00", "has a time of day"),
    ("customer", "customer_joining_date", "2021-01-20 00:00:01", "has a time of day"),
    ("product", "expiry_date", "2025-01-01T23:59:59.999", "has a time of day"),
    ("product", "created_date", "2023-01-01 24:00:00", "not a real date or time"),
    ("product", "created_date", "2023-02-30 00:00:00", "not a real date or time"),
    ("product", "created_date", "2023-01-01 10:30", "not an ISO date or timestamp"),
    ("product", "created_date", "2023-01-01T10:30:00Z", "not an ISO date or timestamp"),
    ("product", "created_date", "2023-01-01 10:30:00+05:30", "not an ISO date or timestamp"),
    ("product", "created_date", "2023-01-01 10:30:00.1234567", "not an ISO date or timestamp"),
    ("product", "created_date", "01/02/2023", "not an ISO date or timestamp"),
    ("product", "updated_date", "0000-00-00 00:00:00", "zero date"),
    ("product", "current_price", "212.001", "decimal places"),
    ("product", "current_price", "2,12", "not a decimal number"),
    ("product", "id", "NULL", "primary key"),
    ("product", "id", "", "primary key"),
    ("customer", "customer_id", "\\N", "primary key"),
    ("sales_team", "is_manager", "Yes", "longer than 1 characters"),
    ("sales_team", "manager_id", "10.0", "not an integer"),
]


def _assert_refused(
    engine: Engine, folder: Path, table_name: str, column: str, raw: str, words: str
) -> None:
    """Loading a one-row file with ``raw`` in ``column`` fails in one line naming all three."""
    path = _one_row_file(folder, table_name, {column: raw})
    with pytest.raises(DimensionLoadError) as caught:
        load_dimension_file(engine, table_name, path)
    error = caught.value
    assert isinstance(error, InputError)  # the CLI prints it in one line, exit 2
    assert (error.file_name, error.line, error.column) == (f"{table_name}.csv", 2, column)
    message = str(error)
    assert message.startswith(f"{table_name}.csv, line 2, column {column!r}: ")
    assert words in message and "\n" not in message


@pytest.mark.parametrize(("table_name", "column", "raw", "words"), REFUSED)
def test_refused_value_forms_name_file_line_column_and_write_nothing(
    engine: Engine, tmp_path: Path, table_name: str, column: str, raw: str, words: str
) -> None:
    _assert_refused(engine, tmp_path, table_name, column, raw, words)
    with engine.connect() as conn:
        assert (
            conn.execute(
                select(func.count()).select_from(DIMENSION_TABLES[table_name])
            ).scalar_one()
            == 0
        )


def test_a_bad_value_late_in_the_file_refuses_the_whole_file(
    engine: Engine, tmp_path: Path
) -> None:
    folder = write_tutorial_export(tmp_path / "dims")
    path = folder / "product.csv"
    lines = path.read_bytes().split(b"\r\n")
    lines[8] = lines[8].replace(b"2025-01-01 00:00:00", b"2025-01-01 12:00:00")  # product 8
    path.write_bytes(b"\r\n".join(lines))
    with pytest.raises(DimensionLoadError, match=r"^product.csv, line 9, column 'expiry_date': "):
        load_dimensions(engine, folder, batch_size=3)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(product)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(customer)).scalar_one() == 25


def test_the_tutorial_export_loads_with_its_values(engine: Engine, tmp_path: Path) -> None:
    counts = load_dimensions(engine, write_tutorial_export(tmp_path / "dims"))
    assert counts == {"customer": 25, "store": 4, "sales_team": 10, "product": 8}
    _assert_tutorial_values(engine)


def _assert_tutorial_values(engine: Engine) -> None:
    with engine.connect() as conn:
        joined = dict(
            conn.execute(select(customer.c.customer_id, customer.c.customer_joining_date)).all()
        )
        products = {r.id: r for r in conn.execute(select(product))}
        team = {
            r.id: (r.first_name, r.manager_id, r.is_manager)
            for r in conn.execute(select(sales_team))
        }
        reviews = dict(conn.execute(select(store.c.id, store.c.reviews)).all())
    assert joined == {cid: dt.date.fromisoformat(row[3]) for cid, row in CUSTOMERS.items()}
    for pid, (_name, price, created) in PRODUCTS.items():
        row = products[pid]
        assert row.current_price == row.old_price == Decimal(price).quantize(CENT)
        day = dt.datetime.fromisoformat(created)
        assert row.created_date == (day.replace(hour=8, minute=15, second=30) if pid % 2 else day)
        assert row.updated_date is None
        assert row.expiry_date == dt.date(2025, 1, 1)
    assert team == {
        pid: (first, 10, "Y" if pid == 10 else "N") for pid, (first, _) in SALES_TEAM.items()
    }
    assert reviews == {sid: row[3] for sid, row in STORES.items()}


def test_a_missing_folder_is_one_input_error(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        load_dimensions(engine, tmp_path / "no" / "such")
    message = str(caught.value)
    assert "does not exist" in message and str(tmp_path / "no" / "such") in message
    assert "customer.csv" in (caught.value.hint or "") and "\n" not in message


# --- tables as people made them --------------------------------------------------------------


def test_init_db_says_created_then_left_as_is_and_keeps_a_users_table(tmp_path: Path) -> None:
    eng = make_engine(f"sqlite:///{tmp_path / 'etl.db'}")
    try:
        with eng.begin() as conn:  # a user's own customer table, with an extra column
            conn.execute(
                text(
                    "CREATE TABLE customer (customer_id INTEGER PRIMARY KEY AUTOINCREMENT, "
                    "first_name VARCHAR(50), last_name VARCHAR(50), address TEXT, "
                    "pincode VARCHAR(10), phone_number VARCHAR(20), customer_joining_date DATE, "
                    "email VARCHAR(100))"
                )
            )
            before = conn.execute(
                text("SELECT sql FROM sqlite_master WHERE name='customer'")
            ).scalar_one()
        first = init_db(eng)
        assert first == {
            name: LEFT_AS_IS if name == "customer" else CREATED for name in sorted(metadata.tables)
        }
        assert init_db(eng) == dict.fromkeys(sorted(metadata.tables), LEFT_AS_IS)
        with eng.connect() as conn:
            after = conn.execute(
                text("SELECT sql FROM sqlite_master WHERE name='customer'")
            ).scalar_one()
        assert after == before
        check_dimension_columns(eng)  # the extra column is fine
        counts = load_dimensions(eng, write_tutorial_export(tmp_path / "dims"))
        assert counts["customer"] == 25
        with eng.connect() as conn:
            emails = set(conn.execute(text("SELECT email FROM customer")).scalars())
        assert emails == {None}
    finally:
        eng.dispose()


@pytest.mark.parametrize(
    ("table_name", "dropped"),
    [("customer", "phone_number"), ("store", "store_manager_name"), ("sales_team", "is_manager")],
)
def test_a_missing_column_is_one_config_error(
    tmp_path: Path, table_name: str, dropped: str
) -> None:
    url = f"sqlite:///{tmp_path / 'etl.db'}"
    eng = make_engine(url)
    try:
        init_db(eng)
        with eng.begin() as conn:
            conn.execute(text(f"ALTER TABLE {table_name} DROP COLUMN {dropped}"))
        with pytest.raises(ConfigError) as caught:
            check_dimension_columns(eng)
        message = str(caught.value)
        assert f"dimension table {table_name!r} has no column {dropped!r}" in message
        assert "SALES_ETL_DATABASE_URL" in message and str(tmp_path / "etl.db") in message
        assert "\n" not in message and "ALTER TABLE" in (caught.value.hint or "")
        # load-dimensions refuses the same way before writing anything
        with pytest.raises(ConfigError, match=f"has no column {dropped!r}"):
            load_dimensions(eng, write_tutorial_export(tmp_path / "dims"))
        with eng.connect() as conn:
            assert conn.execute(select(func.count()).select_from(customer)).scalar_one() == 0
    finally:
        eng.dispose()


def test_a_column_only_the_loader_fills_is_checked_by_load_dimensions(tmp_path: Path) -> None:
    eng = make_engine(f"sqlite:///{tmp_path / 'etl.db'}")
    try:
        init_db(eng)
        with eng.begin() as conn:
            conn.execute(text("ALTER TABLE product DROP COLUMN expiry_date"))
        check_dimension_columns(eng)  # a run does not read product.expiry_date
        with pytest.raises(ConfigError, match="'product' has no column 'expiry_date'"):
            load_dimensions(eng, write_tutorial_export(tmp_path / "dims"))
    finally:
        eng.dispose()


# --- a batch through the real flow on SQLite and on MariaDB ------------------------------------


def _sales() -> list[dict[str, str]]:
    """Sales over two months for the tutorial's ids, with a few rows the rules refuse."""
    rows = []
    for i in range(36):
        pid = 1 + (i * 7) % 8
        name, price, _ = PRODUCTS[pid]
        quantity = 1 + i % 4
        total = (Decimal(price) * quantity).quantize(CENT)
        rows.append(
            {
                "customer_id": str(1 + (i * 5) % 25),
                "store_id": str(121 + i % 4),
                "product_name": name,
                "sales_date": f"2023-{3 + i % 2:02d}-{1 + i % 28:02d}",
                "sales_person_id": str(1 + (i * 3) % 10),
                "price": price,
                "quantity": str(quantity),
                "total_cost": str(total),
            }
        )
    rows[5]["customer_id"] = "26"  # not a tutorial customer
    rows[9]["store_id"] = "125"
    rows[13]["sales_person_id"] = "11"
    rows[17]["total_cost"] = "1.00"
    return rows


def _verdicts(rows: list[dict[str, str]]) -> list[str | None]:
    return [
        expected_reason(
            r, customers=list(CUSTOMERS), stores=list(STORES), sales_team=list(SALES_TEAM)
        )
        for r in rows
    ]


def _create_tutorial_tables(database_url: str) -> None:
    """The tutorial's DDL; on SQLite with its spelling of an auto-increment key."""
    eng = make_engine(database_url)
    try:
        with eng.begin() as conn:
            for ddl in TUTORIAL_DDL:
                if eng.dialect.name == "sqlite":
                    ddl = ddl.replace(
                        "INT AUTO_INCREMENT PRIMARY KEY", "INTEGER PRIMARY KEY AUTOINCREMENT"
                    )
                conn.execute(text(ddl))
    finally:
        eng.dispose()


# What a tutorial-made MariaDB table cannot hold is refused by the loader, with its line and
# column, before the database sees it (our own tables are wider: BIGINT, VARCHAR(100), ...).
TUTORIAL_LIMITS = [
    ("customer", "first_name", "x" * 51, "longer than 50 characters"),
    ("customer", "customer_id", "2147483648", "outside the column's range"),
    ("sales_team", "manager_id", "-2147483649", "outside the column's range"),
    ("product", "current_price", "123456789", "more than 8 digits before the decimal point"),
    ("product", "created_date", "1969-12-31 23:59:59", "outside the range of a MySQL TIMESTAMP"),
    ("product", "updated_date", "2038-01-19 03:14:08", "outside the range of a MySQL TIMESTAMP"),
    ("product", "created_date", "2023-01-01 10:00:00.5", "fractional-second digits"),
]


@pytest.mark.parametrize(("table_name", "column", "raw", "words"), TUTORIAL_LIMITS)
def test_values_a_tutorial_table_cannot_hold_are_refused_on_mariadb(
    mysql_url: str, tmp_path: Path, table_name: str, column: str, raw: str, words: str
) -> None:
    _create_tutorial_tables(mysql_url)
    eng = make_engine(mysql_url)
    try:
        _assert_refused(eng, tmp_path, table_name, column, raw, words)
        # the widest values it can hold go in
        fits = (
            {
                "first_name": "x" * 50,
                "customer_id": "2147483647",
                "manager_id": "-2147483648",
                "current_price": "99999999.99",
                "created_date": "1970-01-01 00:00:01",
                "updated_date": "2038-01-19 03:14:07",
            }[column]
            if raw != "2023-01-01 10:00:00.5"
            else "2023-01-01 10:00:00"
        )
        path = _one_row_file(tmp_path, table_name, {column: fits})
        assert load_dimension_file(eng, table_name, path) == 1
        with eng.connect() as conn:
            got = conn.execute(select(DIMENSION_TABLES[table_name].c[column])).scalar_one()
        assert str(got) in (fits, f"{fits[:10]} {fits[11:]}")
    finally:
        eng.dispose()


def _column_types(mariadb, database: str) -> dict[tuple[str, str], tuple[str, str]]:
    with mariadb.root_connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT table_name, column_name, column_type, extra FROM information_schema.columns "
            "WHERE table_schema = %s",
            (database,),
        )
        return {(t, c): (ty.lower(), extra.lower()) for t, c, ty, extra in cur.fetchall()}


def test_the_flow_users_select_grant_is_enough_to_check_columns(mysql_url: str, mariadb) -> None:
    """The run's user (SELECT on the dimension tables only, docs/s3-mysql.md) can be checked."""
    _create_tutorial_tables(mysql_url)
    database = mysql_url.rsplit("/", 1)[1]
    with mariadb.root_connect() as conn, conn.cursor() as cur:
        cur.execute(f"ALTER TABLE `{database}`.store DROP COLUMN store_manager_name")
    user, password = mariadb.create_user(
        [f"SELECT ON `{database}`.`{t}`" for t in ("customer", "store", "sales_team", "product")]
    )
    eng = make_engine(mariadb.url(database, user, password))
    try:
        with pytest.raises(
            ConfigError, match="'store' has no column 'store_manager_name'"
        ) as caught:
            check_dimension_columns(eng)
        assert password not in str(caught.value) and "***" in str(caught.value)
    finally:
        eng.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "sqlite+tutorial-ddl", "mariadb+tutorial-ddl"])
def test_tutorial_dimensions_and_a_batch_through_the_flow(
    backend: str, tmp_path: Path, spark, prefect_api, request: pytest.FixtureRequest
) -> None:
    """The tutorial's rows as an export, loaded into the product's own tables (SQLite) or into
    tables made by the tutorial's DDL (SQLite, MariaDB), then one batch through the flow."""
    from sales_etl.flows.sales_flow import sales_etl_flow

    if backend.startswith("mariadb"):
        mariadb = request.getfixturevalue("mariadb")
        database_url = mariadb.new_database("tutorial")
        database = database_url.rsplit("/", 1)[1]
        _create_tutorial_tables(database_url)
        made = _column_types(mariadb, database)
    else:
        database_url = f"sqlite:///{tmp_path / 'etl.db'}"
        if backend.endswith("tutorial-ddl"):
            _create_tutorial_tables(database_url)

    eng = make_engine(database_url)
    try:
        outcomes = init_db(eng)
        expected_dims = LEFT_AS_IS if backend.endswith("tutorial-ddl") else CREATED
        assert {t: outcomes[t] for t in DIMENSION_TABLES} == dict.fromkeys(
            DIMENSION_TABLES, expected_dims
        )
        assert outcomes["staging_files"] == CREATED
        check_dimension_columns(eng)
        counts = load_dimensions(eng, write_tutorial_export(tmp_path / "dims"))
        assert counts == {"customer": 25, "store": 4, "sales_team": 10, "product": 8}
        _assert_tutorial_values(eng)
    finally:
        eng.dispose()
    if backend.startswith("mariadb"):
        after = _column_types(mariadb, database)
        assert {k: after[k] for k in TUTORIAL_COLUMN_TYPES} == TUTORIAL_COLUMN_TYPES
        assert {k: v for k, v in after.items() if k[0] in DIMENSION_TABLES} == {
            k: v for k, v in made.items() if k[0] in DIMENSION_TABLES
        }

    sales = _sales()
    verdicts = _verdicts(sales)
    assert verdicts.count(None) == len(sales) - 4  # the oracle sees the four planted faults
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=SALES_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(sales)
    landing, marts = tmp_path / "landing", tmp_path / "marts"
    write_bytes(landing / "to_process" / "sales_2023_03.csv", out.getvalue().encode())
    marts.mkdir()

    summary = sales_etl_flow(landing=str(landing), marts=str(marts), database_url=database_url)
    assert (summary["rows_total"], summary["rows_loaded"], summary["rows_quarantined"]) == (
        len(sales),
        verdicts.count(None),
        len(sales) - verdicts.count(None),
    )

    loaded = [r for r, v in zip(sales, verdicts, strict=True) if v is None]
    assert_reporting_tables_match(
        lambda table: read_table(database_url, table), loaded, CUSTOMERS, SALES_TEAM
    )

    customer_mart = read_parquet_rows(marts / "customer_data_mart")
    contact = ("customer_id", "first_name", "last_name", "address", "pincode", "phone_number")
    assert Counter(
        tuple(r[c] for c in (*contact, "sales_date", "total_cost")) for r in customer_mart
    ) == Counter(
        (
            int(r["customer_id"]),
            *CUSTOMERS[int(r["customer_id"])][:2],
            "Delhi",
            "122009",
            CUSTOMERS[int(r["customer_id"])][2],
            dt.date.fromisoformat(r["sales_date"]),
            Decimal(r["total_cost"]),
        )
        for r in loaded
    )
    team_mart = read_parquet_rows(marts / "sales_team_data_mart")
    assert Counter(
        (
            r["sales_person_id"],
            r["first_name"],
            r["last_name"],
            r["manager_id"],
            r["is_manager"],
            str(r["store_id"]),
            r["store_manager_name"],
            r["total_cost"],
            r["sales_month"],
        )
        for r in team_mart
    ) == Counter(
        (
            int(r["sales_person_id"]),
            *SALES_TEAM[int(r["sales_person_id"])],
            10,
            "Y" if r["sales_person_id"] == "10" else "N",
            r["store_id"],
            STORES[int(r["store_id"])][1],
            Decimal(r["total_cost"]),
            r["sales_date"][:7],
        )
        for r in loaded
    )
    quarantine = read_parquet_rows(marts / "quarantine")
    assert sorted(r["reason"] for r in quarantine) == sorted(v for v in verdicts if v is not None)
