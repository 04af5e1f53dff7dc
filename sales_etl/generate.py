"""Synthetic dimension CSVs and sales files for tests, demos and benchmarks.

Everything is numpy-vectorised and written with :func:`pyarrow.csv.write_csv`, so ten million
sales rows take seconds. Output depends only on the arguments and ``seed``: the same call writes
the same bytes. Each table draws from its own random stream (``numpy.random.default_rng([seed,
tag, ...])``), so e.g. the product catalogue (names and prices) is the same whether it is made by
:func:`generate_dimensions` or :func:`generate_sales_files`, whatever the other counts are.

Layout of the synthetic company (documented because tests rely on it):

- customers, stores, sales people and products have ids ``1..N``;
- sales person ``i`` works in store ``((i - 1) % stores) + 1``; people ``1..stores`` are the store
  managers (``is_manager = 'Y'``, ``manager_id`` = their own id) and everyone's ``manager_id`` is
  the manager of their store;
- a sale in store ``s`` is made by one of that store's people (any person when it has none).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from sales_etl.db.dimensions import DIMENSION_FILES
from sales_etl.db.schema import DIMENSION_TABLES
from sales_etl.validators.model import MANDATORY_COLUMNS

__all__ = [
    "BAD_ROW_KINDS",
    "CHUNK_ROWS",
    "EXTRA_COLUMNS",
    "INVALID_DATE",
    "NON_NUMERIC_PRICE",
    "SALES_COLUMNS",
    "UNKNOWN_CUSTOMER_OFFSET",
    "ProductSpec",
    "generate_bad_files",
    "generate_dataset",
    "generate_dimensions",
    "generate_sales_files",
    "product_catalog",
]

#: Mandatory sales columns, in the order the generator writes them.
SALES_COLUMNS: tuple[str, ...] = MANDATORY_COLUMNS
#: Extra columns written when ``extra_columns=True`` (they end up in ``additional_column``).
EXTRA_COLUMNS: tuple[str, ...] = ("payment_mode", "coupon_code")

#: How a bad row is corrupted; each bad row gets exactly one of these, uniformly at random.
BAD_ROW_KINDS: tuple[str, ...] = (
    "unknown_customer",  # customer_id = customers + UNKNOWN_CUSTOMER_OFFSET + k (not in the table)
    "bad_quantity",  # quantity 0, -1 or -2 (total_cost = price * quantity stays consistent)
    "total_mismatch",  # total_cost = price * quantity + 5.00
    "invalid_date",  # sales_date = INVALID_DATE
    "non_numeric_price",  # price = NON_NUMERIC_PRICE
    "missing_customer_id",  # customer_id empty
)
UNKNOWN_CUSTOMER_OFFSET = 1000
INVALID_DATE = "2024-02-30"
NON_NUMERIC_PRICE = "abc"

#: Rows generated (and held in memory) at a time. Part of the seed logic: changing it changes values.
CHUNK_ROWS = 1_000_000

#: A product list entry: ``(name, price)``; the price must have at most 2 decimal places.
ProductSpec = tuple[str, Decimal | str | int | float]

# Independent random streams, one per table / purpose.
_TAG_CUSTOMER = 1
_TAG_STORE = 2
_TAG_SALES_TEAM = 3
_TAG_CATALOG = 4
_TAG_PRODUCT = 5
_TAG_SALES = 6
_TAG_BAD_FILES = 7

_FIRST_NAMES = (
    "Aarav", "Aditya", "Amit", "Ananya", "Anjali", "Arjun", "Deepak", "Divya", "Gaurav", "Isha",
    "Kavya", "Lakshmi", "Manish", "Meera", "Neha", "Nikhil", "Pooja", "Priya", "Rahul", "Rajesh",
    "Riya", "Rohan", "Saanvi", "Sanjay", "Sneha", "Suresh", "Tanvi", "Varun", "Vikram", "Vivaan",
)  # fmt: skip
_LAST_NAMES = (
    "Banerjee", "Bose", "Chopra", "Das", "Gupta", "Iyer", "Joshi", "Kumar", "Malhotra", "Mehta",
    "Mukherjee", "Nair", "Patel", "Pillai", "Rao", "Reddy", "Sharma", "Singh", "Verma", "Yadav",
)  # fmt: skip
# City and the first three digits of its pincodes.
_CITIES = (
    ("Delhi", 110), ("Mumbai", 400), ("Bengaluru", 560), ("Chennai", 600), ("Kolkata", 700),
    ("Hyderabad", 500), ("Pune", 411), ("Ahmedabad", 380), ("Jaipur", 302), ("Lucknow", 226),
    ("Gurugram", 122), ("Noida", 201),
)  # fmt: skip
_STREETS = (
    "MG Road", "Station Road", "Park Street", "Nehru Nagar", "Gandhi Chowk", "Lajpat Nagar",
    "Civil Lines", "Sector 14", "Linking Road", "Brigade Road", "Anna Salai", "Rajpur Road",
)  # fmt: skip
_REVIEWS = (
    "Good service", "Clean store, friendly staff", "Long queues on weekends", "Well stocked",
    "Helpful staff, fair prices", "Parking is difficult", "Fresh vegetables every day",
    "Average experience",
)  # fmt: skip
_PRODUCT_BASES = (
    "quaker oats", "sugar", "maida", "besan", "refined oil", "clinic plus", "dantkanti",
    "nutrella", "basmati rice", "toor dal", "wheat atta", "tea", "coffee", "ghee", "salt",
    "biscuits", "bath soap", "toothpaste", "detergent", "mixed fruit jam", "tomato ketchup",
    "instant noodles", "paneer", "butter", "honey",
)  # fmt: skip
_PRODUCT_SIZES = ("", "500g", "1kg", "2kg", "5kg")
_PAYMENT_MODES = ("cash", "upi", "card", "net_banking", "wallet")
_COUPONS = ("", "", "", "", "SAVE10", "FESTIVE20", "NEWUSER50")

_CSV_SPECIALS = (",", '"', "\r", "\n")


# --- small helpers -----------------------------------------------------------------------------


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, *stream])


def _pick(values: Sequence[str], index: np.ndarray) -> pa.Array:
    """``values[index]`` as an Arrow string array."""
    return pa.array(values, pa.string()).take(pa.array(index))


def _to_text(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def _money(cents: np.ndarray, precision: int = 14) -> pa.Array:
    """Exact ``decimal128(precision, 2)`` array from integer cents (no float on the way)."""
    cents = np.ascontiguousarray(cents, dtype=np.int64)
    words = np.empty((cents.size, 2), dtype=np.int64)  # little-endian 128-bit: low, high word
    words[:, 0] = cents
    words[:, 1] = cents >> 63
    return pa.Array.from_buffers(
        pa.decimal128(precision, 2), cents.size, [None, pa.py_buffer(words)]
    )


def _dates(start: dt.date, offsets: np.ndarray) -> pa.Array:
    return pa.array(np.datetime64(start, "D") + offsets.astype("timedelta64[D]"))


def _random_dates(rng: np.random.Generator, first: dt.date, last: dt.date, n: int) -> pa.Array:
    """``n`` dates uniformly in ``[first, last]``."""
    return _dates(first, rng.integers(0, (last - first).days + 1, n))


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    last_day = (dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)).day
    return dt.date(year, month, min(day.day, last_day))


def _as_date(value: str | dt.date) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value)


def _positive(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _write_csv(path: Path, table: pa.Table, quoting: str) -> None:
    """Write ``table`` with a plain (unquoted) header line and pyarrow's fast row writer."""
    with path.open("wb") as handle:
        handle.write((",".join(table.column_names) + "\n").encode("utf-8"))
        if table.num_rows:
            pacsv.write_csv(
                table,
                handle,
                pacsv.WriteOptions(include_header=False, quoting_style=quoting, batch_size=65_536),
            )


def _check_columns(table_name: str, table: pa.Table) -> pa.Table:
    expected = [c.name for c in DIMENSION_TABLES[table_name].columns]
    assert table.column_names == expected, (table_name, table.column_names, expected)
    return table


# --- product catalogue -------------------------------------------------------------------------


def _catalog(products: int | Sequence[ProductSpec], seed: int) -> tuple[list[str], np.ndarray]:
    """Product names and prices in cents, from a count (seeded) or an explicit list."""
    if isinstance(products, int | np.integer) and not isinstance(products, bool):
        count = _positive("products", int(products))
        names = []
        for i in range(count):
            base = _PRODUCT_BASES[i % len(_PRODUCT_BASES)]
            variant = i // len(_PRODUCT_BASES)
            if variant == 0:
                names.append(base)
            elif variant < len(_PRODUCT_SIZES):
                names.append(f"{base} {_PRODUCT_SIZES[variant]}")
            else:
                names.append(f"{base} pack {variant}")
        rng = _rng(seed, _TAG_CATALOG)
        rupees = rng.integers(10, 600, count)
        paise = np.array([0, 0, 50, 99])[rng.integers(0, 4, count)]
        return names, (rupees * 100 + paise).astype(np.int64)
    names = []
    cents = []
    for entry in products:
        name, price = entry
        if not isinstance(name, str) or not name:
            raise ValueError(f"product name must be a non-empty string, got {name!r}")
        try:
            exact = Decimal(str(price))
        except InvalidOperation:
            raise ValueError(f"price of {name!r} is not a number: {price!r}") from None
        if not exact.is_finite() or exact < 0 or exact != exact.quantize(Decimal("0.01")):
            raise ValueError(f"price of {name!r} must be >= 0 with at most 2 decimals: {price!r}")
        names.append(name)
        cents.append(int(exact * 100))
    if not names:
        raise ValueError("products must not be empty")
    if len(set(names)) != len(names):
        raise ValueError("product names must be unique")
    return names, np.array(cents, dtype=np.int64)


def product_catalog(
    products: int | Sequence[ProductSpec] = 50, seed: int = 0
) -> list[tuple[str, Decimal]]:
    """``(name, current_price)`` of every product, in id order (id = position + 1)."""
    names, cents = _catalog(products, seed)
    return [(n, Decimal(int(c)).scaleb(-2)) for n, c in zip(names, cents, strict=True)]


# --- dimensions --------------------------------------------------------------------------------


def _customer_table(count: int, seed: int) -> pa.Table:
    rng = _rng(seed, _TAG_CUSTOMER)
    city = rng.integers(0, len(_CITIES), count)
    prefixes = np.array([p for _, p in _CITIES], dtype=np.int64)
    address = pc.binary_join_element_wise(
        _to_text(rng.integers(1, 500, count)),
        _pick(_STREETS, rng.integers(0, len(_STREETS), count)),
        _pick([c for c, _ in _CITIES], city),
        ", ",
    )
    return _check_columns(
        "customer",
        pa.table(
            {
                "customer_id": pa.array(np.arange(1, count + 1, dtype=np.int64)),
                "first_name": _pick(_FIRST_NAMES, rng.integers(0, len(_FIRST_NAMES), count)),
                "last_name": _pick(_LAST_NAMES, rng.integers(0, len(_LAST_NAMES), count)),
                "address": address,
                "pincode": _to_text(prefixes[city] * 1000 + rng.integers(1, 100, count)),
                "phone_number": _to_text(rng.integers(6_000_000_000, 10_000_000_000, count)),
                "customer_joining_date": _random_dates(
                    rng, dt.date(2018, 1, 1), dt.date(2023, 12, 31), count
                ),
            }
        ),
    )


def _sales_team_table(people: int, stores: int, seed: int) -> pa.Table:
    rng = _rng(seed, _TAG_SALES_TEAM)
    ids = np.arange(1, people + 1, dtype=np.int64)
    city = rng.integers(0, len(_CITIES), people)
    prefixes = np.array([p for _, p in _CITIES], dtype=np.int64)
    return _check_columns(
        "sales_team",
        pa.table(
            {
                "id": pa.array(ids),
                "first_name": _pick(_FIRST_NAMES, rng.integers(0, len(_FIRST_NAMES), people)),
                "last_name": _pick(_LAST_NAMES, rng.integers(0, len(_LAST_NAMES), people)),
                "manager_id": pa.array((ids - 1) % stores + 1),
                "is_manager": _pick(("N", "Y"), (ids <= stores).astype(np.int64)),
                "address": _pick([c for c, _ in _CITIES], city),
                "pincode": _to_text(prefixes[city] * 1000 + rng.integers(1, 100, people)),
                "joining_date": _random_dates(
                    rng, dt.date(2015, 1, 1), dt.date(2023, 12, 31), people
                ),
            }
        ),
    )


def _store_table(stores: int, team: pa.Table, seed: int) -> pa.Table:
    rng = _rng(seed, _TAG_STORE)
    city = rng.integers(0, len(_CITIES), stores)
    prefixes = np.array([p for _, p in _CITIES], dtype=np.int64)
    # The manager's name comes from sales_team (person s manages store s) when that person exists.
    team_names = pc.binary_join_element_wise(team["first_name"], team["last_name"], " ")
    random_names = pc.binary_join_element_wise(
        _pick(_FIRST_NAMES, rng.integers(0, len(_FIRST_NAMES), stores)),
        _pick(_LAST_NAMES, rng.integers(0, len(_LAST_NAMES), stores)),
        " ",
    )
    staffed = min(stores, team.num_rows)
    manager_names = pa.concat_arrays(
        [team_names.combine_chunks()[:staffed], random_names[staffed:]]
    )
    address = pc.binary_join_element_wise(
        _to_text(rng.integers(1, 500, stores)),
        _pick(_STREETS, rng.integers(0, len(_STREETS), stores)),
        _pick([c for c, _ in _CITIES], city),
        ", ",
    )
    return _check_columns(
        "store",
        pa.table(
            {
                "id": pa.array(np.arange(1, stores + 1, dtype=np.int64)),
                "address": address,
                "store_pincode": _to_text(prefixes[city] * 1000 + rng.integers(1, 100, stores)),
                "store_manager_name": manager_names,
                "store_opening_date": _random_dates(
                    rng, dt.date(2010, 1, 1), dt.date(2020, 12, 31), stores
                ),
                "reviews": _pick(_REVIEWS, rng.integers(0, len(_REVIEWS), stores)),
            }
        ),
    )


def _product_table(products: int | Sequence[ProductSpec], seed: int) -> pa.Table:
    names, cents = _catalog(products, seed)
    count = len(names)
    rng = _rng(seed, _TAG_PRODUCT)
    created = rng.integers(0, 4 * 365, count)
    updated = created + rng.integers(30, 365, count)
    never_updated = rng.random(count) < 0.5
    old_cents = np.where(
        never_updated, cents, np.maximum(cents - rng.integers(0, 50, count) * 10, 0)
    )
    expiry = created + rng.integers(365, 3 * 365, count)
    first = dt.date(2020, 1, 1)
    return _check_columns(
        "product",
        pa.table(
            {
                "id": pa.array(np.arange(1, count + 1, dtype=np.int64)),
                "name": pa.array(names, pa.string()),
                "current_price": _money(cents),
                "old_price": _money(old_cents),
                "created_date": _dates(first, created),
                "updated_date": pc.if_else(
                    pa.array(never_updated), pa.scalar(None, pa.date32()), _dates(first, updated)
                ),
                "expiry_date": _dates(first, expiry),
            }
        ),
    )


def generate_dimensions(
    out_dir: str | Path,
    *,
    customers: int = 1000,
    stores: int = 5,
    sales_people: int | None = None,
    products: int | Sequence[ProductSpec] = 50,
    seed: int = 0,
) -> dict[str, Path]:
    """Write ``customer.csv``, ``store.csv``, ``sales_team.csv`` and ``product.csv`` to ``out_dir``.

    Headers are the table column names; ids run ``1..N``; dates are ISO; money has 2 decimals;
    a missing value (``product.updated_date`` of never-updated products) is an empty field.
    ``sales_people`` defaults to 4 per store. ``products`` is a count or ``(name, price)`` list.
    Returns table name -> path.
    """
    seed = _positive("seed", seed, 0)
    customers = _positive("customers", customers)
    stores = _positive("stores", stores)
    people = _positive("sales_people", 4 * stores if sales_people is None else sales_people)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    team = _sales_team_table(people, stores, seed)
    tables = {
        "customer": _customer_table(customers, seed),
        "store": _store_table(stores, team, seed),
        "sales_team": team,
        "product": _product_table(products, seed),
    }
    paths: dict[str, Path] = {}
    for name, file_name in DIMENSION_FILES.items():
        paths[name] = folder / file_name
        _write_csv(paths[name], tables[name], "needed")
    return paths


# --- sales files -------------------------------------------------------------------------------


def _sales_chunk(
    rng: np.random.Generator,
    n: int,
    *,
    customers: int,
    stores: int,
    people: int,
    names: pa.Array,
    cents: np.ndarray,
    start: dt.date,
    days: int,
    bad_row_fraction: float,
    extra_columns: bool,
) -> tuple[pa.Table, int]:
    """One chunk of sales rows and how many of them were corrupted."""
    customer_id = rng.integers(1, customers + 1, n)
    store_id = rng.integers(1, stores + 1, n)
    product = rng.integers(0, len(cents), n)
    day = rng.integers(0, days, n)
    slot = rng.random(n)
    quantity = rng.integers(1, 11, n)
    # Sales person: one of the store's people (person i works in store ((i - 1) % stores) + 1).
    store_numbers = np.arange(1, stores + 1)
    staff = np.zeros(stores + 1, dtype=np.int64)
    staff[1:] = np.where(store_numbers <= people, (people - store_numbers) // stores + 1, 0)
    store_staff = staff[store_id]
    person = store_id + stores * (slot * np.maximum(store_staff, 1)).astype(np.int64)
    if people < stores:
        unstaffed = store_staff == 0
        person = np.where(unstaffed, rng.integers(1, people + 1, n), person)
    price = cents[product]
    total = price * quantity

    bad = 0
    no_customer = invalid_date = bad_price = None
    if bad_row_fraction > 0:
        rows = np.flatnonzero(rng.random(n) < bad_row_fraction)
        kinds = rng.integers(0, len(BAD_ROW_KINDS), rows.size)
        bad = int(rows.size)
        sel = rows[kinds == 0]
        customer_id[sel] = customers + UNKNOWN_CUSTOMER_OFFSET + rng.integers(0, 1000, sel.size)
        sel = rows[kinds == 1]
        quantity[sel] = rng.integers(-2, 1, sel.size)
        total[sel] = price[sel] * quantity[sel]
        sel = rows[kinds == 2]
        total[sel] += 500
        masks = []
        for kind in (3, 4, 5):
            mask = np.zeros(n, dtype=bool)
            mask[rows[kinds == kind]] = True
            masks.append(mask if mask.any() else None)
        invalid_date, bad_price, no_customer = masks

    sales_date: pa.Array = _dates(start, day)
    if invalid_date is not None:
        sales_date = pc.if_else(
            pa.array(invalid_date), INVALID_DATE, pc.cast(sales_date, pa.string())
        )
    price_column: pa.Array = _money(price)
    if bad_price is not None:
        price_column = pc.if_else(
            pa.array(bad_price), NON_NUMERIC_PRICE, pc.cast(price_column, pa.string())
        )
    columns: dict[str, pa.Array] = {
        "customer_id": pa.array(customer_id, mask=no_customer),
        "store_id": pa.array(store_id),
        "product_name": names.take(pa.array(product)),
        "sales_date": sales_date,
        "sales_person_id": pa.array(person),
        "price": price_column,
        "quantity": pa.array(quantity),
        "total_cost": _money(total),
    }
    if extra_columns:
        columns["payment_mode"] = _pick(_PAYMENT_MODES, rng.integers(0, len(_PAYMENT_MODES), n))
        columns["coupon_code"] = _pick(_COUPONS, rng.integers(0, len(_COUPONS), n))
    return pa.table(columns), bad


def _write_sales(
    out_dir: str | Path,
    *,
    rows: int,
    files: int,
    customers: int,
    stores: int,
    sales_people: int | None,
    products: int | Sequence[ProductSpec],
    start: str | dt.date,
    months: int,
    seed: int,
    bad_row_fraction: float,
    extra_columns: bool,
    file_prefix: str,
    chunk_rows: int,
) -> tuple[list[Path], int]:
    rows = _positive("rows", rows, 0)
    files = _positive("files", files)
    customers = _positive("customers", customers)
    stores = _positive("stores", stores)
    people = _positive("sales_people", 4 * stores if sales_people is None else sales_people)
    months = _positive("months", months)
    seed = _positive("seed", seed, 0)
    chunk_rows = _positive("chunk_rows", chunk_rows)
    if not 0.0 <= float(bad_row_fraction) <= 1.0:
        raise ValueError(f"bad_row_fraction must be within [0, 1], got {bad_row_fraction!r}")
    if not file_prefix or any(c in file_prefix for c in "/\\"):
        raise ValueError(f"file_prefix must be a plain, non-empty name, got {file_prefix!r}")
    first_day = _as_date(start)
    days = (_add_months(first_day, months) - first_day).days
    names, cents = _catalog(products, seed)
    safe = not any(s in name for name in names for s in _CSV_SPECIALS)
    quoting = "none" if safe else "needed"
    name_array = pa.array(names, pa.string())

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    header = ",".join(SALES_COLUMNS + (EXTRA_COLUMNS if extra_columns else ())) + "\n"
    options = pacsv.WriteOptions(include_header=False, quoting_style=quoting, batch_size=65_536)
    base, extra = divmod(rows, files)
    paths: list[Path] = []
    bad_total = 0
    for index in range(files):
        path = folder / f"{file_prefix}_{index:04d}.csv"
        file_rows = base + (1 if index < extra else 0)
        with path.open("wb") as handle:
            handle.write(header.encode("utf-8"))
            for chunk, offset in enumerate(range(0, file_rows, chunk_rows)):
                table, bad = _sales_chunk(
                    _rng(seed, _TAG_SALES, index, chunk),
                    min(chunk_rows, file_rows - offset),
                    customers=customers,
                    stores=stores,
                    people=people,
                    names=name_array,
                    cents=cents,
                    start=first_day,
                    days=days,
                    bad_row_fraction=float(bad_row_fraction),
                    extra_columns=extra_columns,
                )
                pacsv.write_csv(table, handle, options)
                bad_total += bad
        paths.append(path)
    return paths, bad_total


def generate_sales_files(
    out_dir: str | Path,
    *,
    rows: int = 10_000,
    files: int = 4,
    customers: int = 1000,
    stores: int = 5,
    sales_people: int | None = None,
    products: int | Sequence[ProductSpec] = 50,
    start: str | dt.date = "2024-01-01",
    months: int = 1,
    seed: int = 0,
    bad_row_fraction: float = 0.0,
    extra_columns: bool = False,
    file_prefix: str = "sales",
    chunk_rows: int = CHUNK_ROWS,
) -> list[Path]:
    """Write ``rows`` sales rows spread evenly over ``files`` files ``{file_prefix}_{i:04d}.csv``.

    ``i`` counts from 0. The header is exactly ``customer_id,store_id,product_name,sales_date,
    sales_person_id,price,quantity,total_cost`` (then ``payment_mode,coupon_code`` when
    ``extra_columns``). Ids are within ``1..customers`` / ``1..stores`` / ``1..sales_people``
    (default 4 per store), ``price`` is the product's ``current_price`` (same catalogue as
    :func:`generate_dimensions` for the same ``products`` and ``seed``), ``quantity`` is 1..10,
    ``total_cost = price * quantity`` exactly, ``sales_date`` is uniform in
    ``[start, start + months)``. A ``bad_row_fraction`` of the rows (on average) get exactly one
    corruption from :data:`BAD_ROW_KINDS`. Rows are made ``chunk_rows`` at a time to bound memory.
    """
    paths, _ = _write_sales(
        out_dir,
        rows=rows,
        files=files,
        customers=customers,
        stores=stores,
        sales_people=sales_people,
        products=products,
        start=start,
        months=months,
        seed=seed,
        bad_row_fraction=bad_row_fraction,
        extra_columns=extra_columns,
        file_prefix=file_prefix,
        chunk_rows=chunk_rows,
    )
    return paths


# --- rejected-file examples --------------------------------------------------------------------


def generate_bad_files(out_dir: str | Path, seed: int = 0) -> list[Path]:
    """Write one example of each kind of file the flow must reject (plus one valid edge case).

    - ``notes.json``: not a CSV -> ``wrong_file_types``
    - ``sales_missing_column.csv``: no ``total_cost`` column -> ``bad_schema``
    - ``sales_empty.csv``: 0 bytes -> ``bad_schema``
    - ``sales_binary.csv``: gzip bytes, not UTF-8 text -> ``wrong_file_types``
    - ``sales_header_only.csv``: valid header, no rows -> accepted, contributes nothing
    """
    seed = _positive("seed", seed, 0)
    rng = _rng(seed, _TAG_BAD_FILES)
    catalog = product_catalog(50, seed)
    lines = []
    for _ in range(5):
        name, price = catalog[int(rng.integers(0, len(catalog)))]
        quantity = int(rng.integers(1, 11))
        day = dt.date(2024, 1, 1) + dt.timedelta(days=int(rng.integers(0, 31)))
        values = [
            int(rng.integers(1, 21)),
            int(rng.integers(1, 6)),
            name,
            day.isoformat(),
            int(rng.integers(1, 21)),
            price,
            quantity,
            price * quantity,
        ]
        lines.append(",".join(str(v) for v in values))
    header = ",".join(SALES_COLUMNS)
    valid_csv = "\n".join([header, *lines]) + "\n"
    missing_column = (
        "\n".join([",".join(SALES_COLUMNS[:-1]), *(line.rsplit(",", 1)[0] for line in lines)])
        + "\n"
    )
    notes = {"note": "not a sales file", "rows": [line.split(",") for line in lines]}
    contents: dict[str, bytes] = {
        "notes.json": (json.dumps(notes, indent=2) + "\n").encode("utf-8"),
        "sales_missing_column.csv": missing_column.encode("utf-8"),
        "sales_empty.csv": b"",
        "sales_binary.csv": gzip.compress(valid_csv.encode("utf-8"), mtime=0),
        "sales_header_only.csv": (header + "\n").encode("utf-8"),
    }
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for file_name, data in contents.items():
        path = folder / file_name
        path.write_bytes(data)
        paths.append(path)
    return paths


# --- everything at once ------------------------------------------------------------------------


def generate_dataset(
    out_dir: str | Path,
    *,
    rows: int = 10_000,
    files: int = 4,
    customers: int = 1000,
    stores: int = 5,
    sales_people: int | None = None,
    products: int | Sequence[ProductSpec] = 50,
    start: str | dt.date = "2024-01-01",
    months: int = 1,
    seed: int = 0,
    bad_row_fraction: float = 0.0,
    extra_columns: bool = False,
    bad_files: bool = False,
    file_prefix: str = "sales",
) -> dict[str, Any]:
    """Dimension CSVs into ``out_dir/dimensions/``, sales files (and bad files) into ``out_dir/sales/``.

    Returns ``{"dimensions_dir", "sales_dir", "dimension_files": {table: path}, "sales_files":
    [paths], "bad_files": [paths], "counts": {...}}``; ``counts`` holds the dimension sizes,
    ``rows`` (sales rows written), ``bad_rows`` (rows corrupted on purpose) and ``files``.
    """
    root = Path(out_dir)
    people = 4 * stores if sales_people is None else sales_people
    dimension_files = generate_dimensions(
        root / "dimensions",
        customers=customers,
        stores=stores,
        sales_people=people,
        products=products,
        seed=seed,
    )
    sales_files, bad_rows = _write_sales(
        root / "sales",
        rows=rows,
        files=files,
        customers=customers,
        stores=stores,
        sales_people=people,
        products=products,
        start=start,
        months=months,
        seed=seed,
        bad_row_fraction=bad_row_fraction,
        extra_columns=extra_columns,
        file_prefix=file_prefix,
        chunk_rows=CHUNK_ROWS,
    )
    rejected = generate_bad_files(root / "sales", seed=seed) if bad_files else []
    product_count = products if isinstance(products, int) else len(products)
    return {
        "dimensions_dir": root / "dimensions",
        "sales_dir": root / "sales",
        "dimension_files": dimension_files,
        "sales_files": sales_files,
        "bad_files": rejected,
        "counts": {
            "customers": customers,
            "stores": stores,
            "sales_people": people,
            "products": product_count,
            "rows": rows,
            "bad_rows": bad_rows,
            "files": len(sales_files),
        },
    }
