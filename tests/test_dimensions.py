"""Tests of loading the dimension CSV files into a real SQLite database file."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, Table, create_mock_engine, func, select
from sqlalchemy.dialects import mysql

from sales_etl.db.dimensions import (
    DIMENSION_FILES,
    DimensionLoadError,
    MissingDimensionFilesError,
    _upsert_statement,
    load_dimension_file,
    load_dimensions,
)
from sales_etl.db.engine import init_db, make_engine
from sales_etl.db.schema import customer, product, sales_team, store
from sales_etl.generate import generate_dimensions

CUSTOMER_HEADER = [
    "customer_id",
    "first_name",
    "last_name",
    "address",
    "pincode",
    "phone_number",
    "customer_joining_date",
]
CUSTOMERS = [
    ["1", "Saurabh", "Jain", "12, MG Road, Delhi", "110001", "9999988888", "2020-01-15"],
    ["2", "Priya", "Nair", "Park Street\nKolkata", "700016", "", "2021-06-30"],
    ["3", "Amit", "Rao", "Pune", "411001", "9876543210", ""],
]
STORES = [
    ["id", "address", "store_pincode", "store_manager_name", "store_opening_date", "reviews"],
    ["121", "Delhi", "122009", "Manish", "2022-01-15", "Great store, friendly staff"],
]
SALES_TEAM = [
    [
        "id",
        "first_name",
        "last_name",
        "manager_id",
        "is_manager",
        "address",
        "pincode",
        "joining_date",
    ],
    ["1", "Rahul", "Verma", "2", "N", "Delhi", "122007", "2020-05-01"],
    ["2", "Rajesh", "Gupta", "2", "Y", "Delhi", "122007", "2020-05-01"],
]
PRODUCTS = [
    ["id", "name", "current_price", "old_price", "created_date", "updated_date", "expiry_date"],
    ["1", "quaker oats", "212", "212", "2022-05-15", "", "2025-01-01"],
    ["2", "sugar", "0.10", "0.1", "2022-05-15", "2023-01-01", "2025-01-01"],
    ["3", "ghee", "1234567890.99", "-1.50", "2022-05-15", "", "2025-01-01"],
]


def write_csv(path: Path, rows: list[list[str]], *, bom: bool = False, crlf: bool = False) -> None:
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\r\n" if crlf else "\n").writerows(rows)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'db' / 'etl.db'}")
    init_db(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def dims_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "dims"
    folder.mkdir()
    write_csv(folder / "customer.csv", [CUSTOMER_HEADER, *CUSTOMERS], bom=True, crlf=True)
    write_csv(folder / "store.csv", STORES)
    write_csv(folder / "sales_team.csv", SALES_TEAM)
    write_csv(folder / "product.csv", PRODUCTS)
    return folder


def count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_loads_every_table_with_typed_values(engine: Engine, dims_dir: Path) -> None:
    assert load_dimensions(engine, dims_dir) == {
        "customer": 3,
        "store": 1,
        "sales_team": 2,
        "product": 3,
    }
    with engine.connect() as conn:
        customers = conn.execute(select(customer).order_by(customer.c.customer_id)).all()
        products = {r.id: r for r in conn.execute(select(product))}
        manager = conn.execute(select(sales_team).where(sales_team.c.id == 2)).one()
        shop = conn.execute(select(store)).one()
    assert customers[0].address == "12, MG Road, Delhi"  # quoted comma, BOM and CRLF file
    assert customers[0].customer_joining_date == dt.date(2020, 1, 15)
    assert customers[1].address == "Park Street\nKolkata"  # newline inside a quoted field
    assert customers[1].phone_number is None  # empty -> NULL
    assert customers[2].customer_joining_date is None
    assert customers[0].pincode == "110001"  # strings stay strings (no int conversion)
    assert products[2].current_price == Decimal("0.10")  # exact, not 0.1000000000000000055...
    assert str(products[2].current_price) == "0.10"
    assert products[2].old_price == Decimal("0.10")
    assert products[1].current_price == Decimal("212.00")
    assert products[3].current_price == Decimal("1234567890.99")
    assert products[3].old_price == Decimal("-1.50")
    assert products[1].updated_date is None
    assert products[2].updated_date == dt.datetime(2023, 1, 1)  # a timestamp column (tutorial)
    assert (manager.manager_id, manager.is_manager) == (2, "Y")
    assert shop.id == 121 and shop.reviews == "Great store, friendly staff"


def test_loading_twice_updates_by_primary_key(engine: Engine, dims_dir: Path) -> None:
    load_dimensions(engine, dims_dir)
    changed = [row.copy() for row in CUSTOMERS]
    changed[0][1] = "Saurav"
    changed[2][6] = "2022-02-02"
    write_csv(dims_dir / "customer.csv", [CUSTOMER_HEADER, *changed])
    assert load_dimensions(engine, dims_dir)["customer"] == 3
    assert count(engine, customer) == 3
    assert count(engine, product) == 3
    with engine.connect() as conn:
        rows = {r.customer_id: r for r in conn.execute(select(customer))}
    assert rows[1].first_name == "Saurav"
    assert rows[3].customer_joining_date == dt.date(2022, 2, 2)
    assert rows[2].first_name == "Priya"

    # a new id is inserted next to the existing ones
    write_csv(
        dims_dir / "customer.csv",
        [CUSTOMER_HEADER, ["4", "Neha", "Das", "Goa", "403001", "", "2024-01-01"]],
    )
    load_dimensions(engine, dims_dir)
    assert count(engine, customer) == 4


def test_batches_cover_every_row(engine: Engine, tmp_path: Path) -> None:
    rows = [[str(i), f"n{i}", "x", "a", "1", "2", "2024-01-01"] for i in range(1, 26)]
    path = tmp_path / "customer.csv"
    write_csv(path, [CUSTOMER_HEADER, *rows])
    assert load_dimension_file(engine, "customer", path, batch_size=10) == 25
    assert count(engine, customer) == 25


def test_bad_value_names_file_line_and_column_and_writes_nothing(
    engine: Engine, dims_dir: Path
) -> None:
    load_dimensions(engine, dims_dir)
    rows = [[str(i), "New", "Name", "a", "1", "2", "2024-01-01"] for i in range(1, 8)]
    rows[4][6] = "2024-02-30"  # record 5 is on line 6 (line 1 is the header)
    write_csv(dims_dir / "customer.csv", [CUSTOMER_HEADER, *rows])
    with pytest.raises(DimensionLoadError) as caught:
        load_dimensions(engine, dims_dir, batch_size=2)  # two batches were sent before the error
    error = caught.value
    assert (error.file_name, error.line, error.column) == (
        "customer.csv",
        6,
        "customer_joining_date",
    )
    assert "customer.csv" in str(error) and "line 6" in str(error) and "2024-02-30" in str(error)
    # rolled back: the earlier load is untouched, nothing of the bad file is there
    assert count(engine, customer) == 3
    with engine.connect() as conn:
        names = set(conn.execute(select(customer.c.first_name)).scalars())
    assert names == {"Saurabh", "Priya", "Amit"}


def test_line_number_counts_physical_lines_of_multiline_records(
    engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "customer.csv"
    write_csv(
        path,
        [
            CUSTOMER_HEADER,
            ["1", "A", "B", "line one\nline two\nline three", "1", "2", "2024-01-01"],
            ["2", "A", "B", "x", "1", "2", "2024-13-01"],
        ],
    )
    with pytest.raises(DimensionLoadError) as caught:
        load_dimension_file(engine, "customer", path)
    assert caught.value.line == 5
    assert count(engine, customer) == 0


@pytest.mark.parametrize(
    ("file_name", "column", "value"),
    [
        ("customer.csv", "customer_id", "12a"),
        ("customer.csv", "customer_id", "1_000"),
        ("customer.csv", "customer_id", ""),  # empty primary key
        ("customer.csv", "customer_joining_date", "20240101"),
        ("customer.csv", "customer_joining_date", "2024-W01-1"),
        ("customer.csv", "first_name", "x" * 101),
        ("sales_team.csv", "is_manager", "YES"),
        ("sales_team.csv", "manager_id", "1.5"),
        ("product.csv", "current_price", "abc"),
        ("product.csv", "current_price", "1.234"),
        ("product.csv", "current_price", "NaN"),
        ("product.csv", "current_price", "1e3"),
        ("product.csv", "old_price", "12345678901"),
    ],
)
def test_bad_values_are_refused(
    engine: Engine, dims_dir: Path, file_name: str, column: str, value: str
) -> None:
    path = dims_dir / file_name
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    rows[2][rows[0].index(column)] = value
    write_csv(path, rows)
    with pytest.raises(DimensionLoadError) as caught:
        load_dimensions(engine, dims_dir)
    assert (caught.value.file_name, caught.value.line, caught.value.column) == (
        file_name,
        3,
        column,
    )


def test_wrong_number_of_fields(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "customer.csv"
    write_csv(path, [CUSTOMER_HEADER, CUSTOMERS[0], CUSTOMERS[2][:-1]])
    with pytest.raises(DimensionLoadError, match="6 fields") as caught:
        load_dimension_file(engine, "customer", path)
    assert caught.value.line == 3
    assert count(engine, customer) == 0


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (CUSTOMER_HEADER[:-1], "missing customer_joining_date"),
        ([*CUSTOMER_HEADER, "email"], "unknown email"),
        (["customerid", *CUSTOMER_HEADER[1:]], "missing customer_id"),
    ],
)
def test_header_must_match_the_table(
    engine: Engine, tmp_path: Path, header: list[str], message: str
) -> None:
    path = tmp_path / "customer.csv"
    write_csv(path, [header])
    with pytest.raises(DimensionLoadError, match=message) as caught:
        load_dimension_file(engine, "customer", path)
    assert caught.value.line == 1


def test_a_file_without_a_header_row_is_told_so(engine: Engine, tmp_path: Path) -> None:
    """The tutorial's ``SELECT ... INTO OUTFILE`` writes no header: say that, not just
    "missing ... unknown 1, ..."."""
    path = tmp_path / "customer.csv"
    write_csv(path, [CUSTOMERS[0], CUSTOMERS[1]])
    with pytest.raises(DimensionLoadError) as caught:
        load_dimension_file(engine, "customer", path)
    assert caught.value.line == 1
    assert caught.value.hint == (
        "the file has no header row: make its first line " + ",".join(CUSTOMER_HEADER)
    )
    write_csv(path, [CUSTOMER_HEADER[:-1], CUSTOMERS[0][:-1]])
    with pytest.raises(DimensionLoadError) as caught:
        load_dimension_file(engine, "customer", path)
    assert caught.value.hint == "name the columns exactly as the table's (any order)"
    assert count(engine, customer) == 0


def test_a_key_repeated_in_one_file_is_refused_naming_both_lines(
    engine: Engine, tmp_path: Path
) -> None:
    """An upsert would keep the later row silently (and the count said one row more than the
    table got); the file is refused and nothing of it is written."""
    path = tmp_path / "customer.csv"
    again = [CUSTOMERS[0][0], "Other", "Person", *CUSTOMERS[0][3:]]
    write_csv(path, [CUSTOMER_HEADER, CUSTOMERS[0], CUSTOMERS[2], again])  # one line each
    with pytest.raises(DimensionLoadError) as caught:
        load_dimension_file(engine, "customer", path)
    error = caught.value
    assert (error.file_name, error.line, error.column) == ("customer.csv", 4, "customer_id")
    assert f"repeats customer_id {CUSTOMERS[0][0]} of line 2" in str(error)
    assert count(engine, customer) == 0


def test_header_may_come_in_any_order(engine: Engine, tmp_path: Path) -> None:
    order = list(reversed(CUSTOMER_HEADER))
    path = tmp_path / "customer.csv"
    write_csv(path, [order, list(reversed(CUSTOMERS[0]))])
    assert load_dimension_file(engine, "customer", path) == 1
    with engine.connect() as conn:
        assert conn.execute(select(customer.c.first_name)).scalar_one() == "Saurabh"


def test_not_utf8_is_refused(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "customer.csv"
    path.write_bytes(",".join(CUSTOMER_HEADER).encode() + b"\n1,J\xfcrgen,X,a,1,2,2024-01-01\n")
    with pytest.raises(DimensionLoadError, match="not UTF-8"):
        load_dimension_file(engine, "customer", path)


def test_missing_files_are_listed_and_nothing_is_loaded(engine: Engine, dims_dir: Path) -> None:
    (dims_dir / "store.csv").unlink()
    (dims_dir / "product.csv").unlink()
    with pytest.raises(MissingDimensionFilesError) as caught:
        load_dimensions(engine, dims_dir)
    assert caught.value.missing == ["store.csv", "product.csv"]
    assert "store.csv" in str(caught.value) and "product.csv" in str(caught.value)
    assert isinstance(caught.value, DimensionLoadError)
    assert count(engine, customer) == 0


def test_other_dialects_are_not_implemented(dims_dir: Path) -> None:
    postgres = create_mock_engine("postgresql://", lambda *args, **kwargs: None)
    with pytest.raises(NotImplementedError, match="postgresql"):
        load_dimensions(postgres, dims_dir)  # type: ignore[arg-type]


def test_mysql_upsert_is_on_duplicate_key_update() -> None:
    sql = str(_upsert_statement(product, "mysql").compile(dialect=mysql.dialect()))
    assert sql.startswith("INSERT INTO product")
    assert "ON DUPLICATE KEY UPDATE" in sql and "current_price = VALUES(current_price)" in sql
    assert "id = VALUES(id)" not in sql  # the key itself is never rewritten


def test_generated_dimensions_round_trip(engine: Engine, tmp_path: Path) -> None:
    paths = generate_dimensions(tmp_path / "gen", customers=3000, stores=4, products=60, seed=3)
    assert set(paths) == set(DIMENSION_FILES)
    counts = load_dimensions(engine, tmp_path / "gen")
    assert counts == {"customer": 3000, "store": 4, "sales_team": 16, "product": 60}
    assert count(engine, customer) == 3000
    with paths["product"].open(newline="") as handle:
        expected = {int(r["id"]): Decimal(r["current_price"]) for r in csv.DictReader(handle)}
    with engine.connect() as conn:
        query = select(product.c.id, product.c.current_price)
        loaded = {row.id: row.current_price for row in conn.execute(query)}
    assert loaded == expected
