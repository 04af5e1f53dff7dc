"""Property tests (hypothesis): random sales rows, good and bad mixed, through the pure transform.

Each example is one small DataFrame through ``sales_etl/rules/transform.py:classify_sales`` (no flow, no
I/O). Checked against an independent Python oracle of the input rules (tests/corpus.py,
written from DESIGN.md): rows in = loaded + quarantined, every row's reason, and the loaded
totals per customer and month as plain ``Decimal`` sums. The first property judges its
examples in one Spark job (fast, many examples, but a failure is not shrunk); the second checks
every row's reason inside ``@given``, one small Spark job per example, so hypothesis shrinks a
failing example to the smallest rows that break a rule. A third property runs the file
validators over random bytes and names (no Spark): every file gets the one verdict an
independent oracle of the file rules (DESIGN.md: a ``.csv`` name, UTF-8 text without NUL, a
non-empty header with every mandatory column, no duplicate or empty column name) gives it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import posixpath
from collections import defaultdict
from decimal import Decimal

import pytest
from corpus import CUSTOMERS, HEADER, SALES_TEAM, STORES, expected_reason, parse_value
from hypothesis import given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "200"))  # CI: 200
#: Examples of the per-example (shrinking) property: each is one Spark job of ~0.5 s.
SHRINKING_EXAMPLES = int(os.environ.get("PROPERTY_SHRINKING_EXAMPLES", "40"))

_ids = st.one_of(
    st.sampled_from(["1", "2", "3", "10", "11", "100", "101", " 1 ", "0001"]),  # known
    st.sampled_from(["99", "12", "102", "4294967297", "999999999999999999"]),  # unknown
    st.sampled_from(["", "  ", "-1", "1.0", "1e3", "abc", "9223372036854775808", "+1"]),
    st.integers(0, 10**20).map(str),
)
_money = st.one_of(
    st.decimals(min_value=0, max_value=1000, places=2).map(str),
    st.decimals(min_value=-50, max_value=50, places=2).map(str),
    st.sampled_from(
        ["NaN", "Infinity", "-0.00", "1e309", "2e1", "10.005", "", " 5.00 ", "12345678901234567"]
    ),
    st.text(alphabet="0123456789.-e ", max_size=6),
)
_quantity = st.one_of(
    st.integers(-3, 20).map(str),
    st.sampled_from(["", "1.5", "+2", "-0", "9999999999", " 3 ", "x"]),
    st.text(alphabet="0123456789- ", max_size=4),
)
_dates = st.one_of(
    st.dates(dt.date(2023, 1, 1), dt.date(2024, 12, 31)).map(str),
    st.sampled_from(["2024-02-30", "30-01-2024", "", "2024-2-3", "2023-02-29", "2024/03/05"]),
    st.builds(
        "{:04d}-{:02d}-{:02d}".format,
        st.integers(1900, 2100),
        st.integers(0, 13),
        st.integers(0, 32),
    ),
)
_products = st.one_of(st.sampled_from(["pen", "=cmd|' /C calc'!A0", ""]), st.text(max_size=8))


@st.composite
def sales_row(draw) -> dict[str, str | None]:
    """Mostly coherent rows (total = price x quantity) with bad values mixed in."""
    row: dict[str, str | None] = {
        "customer_id": draw(_ids),
        "store_id": draw(_ids),
        "product_name": draw(_products),
        "sales_date": draw(_dates),
        "sales_person_id": draw(_ids),
        "price": draw(_money),
        "quantity": draw(_quantity),
    }
    price, qty = parse_value("price", row["price"].strip(" ")), None
    if row["quantity"].strip(" "):
        qty = parse_value("quantity", row["quantity"].strip(" "))
    choice = draw(st.integers(0, 3))
    if choice < 2 and price is not None and qty is not None:
        row["total_cost"] = str(
            price * qty + Decimal(draw(st.sampled_from(["0", "0.01", "-0.01"])))
        )
    else:
        row["total_cost"] = draw(_money)
    if draw(st.booleans()):  # about half the rows: good, then maybe one field spoiled
        price_ok = draw(st.decimals(min_value=0, max_value=1000, places=2))
        qty_ok = draw(st.integers(1, 20))
        row.update(
            customer_id=draw(st.sampled_from(["1", "2", "3"])),
            store_id=draw(st.sampled_from(["10", "11"])),
            sales_person_id=draw(st.sampled_from(["100", "101"])),
            sales_date=str(draw(st.dates(dt.date(2023, 1, 1), dt.date(2024, 12, 31)))),
            price=str(price_ok),
            quantity=str(qty_ok),
            total_cost=str(price_ok * qty_ok),
        )
        if draw(st.integers(0, 3)) == 0:
            column = draw(st.sampled_from(HEADER))
            row[column] = draw(
                {
                    "price": _money,
                    "total_cost": _money,
                    "quantity": _quantity,
                    "sales_date": _dates,
                    "product_name": _products,
                }.get(column, _ids)
            )
        return row
    for column in HEADER:  # a missing field (Spark gives null) now and then
        if draw(st.integers(0, 30)) == 0:
            row[column] = None
    return row


@pytest.fixture(scope="module")
def dims(spark):
    from sales_etl.rules.transform import Dimensions

    customer = spark.createDataFrame(
        [(cid, f, last, "addr", "560001", "900") for cid, (f, last) in CUSTOMERS.items()],
        "customer_id long, first_name string, last_name string, address string, "
        "pincode string, phone_number string",
    )
    store = spark.createDataFrame(
        [(sid, "addr", m) for sid, m in STORES.items()],
        "store_id long, store_address string, store_manager_name string",
    )
    team = spark.createDataFrame(
        [(pid, f, last, None, "N", "HQ", "560100") for pid, (f, last) in SALES_TEAM.items()],
        "sales_person_id long, first_name string, last_name string, manager_id long, "
        "is_manager string, address string, pincode string",
    )
    return Dimensions(customer.cache(), store.cache(), team.cache())


RAW_SCHEMA = (
    ", ".join(f"{c} string" for c in HEADER)
    + ", additional_column string, raw_record string, file_path string"
)


def test_transform_matches_the_rules_and_conserves_rows(spark, dims) -> None:
    """EXAMPLES hypothesis examples, judged in ONE Spark job (a job per example is too slow)."""
    from pyspark.sql import functions as F

    from sales_etl.rules.transform import classify_sales, customer_mart, quarantine_rows

    examples: list[list[tuple[dict[str, str | None], bool]]] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None)
    @given(
        rows=st.lists(sales_row(), min_size=1, max_size=12),
        malformed=st.lists(st.booleans(), min_size=12, max_size=12),
    )
    def collect(rows, malformed) -> None:
        examples.append(list(zip(rows, malformed, strict=False)))

    collect()
    assert len(examples) >= min(EXAMPLES, 200) * 0.9  # hypothesis may stop a little early
    data = [
        (*[r[c] for c in HEADER], None, "raw line" if bad else None, f"file:/x/{e}/{i}.csv")
        for e, example in enumerate(examples)
        for i, (r, bad) in enumerate(example)
    ]
    raw = spark.createDataFrame(data, RAW_SCHEMA)
    classified = (
        classify_sales(raw, dims, "20240101_000000")
        .withColumn("source_file", F.col("file_path"))
        .cache()
    )
    got = {r.file_path: r.reason for r in classified.select("file_path", "reason").collect()}
    loaded = customer_mart(classified, dims).collect()
    quarantined = quarantine_rows(classified).count()
    classified.unpersist()

    assert len(got) == len(data) == len(loaded) + quarantined  # conservation, all examples
    got_totals: dict[tuple[int, int, str], Decimal] = defaultdict(Decimal)
    for row in loaded:
        example = int(row.source_file.split("/")[-2])
        got_totals[(example, row.customer_id, row.sales_month)] += row.total_cost
    want_totals: dict[tuple[int, int, str], Decimal] = defaultdict(Decimal)
    for e, example in enumerate(examples):
        for i, (r, bad) in enumerate(example):
            want = expected_reason(r, malformed=bad)
            assert got[f"file:/x/{e}/{i}.csv"] == want, (r, bad)
            if want is None:
                day = dt.date.fromisoformat(r["sales_date"].strip(" "))
                key = (e, int(r["customer_id"]), f"{day:%Y-%m}")
                want_totals[key] += Decimal(r["total_cost"].strip(" "))
    assert got_totals == want_totals
    # the generator really mixes good and bad rows
    assert 0 < len(loaded) < len(data)


def _judge(spark, dims, rows: list[tuple[dict[str, str | None], bool]]) -> tuple[list, list]:
    """One example through ``classify_sales`` and ``customer_mart``: (reason per row, in row
    order; the customer mart's rows)."""
    from pyspark.sql import functions as F

    from sales_etl.rules.transform import classify_sales, customer_mart

    data = [
        (*[r[c] for c in HEADER], None, "raw line" if bad else None, f"file:/x/{i}.csv")
        for i, (r, bad) in enumerate(rows)
    ]
    classified = classify_sales(
        spark.createDataFrame(data, RAW_SCHEMA), dims, "20240101_000000"
    ).withColumn("source_file", F.col("file_path"))
    got = {r.file_path: r.reason for r in classified.select("file_path", "reason").collect()}
    reasons = [got.get(f"file:/x/{i}.csv", "<row lost>") for i in range(len(rows))]
    return reasons, customer_mart(classified, dims).collect()


@pytest.mark.slow  # one Spark job per example: 189 s for 40 examples at load 12
def test_every_row_gets_the_oracles_reason_shrinking(spark, dims) -> None:
    """Inside ``@given``: each row's reason equals the oracle's, the loaded rows are exactly the
    rows without a reason, and their totals per customer and month are the ``Decimal`` sums."""

    @settings(max_examples=SHRINKING_EXAMPLES, deadline=None, database=None)
    @given(
        rows=st.lists(sales_row(), min_size=1, max_size=6),
        malformed=st.lists(st.booleans(), min_size=6, max_size=6),
    )
    def check(rows, malformed) -> None:
        example = list(zip(rows, malformed, strict=False))
        reasons, loaded = _judge(spark, dims, example)
        assert reasons == [expected_reason(r, malformed=bad) for r, bad in example]
        want: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
        for r, bad in example:
            if expected_reason(r, malformed=bad) is None:
                day = dt.date.fromisoformat(r["sales_date"].strip(" "))
                want[(int(r["customer_id"]), f"{day:%Y-%m}")] += Decimal(r["total_cost"].strip(" "))
        got: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
        for row in loaded:
            got[(row.customer_id, row.sales_month)] += row.total_cost
        assert got == want

    check()


_names = st.one_of(
    st.text(min_size=1, max_size=12).filter(
        lambda s: "/" not in s and "\x00" not in s and s not in (".", "..")
    ),
    st.sampled_from(["a.csv", "A.CSV", "x.txt", "noext", "a:b.csv", "é [1].csv"]),
)
_contents = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda head, body: (head + "\n" + body).encode(),
        st.sampled_from([",".join(HEADER), ",".join(HEADER).upper(), "a;b", ""]),
        st.text(max_size=200),
    ),
)


def expected_category(name: str, data: bytes) -> str | None:
    """The file rules of DESIGN.md, written here again: ``None`` (accepted), or the category."""
    if posixpath.splitext(name)[1].lower() != ".csv":
        return "wrong_file_types"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "wrong_file_types"
    if "\x00" in text:
        return "wrong_file_types"
    header = next(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")), [])
    if not data or not set(HEADER) <= set(header):
        return "bad_schema"
    if len(set(header)) != len(header) or any(not c.strip() for c in header):
        return "bad_schema"
    return None


@settings(max_examples=EXAMPLES, deadline=None)
@given(files=st.dictionaries(_names, _contents, min_size=1, max_size=8))
def test_every_file_gets_exactly_one_verdict(tmp_path_factory, files) -> None:
    """Validators over random bytes and names: each file accepted or in one error category,
    the one the independent oracle of the file rules gives it."""
    from sales_etl.settings import Settings
    from sales_etl.storage.local import LocalStore
    from sales_etl.validators.manager import get_plugin_manager, validate_file
    from sales_etl.validators.model import IncomingFile

    root = tmp_path_factory.mktemp("files")
    store = LocalStore(root)
    settings_ = Settings(landing=str(root), disable_plugins="")
    pm = get_plugin_manager(settings_)
    for name, data in files.items():
        store.write_bytes(f"to_process/{name}", data)
    keys = [o.key for o in store.list("to_process/")]
    assert len(keys) == len(files)
    verdicts = {}
    for key in keys:
        verdict = validate_file(pm, IncomingFile.scan(store, key, settings_))
        assert verdict.accepted == (verdict.category is None)
        verdicts[key] = verdict
        name = key.removeprefix("to_process/")
        assert verdict.category == expected_category(name, files[name]), (name, verdict)
        if not name.lower().endswith(".csv"):
            assert verdict.category == "wrong_file_types"
        elif verdict.accepted:
            text = files[name].decode("utf-8")  # accepted => UTF-8 text
            assert "\x00" not in text
            assert set(HEADER) <= set(verdict.header or [])
    assert sorted(k.removeprefix("to_process/") for k in verdicts) == sorted(files)
