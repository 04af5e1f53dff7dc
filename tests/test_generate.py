"""Tests of the synthetic data generator, checked by re-reading its output with the csv module."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import re
from collections import Counter
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest

from sales_etl.db.schema import DIMENSION_TABLES
from sales_etl.generate import (
    BAD_ROW_KINDS,
    EXTRA_COLUMNS,
    SALES_COLUMNS,
    generate_bad_files,
    generate_dataset,
    generate_dimensions,
    generate_sales_files,
    product_catalog,
)

HEADER = "customer_id,store_id,product_name,sales_date,sales_person_id,price,quantity,total_cost"


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV file, read with the csv module (UTF-8, BOM tolerated)."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def first_line(path: Path) -> str:
    with path.open("rb") as handle:
        return handle.readline().decode("utf-8").rstrip("\n")


class Dimensions:
    """The generated dimension CSVs, as the checks below need them."""

    def __init__(self, folder: Path) -> None:
        _, customers = read_csv(folder / "customer.csv")
        _, stores = read_csv(folder / "store.csv")
        _, team = read_csv(folder / "sales_team.csv")
        _, products = read_csv(folder / "product.csv")
        self.customer_ids = {int(r["customer_id"]) for r in customers}
        self.store_ids = {int(r["id"]) for r in stores}
        self.person_manager = {int(r["id"]): int(r["manager_id"]) for r in team}
        self.prices = {r["name"]: Decimal(r["current_price"]) for r in products}


def _integer(text: str) -> int | None:
    return int(text) if re.fullmatch(r"-?[0-9]+", text) else None


def _decimal(text: str) -> Decimal | None:
    if not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
        return None


def violation(row: dict[str, str], dims: Dimensions) -> str | None:
    """The first input rule (DESIGN.md, "Input rules") ``row`` breaks, or None for a good row."""
    customer = _integer(row["customer_id"])
    if customer is None:
        return "customer_id"
    if customer not in dims.customer_ids:
        return "unknown customer"
    store = _integer(row["store_id"])
    if store is None or store not in dims.store_ids:
        return "store_id"
    person = _integer(row["sales_person_id"])
    if person is None or person not in dims.person_manager:
        return "sales_person_id"
    if row["product_name"] not in dims.prices:
        return "product_name"
    try:
        dt.date.fromisoformat(row["sales_date"])
    except ValueError:
        return "sales_date"
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", row["sales_date"]):
        return "sales_date"
    price = _decimal(row["price"])
    total = _decimal(row["total_cost"])
    quantity = _integer(row["quantity"])
    if price is None or total is None or quantity is None:
        return "number"
    if quantity <= 0 or price < 0:
        return "quantity or price"
    if abs(total - price * quantity) > Decimal("0.01"):
        return "total_cost"
    return None


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A small dataset with bad rows, made in several chunks per file."""
    out = tmp_path_factory.mktemp("dataset")
    dims_dir = out / "dimensions"
    generate_dimensions(dims_dir, customers=60, stores=3, products=12, seed=11)
    files = generate_sales_files(
        out / "sales",
        rows=6001,
        files=3,
        customers=60,
        stores=3,
        products=12,
        start="2024-03-01",
        months=2,
        seed=11,
        bad_row_fraction=0.2,
        chunk_rows=700,
    )
    return {"dims": Dimensions(dims_dir), "files": files, "dims_dir": dims_dir}


# --- sales files -------------------------------------------------------------------------------


def test_sales_files_names_header_and_row_counts(tmp_path: Path) -> None:
    files = generate_sales_files(tmp_path, rows=1001, files=3, seed=1, file_prefix="day1")
    assert [p.name for p in files] == ["day1_0000.csv", "day1_0001.csv", "day1_0002.csv"]
    counts = []
    for path in files:
        assert first_line(path) == HEADER
        header, rows = read_csv(path)
        assert header == list(SALES_COLUMNS)
        counts.append(len(rows))
    assert counts == [334, 334, 333]


def test_good_rows_are_consistent_with_the_dimensions(tmp_path: Path) -> None:
    dims_dir = tmp_path / "dims"
    generate_dimensions(dims_dir, customers=40, stores=4, sales_people=10, products=30, seed=5)
    dims = Dimensions(dims_dir)
    files = generate_sales_files(
        tmp_path / "sales",
        rows=3000,
        files=2,
        customers=40,
        stores=4,
        sales_people=10,
        products=30,
        start="2024-01-31",
        months=1,
        seed=5,
        chunk_rows=1000,
    )
    seen_dates = set()
    for path in files:
        _, rows = read_csv(path)
        for row in rows:
            assert violation(row, dims) is None, row
            price, quantity = Decimal(row["price"]), int(row["quantity"])
            assert price == dims.prices[row["product_name"]]
            assert 1 <= quantity <= 10
            assert Decimal(row["total_cost"]) == price * quantity  # exact, not within a cent
            assert re.fullmatch(r"[0-9]+\.[0-9]{2}", row["total_cost"])
            assert re.fullmatch(r"[0-9]+\.[0-9]{2}", row["price"])
            # the seller works in that store: their manager is the store's manager (person = store)
            assert dims.person_manager[int(row["sales_person_id"])] == int(row["store_id"])
            seen_dates.add(dt.date.fromisoformat(row["sales_date"]))
    # [2024-01-31, 2024-02-29): one month from the 31st ends on the last day of February.
    assert min(seen_dates) == dt.date(2024, 1, 31)
    assert max(seen_dates) == dt.date(2024, 2, 28)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    def make(folder: str, seed: int) -> list[bytes]:
        paths = generate_sales_files(
            tmp_path / folder, rows=2500, files=2, seed=seed, bad_row_fraction=0.1, chunk_rows=600
        )
        paths += generate_dimensions(tmp_path / folder / "dims", seed=seed).values()
        return [p.read_bytes() for p in paths]

    first, again, other = make("a", 3), make("b", 3), make("c", 4)
    assert first == again
    assert first != other


def test_bad_rows_roughly_honour_the_fraction_and_all_break_a_rule(dataset: dict) -> None:
    reasons: Counter[str] = Counter()
    total = 0
    for path in dataset["files"]:
        _, rows = read_csv(path)
        total += len(rows)
        for row in rows:
            reason = violation(row, dataset["dims"])
            if reason is not None:
                reasons[reason] += 1
    assert total == 6001
    bad = sum(reasons.values())
    assert 0.17 * total < bad < 0.23 * total  # 0.2 expected; sd of the count is ~31 rows
    # every corruption kind shows up, each one caught by the rule it is meant to break
    assert set(reasons) == {
        "unknown customer",
        "customer_id",
        "sales_date",
        "number",
        "quantity or price",
        "total_cost",
    }
    assert len(BAD_ROW_KINDS) == 6


def test_every_corrupted_row_is_detected(tmp_path: Path) -> None:
    result = generate_dataset(
        tmp_path, rows=4000, files=2, customers=30, stores=2, products=8, bad_row_fraction=0.15
    )
    dims = Dimensions(result["dimensions_dir"])
    detected = 0
    for path in result["sales_files"]:
        _, rows = read_csv(path)
        detected += sum(violation(row, dims) is not None for row in rows)
    assert result["counts"]["bad_rows"] > 0
    # good rows all pass (checked above), so equal counts mean every corrupted row breaks a rule
    assert detected == result["counts"]["bad_rows"]


def test_extra_columns(tmp_path: Path) -> None:
    (path,) = generate_sales_files(tmp_path, rows=200, files=1, extra_columns=True)
    assert first_line(path) == HEADER + ",payment_mode,coupon_code"
    header, rows = read_csv(path)
    assert header == list(SALES_COLUMNS + EXTRA_COLUMNS)
    assert len(rows) == 200
    assert {r["payment_mode"] for r in rows} <= {"cash", "upi", "card", "net_banking", "wallet"}
    assert "" in {r["coupon_code"] for r in rows}


def test_explicit_product_list_with_characters_that_need_quoting(tmp_path: Path) -> None:
    products = [("pen, blue", "10.50"), ('say "cheese"', 3), ("plain", Decimal("0.10"))]
    (path,) = generate_sales_files(tmp_path, rows=300, files=1, products=products)
    _, rows = read_csv(path)
    prices = {name: Decimal(str(price)) for name, price in products}
    assert {r["product_name"] for r in rows} == set(prices)
    for row in rows:
        assert Decimal(row["price"]) == prices[row["product_name"]]
        assert Decimal(row["total_cost"]) == prices[row["product_name"]] * int(row["quantity"])


def test_zero_rows_gives_header_only_files(tmp_path: Path) -> None:
    files = generate_sales_files(tmp_path, rows=0, files=2)
    assert [p.read_text() for p in files] == [HEADER + "\n", HEADER + "\n"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rows": -1},
        {"files": 0},
        {"customers": 0},
        {"bad_row_fraction": 1.5},
        {"months": 0},
        {"products": [("a", "1.001")]},
        {"products": [("a", "1"), ("a", "2")]},
        {"products": []},
        {"file_prefix": "../x"},
    ],
)
def test_invalid_arguments_are_refused(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        generate_sales_files(tmp_path, **kwargs)


# --- dimensions --------------------------------------------------------------------------------


def test_dimension_files_match_the_tables(tmp_path: Path) -> None:
    paths = generate_dimensions(tmp_path, customers=500, stores=6, products=140, seed=2)
    assert {name: p.name for name, p in paths.items()} == {
        "customer": "customer.csv",
        "store": "store.csv",
        "sales_team": "sales_team.csv",
        "product": "product.csv",
    }
    sizes = {"customer": 500, "store": 6, "sales_team": 24, "product": 140}
    tables = {}
    for name, path in paths.items():
        header, rows = read_csv(path)
        assert header == [c.name for c in DIMENSION_TABLES[name].columns]
        key = header[0]
        assert [int(r[key]) for r in rows] == list(range(1, sizes[name] + 1))
        tables[name] = rows

    for row in tables["customer"]:
        assert re.fullmatch(r"[1-8][0-9]{5}", row["pincode"])
        assert re.fullmatch(r"[6-9][0-9]{9}", row["phone_number"])
        dt.date.fromisoformat(row["customer_joining_date"])
        assert row["first_name"] and row["last_name"] and "," in row["address"]

    team = {int(r["id"]): r for r in tables["sales_team"]}
    managers = {i for i, r in team.items() if r["is_manager"] == "Y"}
    assert {r["is_manager"] for r in team.values()} == {"Y", "N"}
    assert len(managers) == 6
    assert all(int(r["manager_id"]) in managers for r in team.values())
    for store in tables["store"]:
        manager = team[int(store["id"])]
        assert store["store_manager_name"] == f"{manager['first_name']} {manager['last_name']}"

    names = [r["name"] for r in tables["product"]]
    assert len(set(names)) == len(names)
    for row in tables["product"]:
        assert re.fullmatch(r"[0-9]+\.[0-9]{2}", row["current_price"])
        assert re.fullmatch(r"[0-9]+\.[0-9]{2}", row["old_price"])
        assert row["updated_date"] == "" or dt.date.fromisoformat(row["updated_date"])
    assert "" in {r["updated_date"] for r in tables["product"]}


def test_product_catalogue_is_shared_by_dimensions_and_sales(tmp_path: Path) -> None:
    generate_dimensions(tmp_path, customers=7, stores=1, products=20, seed=9)
    _, rows = read_csv(tmp_path / "product.csv")
    from_file = [(r["name"], Decimal(r["current_price"])) for r in rows]
    assert from_file == product_catalog(20, seed=9)
    assert product_catalog(20, seed=9) != product_catalog(20, seed=10)


# --- rejected-file examples and the whole dataset ----------------------------------------------


def test_bad_files(tmp_path: Path) -> None:
    paths = {p.name: p for p in generate_bad_files(tmp_path, seed=1)}
    assert set(paths) == {
        "notes.json",
        "sales_missing_column.csv",
        "sales_empty.csv",
        "sales_binary.csv",
        "sales_header_only.csv",
    }
    assert json.loads(paths["notes.json"].read_text())
    header, rows = read_csv(paths["sales_missing_column.csv"])
    assert "total_cost" not in header and set(header) < set(SALES_COLUMNS) and rows
    assert paths["sales_empty.csv"].stat().st_size == 0
    binary = paths["sales_binary.csv"].read_bytes()
    assert binary[:2] == b"\x1f\x8b"
    with pytest.raises(UnicodeDecodeError):
        binary.decode("utf-8")
    assert gzip.decompress(binary).decode("utf-8").startswith(HEADER + "\n")
    assert paths["sales_header_only.csv"].read_text() == HEADER + "\n"
    again = {p.name: p.read_bytes() for p in generate_bad_files(tmp_path / "again", seed=1)}
    assert again == {name: p.read_bytes() for name, p in paths.items()}


def test_generate_dataset_layout_and_counts(tmp_path: Path) -> None:
    result = generate_dataset(
        tmp_path,
        rows=500,
        files=2,
        customers=20,
        stores=2,
        products=5,
        months=1,
        seed=0,
        bad_row_fraction=0.0,
        extra_columns=True,
        bad_files=True,
    )
    assert result["dimensions_dir"] == tmp_path / "dimensions"
    assert sorted(p.name for p in (tmp_path / "dimensions").iterdir()) == [
        "customer.csv",
        "product.csv",
        "sales_team.csv",
        "store.csv",
    ]
    assert [p.name for p in result["sales_files"]] == ["sales_0000.csv", "sales_0001.csv"]
    assert len(result["bad_files"]) == 5
    assert all(p.parent == tmp_path / "sales" for p in result["sales_files"] + result["bad_files"])
    assert result["counts"] == {
        "customers": 20,
        "stores": 2,
        "sales_people": 8,
        "products": 5,
        "rows": 500,
        "bad_rows": 0,
        "files": 2,
    }
    assert sum(len(read_csv(p)[1]) for p in result["sales_files"]) == 500
