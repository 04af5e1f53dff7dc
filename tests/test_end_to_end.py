"""End to end: the Prefect flow in-process, real Spark, real SQLite, real local folders.

Every input byte is written here by hand and every expected value (customer monthly totals,
incentives, quarantine reasons, where each file lands) is computed here with plain Python
``Decimal`` arithmetic over the rows the test wrote, never with the product's own code.
After every run the same invariants are checked (``_check_after_run``): nothing left in
``to_process/``, every file in exactly one place with its bytes unchanged, input rows = mart
rows + quarantine rows, marts and reporting tables equal to an independent recomputation over
every accepted file so far, and one ``staging_files`` row per file with its fate.
"""

from __future__ import annotations

import datetime as dt
import gzip
import importlib.metadata
import json
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from corpus import expected_reason
from harness import (
    CUSTOMERS,
    SALES_TEAM,
    STORES,
    Sale,
    Workspace,
    assert_marts_match,
    assert_reporting_tables_match,
    load_shared_dimensions,
    reporting_rows,
    sale,
    sales_csv,
)
from helpers import (
    SALES_COLUMNS,
    count_csv_records,
    csv_bytes,
    files_under,
    flow_run_artifacts,
    read_parquet_rows,
    read_table,
    sha256_bytes,
    tree_snapshot,
    write_bytes,
)

# every test runs the nightly flow (Spark, Prefect) one to three times
pytestmark = pytest.mark.slow

BATCH_RE = re.compile(r"^[0-9]{8}_[0-9]{6}$")
PROCESSED = "processed"
WRONG_TYPE, BAD_SCHEMA, DUPLICATES = "wrong_file_types", "bad_schema", "duplicates"
HELD = "too_many_bad_rows"  # held whole by the mass-quarantine guard: its rows count nowhere
EITHER = "processed_or_duplicate"  # identical files in one batch: one loads, the others don't

# The dimensions (harness.CUSTOMERS, STORES, SALES_TEAM, PRODUCTS) and the oracle of the row and
# incentive rules are shared with tests/test_three_configurations.py (tests/harness.py).


# --- what the test sends -------------------------------------------------------------------------


@dataclass
class SentFile:
    name: str
    data: bytes
    run: int  # index of the run that picks it up
    fate: str  # PROCESSED, an error category (HELD included), or EITHER
    sales: list[Sale] = field(default_factory=list)
    batch: str | None = None

    @property
    def location(self) -> str:
        assert self.batch is not None
        if self.fate == PROCESSED:
            return f"processed/{self.batch}/{self.name}"
        return f"error_files/{self.fate}/{self.batch}/{self.name}"


@dataclass
class RunRecord:
    summary: dict[str, Any]
    started: dt.datetime
    finished: dt.datetime


class Pipeline:
    """A landing zone, marts folder and SQLite database, and the ledger of what was sent."""

    def __init__(self, root: Path) -> None:
        self.ws = Workspace(root).create()
        self.landing, self.marts, self.inbox = self.ws.landing, self.ws.marts, self.ws.inbox
        self.database_url = self.ws.database_url
        load_shared_dimensions(root / "dims", self.database_url)
        self.files: list[SentFile] = []
        self.runs: list[RunRecord] = []

    # sending

    def send(self, name: str, data: bytes, fate: str, sales: Sequence[Sale] = ()) -> SentFile:
        if fate in (PROCESSED, EITHER, HELD):
            # The ledger must describe the bytes exactly: one Sale per CSV record.
            assert len(sales) == count_csv_records(data), name
        else:
            assert not sales
        sent = SentFile(name, data, len(self.runs), fate, list(sales))
        write_bytes(self.inbox / name, data)
        self.files.append(sent)
        return sent

    # running

    def run(self, **parameters: Any) -> dict[str, Any]:
        """One flow run; ``parameters`` are further flow parameters (e.g. max_bad_row_fraction)."""
        started = _utc_now()
        summary = self.ws.run_flow(**parameters)
        finished = _utc_now()
        self.runs.append(RunRecord(summary, started, finished))
        batch = summary["batch_id"]
        sent_now = [f for f in self.files if f.run == len(self.runs) - 1]
        if sent_now:
            assert isinstance(batch, str) and BATCH_RE.fullmatch(batch), batch
            moment = dt.datetime.strptime(batch, "%Y%m%d_%H%M%S")
            assert started.replace(microsecond=0) <= moment
            assert moment <= finished + dt.timedelta(seconds=5)
            assert batch not in {r.summary["batch_id"] for r in self.runs[:-1]}
        else:
            assert batch is None
        for f in sent_now:
            f.batch = batch
        self._resolve_in_batch_duplicates(sent_now)
        _check_after_run(self)
        return summary

    def _resolve_in_batch_duplicates(self, sent_now: list[SentFile]) -> None:
        groups: dict[str, list[SentFile]] = defaultdict(list)
        for f in sent_now:
            if f.fate == EITHER:
                groups[sha256_bytes(f.data)].append(f)
        for group in groups.values():
            loaded = [f for f in group if (self.landing / f"processed/{f.batch}/{f.name}").exists()]
            assert len(loaded) == 1, [f.name for f in group]
            for f in group:
                f.fate = PROCESSED if f is loaded[0] else DUPLICATES

    # expectations

    def accepted_files(self) -> list[SentFile]:
        return [f for f in self.files if f.batch is not None and f.fate == PROCESSED]

    def loaded_sales(self) -> list[tuple[SentFile, Sale]]:
        return [(f, s) for f in self.accepted_files() for s in f.sales if s.loaded]

    def quarantined_sales(self) -> list[tuple[SentFile, Sale]]:
        return [(f, s) for f in self.accepted_files() for s in f.sales if not s.loaded]

    # reading outputs

    def mart(self, name: str) -> list[dict[str, Any]]:
        return read_parquet_rows(self.marts / name)

    def table(self, name: str) -> list[dict[str, Any]]:
        return read_table(self.database_url, name)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


# --- reading the reporting tables ----------------------------------------------------------------


def actual_customer_monthly(pipe: Pipeline) -> list[dict[str, Any]]:
    return reporting_rows("customer_monthly_purchase", pipe.table("customer_monthly_purchase"))


def actual_incentives(pipe: Pipeline) -> list[dict[str, Any]]:
    return reporting_rows("sales_team_incentive", pipe.table("sales_team_incentive"))


def _file_name(source_file: str) -> str:
    return Path(source_file).name


# --- the checks after every run ------------------------------------------------------------------


def _check_after_run(pipe: Pipeline) -> None:
    _check_files(pipe)
    _check_marts(pipe)
    _check_conservation(pipe)
    assert_reporting_tables_match(pipe.table, [s for _f, s in pipe.loaded_sales()])
    _check_staging(pipe)
    _check_summary(pipe)


def _check_files(pipe: Pipeline) -> None:
    """Nothing left in to_process/; every file in exactly one place, bytes unchanged."""
    assert files_under(pipe.inbox) == []
    sent = [f for f in pipe.files if f.batch is not None]
    expected = {f.location: sha256_bytes(f.data) for f in sent}
    assert len(expected) == len(sent)  # no two files share a place
    landing = tree_snapshot(pipe.landing)
    assert landing == expected
    for f in sent:  # by name: the file's name occurs once per time it was sent
        assert sum(Path(k).name == f.name for k in landing) == sum(g.name == f.name for g in sent)


def _check_marts(pipe: Pipeline) -> None:
    loaded = [(f.name, s) for f, s in pipe.loaded_sales()]
    bad = [(f.name, s) for f, s in pipe.quarantined_sales()]
    marts = {m: pipe.mart(m) for m in ("customer_data_mart", "sales_team_data_mart", "quarantine")}
    assert_marts_match(marts, loaded, bad, _file_name)
    customer, team = marts["customer_data_mart"], marts["sales_team_data_mart"]
    # Layout: partition folders agree with the rows, file names start with a known batch id.
    batches = {r.summary["batch_id"] for r in pipe.runs} - {None}
    for rel in files_under(pipe.marts / "customer_data_mart", ".parquet"):
        parts = rel.split("/")
        assert len(parts) == 2 and re.fullmatch(r"sales_month=\d{4}-\d{2}", parts[0]), rel
        assert parts[1][:15] in batches, rel
    for rel in files_under(pipe.marts / "sales_team_data_mart", ".parquet"):
        parts = rel.split("/")
        assert len(parts) == 3, rel
        assert re.fullmatch(r"sales_month=\d{4}-\d{2}", parts[0]), rel
        assert re.fullmatch(r"store_id=\d+", parts[1]), rel
        assert parts[2][:15] in batches, rel
    for rel in files_under(pipe.marts / "quarantine", ".parquet"):
        assert "/" not in rel and rel[:15] in batches, rel
    for r in customer + team:
        assert f"{r['sales_date']:%Y-%m}" == r["sales_month"]
    assert not (pipe.marts / "_incoming").exists()


def _check_conservation(pipe: Pipeline) -> None:
    """Input rows (csv module, non-blank records) = mart rows + quarantine rows."""
    rows_in = sum(count_csv_records(f.data) for f in pipe.accepted_files())
    quarantined = len(pipe.mart("quarantine"))
    assert len(pipe.mart("customer_data_mart")) + quarantined == rows_in
    assert len(pipe.mart("sales_team_data_mart")) + quarantined == rows_in


def _check_staging(pipe: Pipeline) -> None:
    rows = pipe.table("staging_files")
    sent = [f for f in pipe.files if f.batch is not None]
    assert len(rows) == len(sent)
    by_place = {(r["batch_id"], r["file_name"]): r for r in rows}
    assert len(by_place) == len(rows)
    windows = {r.summary["batch_id"]: r for r in pipe.runs}
    for f in sent:
        row = by_place[(f.batch, f.name)]
        assert row["file_location"] == f"to_process/{f.name}"
        assert row["target_location"] == f.location
        assert row["checksum"] == sha256_bytes(f.data)
        assert row["size_bytes"] == len(f.data)
        run = windows[f.batch]
        assert run.started <= row["created_at"] <= row["updated_at"] <= run.finished
        if f.fate == PROCESSED:
            loaded = sum(s.loaded for s in f.sales)
            assert (row["status"], row["category"], row["reason"]) == ("COMPLETED", None, None)
            assert (row["rows_total"], row["rows_loaded"], row["rows_quarantined"]) == (
                count_csv_records(f.data),
                loaded,
                len(f.sales) - loaded,
            )
        elif f.fate == HELD:
            total, bad, top = expected_hold(f)
            assert (row["status"], row["category"]) == ("REJECTED", HELD)
            assert (row["rows_total"], row["rows_loaded"], row["rows_quarantined"]) == (total, 0, 0)
            assert f"{bad} of {total} rows" in row["reason"], row["reason"]
            assert ", ".join(f"{r} {n}" for r, n in top.items()) in row["reason"], row["reason"]
        else:
            assert (row["status"], row["category"]) == ("REJECTED", f.fate)
            assert row["reason"], f.name
            assert (row["rows_total"], row["rows_loaded"], row["rows_quarantined"]) == (
                None,
                None,
                None,
            )


def _check_summary(pipe: Pipeline) -> None:
    summary = pipe.runs[-1].summary
    now = [f for f in pipe.files if f.run == len(pipe.runs) - 1]
    outcomes = Counter("accepted" if f.fate == PROCESSED else f.fate for f in now)
    assert summary["files_total"] == len(now)
    assert summary["files_by_outcome"] == dict(outcomes)
    sales = [s for f in now if f.fate == PROCESSED for s in f.sales]
    assert summary["rows_total"] == len(sales)
    assert summary["rows_loaded"] == sum(s.loaded for s in sales)
    assert summary["rows_quarantined"] == sum(not s.loaded for s in sales)
    assert summary["quarantine_reasons"] == dict(Counter(s.reason for s in sales if s.reason))
    held = [f for f in now if f.fate == HELD]
    assert summary["rows_held"] == sum(len(f.sales) for f in held)
    entries = {e["file"]: e for e in summary["files"]}
    for f in held:
        total, bad, top = expected_hold(f)
        entry = entries[f"to_process/{f.name}"]
        assert entry["outcome"] == HELD
        assert (entry["rows_total"], entry["rows_bad"], entry["top_reasons"]) == (total, bad, top)
        assert (entry["rows_loaded"], entry["rows_quarantined"]) == (0, 0)


def expected_hold(f: SentFile) -> tuple[int, int, dict[str, int]]:
    """A held file's rows, bad rows and 3 most frequent reasons (ties by name), from the ledger."""
    reasons = Counter(s.reason for s in f.sales if s.reason)
    top = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    return len(f.sales), sum(reasons.values()), dict(top)


# --- fixtures ------------------------------------------------------------------------------------


#: Settings that would change what these tests expect if another test left them in the environment.
_BEHAVIOUR_ENV = (
    "SALES_ETL_INCENTIVE_SCOPE",
    "SALES_ETL_INCENTIVE_RATE",
    "SALES_ETL_PLUGINS_DIR",
    "SALES_ETL_VALIDATION_DEPTH",
    "SALES_ETL_CRASH_AT",
    "SALES_ETL_MAX_FILE_BYTES",
    "SALES_ETL_MAX_BAD_ROW_FRACTION",
)


@pytest.fixture
def pipe(tmp_path: Path, spark, prefect_api, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    """A fresh landing zone, marts folder and SQLite database with the dimensions loaded.

    The run uses the documented defaults (company-wide incentive, 1%) and only the built-in
    validators: an installed third-party validator plugin is switched off for these tests.
    """
    for name in _BEHAVIOUR_ENV:
        monkeypatch.delenv(name, raising=False)
    third_party = sorted({ep.name for ep in importlib.metadata.entry_points(group="sales_etl")})
    monkeypatch.setenv("SALES_ETL_DISABLE_PLUGINS", ",".join(third_party))
    return Pipeline(tmp_path)


# --- 1. every input rule, one run ----------------------------------------------------------------

GOOD = "2024-03-01"


def _row_rule_sales() -> list[Sale]:
    """One record per row rule (each breaking exactly that rule), plus the boundary cases."""
    return [
        sale(1, 10, 100, GOOD, "10.00", 2, product="pen"),
        sale(2, 10, 101, "2024-03-02", "10.00", 2, "20.01", product="ink"),  # |diff| = 0.01
        sale(3, 11, 102, "2024-03-02", "10.00", 2, "19.99", product="ink"),  # |diff| = 0.01
        sale(999, 10, 100, GOOD, "1.00", 1, reason="unknown_customer_id"),
        sale(1, 99, 100, GOOD, "1.00", 1, reason="unknown_store_id"),
        sale(1, 10, 999, GOOD, "1.00", 1, reason="unknown_sales_person_id"),
        sale("", 10, 100, GOOD, "1.00", 1, reason="missing_customer_id"),
        sale(1, 10, 100, GOOD, "", 1, "1.00", reason="missing_price"),
        sale(1, 10, 100, "", "1.00", 1, reason="missing_sales_date"),
        sale(1, 10, 100, GOOD, "1.00", 1, product="", reason="missing_product_name"),
        sale("1x", 10, 100, GOOD, "1.00", 1, reason="invalid_customer_id"),
        sale(1, "10.0", 100, GOOD, "1.00", 1, reason="invalid_store_id"),
        sale(1, 10, "-100", GOOD, "1.00", 1, reason="invalid_sales_person_id"),
        sale(1, 10, 100, "2024-02-30", "1.00", 1, reason="invalid_sales_date"),
        sale(1, 10, 100, "30-01-2024", "1.00", 1, reason="invalid_sales_date"),
        sale(1, 10, 100, GOOD, "ten", 1, "10.00", reason="invalid_price"),
        sale(1, 10, 100, GOOD, "1.00", 1, "1.0.0", reason="invalid_total_cost"),
        sale(1, 10, 100, GOOD, "10.00", "2.5", "25.00", reason="invalid_quantity"),
        sale(1, 10, 100, GOOD, "10.00", 0, "0.00", reason="non_positive_quantity"),
        sale(1, 10, 100, GOOD, "10.00", -2, "-20.00", reason="non_positive_quantity"),
        sale(1, 10, 100, GOOD, "-5.00", 2, "-10.00", reason="negative_price"),
        sale(1, 10, 100, GOOD, "10.00", 2, "20.02", reason="total_cost_mismatch"),
        sale(1, 10, 100, GOOD, "10.00", 2, "19.98", reason="total_cost_mismatch"),
        # Several rules at once: every reason, in the documented order.
        sale(999, 10, 100, GOOD, "10.00", 0, "5.00", reason=_join("non_positive_quantity",
             "total_cost_mismatch", "unknown_customer_id")),
    ]  # fmt: skip


def _join(*codes: str) -> str:
    return ",".join(codes)


def test_every_input_rule_in_one_run(pipe: Pipeline) -> None:
    plain = _row_rule_sales()
    good_csv_text = sales_csv([sale(1, 10, 100, GOOD, "1.00", 1)]).decode()

    # Files that are not sales CSV files -> wrong_file_types (whatever their content).
    pipe.send("sales_notes.txt", good_csv_text.encode(), WRONG_TYPE)
    pipe.send("sales_no_extension", good_csv_text.encode(), WRONG_TYPE)
    pipe.send("packed.csv", gzip.compress(good_csv_text.encode()), WRONG_TYPE)
    pipe.send("utf16.csv", good_csv_text.encode("utf-16"), WRONG_TYPE)
    pipe.send("binary.csv", bytes(range(256)) * 4, WRONG_TYPE)
    pipe.send("latin1.csv", good_csv_text.replace("pen", "Café").encode("latin-1"), WRONG_TYPE)
    # Header problems -> bad_schema.
    pipe.send("empty.csv", b"", BAD_SCHEMA)
    no_total = [c for c in SALES_COLUMNS if c != "total_cost"]
    pipe.send(
        "missing_total_cost.csv",
        csv_bytes(no_total, [["1", "10", "pen", GOOD, "100", "1.00", "1"]]),
        BAD_SCHEMA,
    )
    wrong_case = ["Customer_ID", *SALES_COLUMNS[1:]]
    pipe.send(
        "wrong_case.csv",
        csv_bytes(wrong_case, [["1", "10", "pen", GOOD, "100", "1.00", "1", "1.00"]]),
        BAD_SCHEMA,
    )

    # Accepted files.
    pipe.send("header_only.csv", sales_csv([]), PROCESSED)
    # RFC 4180 file: BOM, CRLF record ends, every field quoted, a comma, doubled quotes and a line
    # break inside quoted product names. (The line break is LF: Spark's CSV parser normalises a
    # CRLF *inside* a quoted field to LF, so only LF round-trips byte for byte.)
    rfc = [
        sale(3, 11, 102, "2024-03-06", "12.50", 2, product='Widget, "Deluxe"'),
        sale(4, 11, 101, "2024-04-01", "3.10", 3, product="Two-line\nGadget"),
        sale(5, 10, 100, "2024-04-02", "0.99", 1, product="Plain"),
    ]
    rfc_bytes = sales_csv(rfc, line_end="\r\n", bom=True, quote_all=True)
    assert rfc_bytes.startswith(b'\xef\xbb\xbf"customer_id","store_id",')
    assert b'"Widget, ""Deluxe"""' in rfc_bytes and b'"Two-line\nGadget"' in rfc_bytes
    assert rfc_bytes.count(b"\r\n") == 4
    pipe.send("rfc4180.csv", rfc_bytes, PROCESSED, rfc)

    reordered_header = list(reversed(SALES_COLUMNS))
    reordered = [
        sale(2, 10, 100, "2024-03-10", "1.25", 4, product="pencil"),
        sale(1, 11, 103, "2024-05-01", "2.00", 1, product="eraser"),
    ]
    pipe.send("reordered.csv", sales_csv(reordered, reordered_header), PROCESSED, reordered)

    extra_header = [
        "promo_code",
        "customer_id",
        "store_id",
        "product_name",
        "channel",
        "sales_date",
        "sales_person_id",
        "price",
        "quantity",
        "total_cost",
        "note",
    ]
    extras = [
        sale(3, 10, 101, "2024-03-12", "7.00", 3, product="stapler",
             extras={"promo_code": "SPRING", "channel": "web", "note": 'said "hi", left'}),
        sale(4, 98, 101, "2024-03-12", "7.00", 1, product="stapler", reason="unknown_store_id",
             extras={"promo_code": "X1", "channel": "store", "note": "n2"}),
    ]  # fmt: skip
    pipe.send("extras.csv", sales_csv(extras, extra_header), PROCESSED, extras)

    rules_bytes = sales_csv(plain)
    malformed_line = "1,10,pen,2024-03-04,100,10.00,2,20.00,EXTRA"
    malformed = sale(1, 10, 100, "2024-03-04", "10.00", 2, reason="malformed_row")
    malformed.raw_line = malformed_line
    rules_bytes += (malformed_line + "\n").encode()
    pipe.send("row_rules.csv", rules_bytes, PROCESSED, [*plain, malformed])

    # row_rules.csv is 22 of 25 rows bad: the guard (default 0.5) would hold it whole, and this
    # test is about each row's fate, so the guard is off here (tested below).
    summary = pipe.run(max_bad_row_fraction=1.0)  # also runs every generic check
    batch = summary["batch_id"]

    # Concrete spot checks on top of the generic ones.
    assert summary["files_by_outcome"] == {"accepted": 5, BAD_SCHEMA: 3, WRONG_TYPE: 6}
    assert summary["rows_total"] == 3 + 2 + 2 + 25
    assert summary["rows_loaded"] == 3 + 2 + 1 + 3
    assert summary["quarantine_reasons"] == {
        "invalid_sales_date": 2,
        "non_positive_quantity": 2,
        "total_cost_mismatch": 2,
        "unknown_store_id": 2,
        "invalid_customer_id": 1,
        "invalid_price": 1,
        "invalid_quantity": 1,
        "invalid_sales_person_id": 1,
        "invalid_store_id": 1,
        "invalid_total_cost": 1,
        "malformed_row": 1,
        "missing_customer_id": 1,
        "missing_price": 1,
        "missing_product_name": 1,
        "missing_sales_date": 1,
        "negative_price": 1,
        "non_positive_quantity,total_cost_mismatch,unknown_customer_id": 1,
        "unknown_customer_id": 1,
        "unknown_sales_person_id": 1,
    }
    assert sorted(files_under(pipe.landing / "error_files" / WRONG_TYPE / batch)) == [
        "binary.csv",
        "latin1.csv",
        "packed.csv",
        "sales_no_extension",
        "sales_notes.txt",
        "utf16.csv",
    ]
    assert sorted(files_under(pipe.landing / "error_files" / BAD_SCHEMA / batch)) == [
        "empty.csv",
        "missing_total_cost.csv",
        "wrong_case.csv",
    ]
    assert sorted(files_under(pipe.landing / "processed" / batch)) == [
        "extras.csv",
        "header_only.csv",
        "reordered.csv",
        "rfc4180.csv",
        "row_rules.csv",
    ]

    customer = {(r["source_file"].rsplit("/", 1)[-1], r["product_name"]): r for r in
                pipe.mart("customer_data_mart")}  # fmt: skip
    widget = customer[("rfc4180.csv", 'Widget, "Deluxe"')]
    assert (widget["customer_id"], widget["price"], widget["quantity"], widget["total_cost"]) == (
        3,
        Decimal("12.50"),
        2,
        Decimal("25.00"),
    )
    assert widget["sales_date"] == dt.date(2024, 3, 6)
    assert widget["additional_column"] is None
    gadget = customer[("rfc4180.csv", "Two-line\nGadget")]
    assert (gadget["customer_id"], gadget["total_cost"]) == (4, Decimal("9.30"))
    assert customer[("reordered.csv", "pencil")]["total_cost"] == Decimal("5.00")
    assert customer[("row_rules.csv", "ink")]["total_cost"] in (Decimal("20.01"), Decimal("19.99"))

    stapler = customer[("extras.csv", "stapler")]
    parsed = json.loads(stapler["additional_column"])
    assert parsed == {"promo_code": "SPRING", "channel": "web", "note": 'said "hi", left'}
    assert list(parsed) == ["promo_code", "channel", "note"]  # header order
    team_stapler = [r for r in pipe.mart("sales_team_data_mart") if r["product_name"] == "stapler"]
    assert [json.loads(r["additional_column"]) for r in team_stapler] == [parsed]
    assert team_stapler[0]["store_manager_name"] == "Mona Shah"
    assert team_stapler[0]["store_id"] == "10"

    quarantine = pipe.mart("quarantine")
    bad_stapler = [r for r in quarantine if r["product_name"] == "stapler"]
    assert len(bad_stapler) == 1
    assert bad_stapler[0]["reason"] == "unknown_store_id"
    assert json.loads(bad_stapler[0]["additional_column"]) == {
        "promo_code": "X1",
        "channel": "store",
        "note": "n2",
    }
    malformed_rows = [r for r in quarantine if r["reason"] == "malformed_row"]
    assert len(malformed_rows) == 1
    assert malformed_rows[0]["raw_record"] == malformed_line

    # The reporting tables, spelled out (the generic check recomputes them too).
    assert actual_customer_monthly(pipe) == [
        _cmp(1, 2024, 3, "20.00"),  # pen 20.00 (row_rules)
        _cmp(2, 2024, 3, "25.01"),  # ink 20.01 + pencil 5.00
        _cmp(3, 2024, 3, "65.99"),  # ink 19.99 + widget 25.00 + stapler 21.00
        _cmp(4, 2024, 4, "9.30"),
        _cmp(5, 2024, 4, "0.99"),
        _cmp(1, 2024, 5, "2.00"),
    ]
    assert actual_incentives(pipe) == [
        _sti(100, 2024, 3, "25.00", "0.00"),  # pen 20.00 + pencil 5.00
        _sti(101, 2024, 3, "41.01", "0.00"),  # ink 20.01 + stapler 21.00
        _sti(102, 2024, 3, "44.99", "0.45"),  # top: ink 19.99 + widget 25.00 -> 0.4499
        _sti(100, 2024, 4, "0.99", "0.00"),
        _sti(101, 2024, 4, "9.30", "0.09"),  # 0.093
        _sti(103, 2024, 5, "2.00", "0.02"),
    ]


def _cmp(customer_id: int, year: int, month: int, total: str) -> dict[str, Any]:
    first, last = CUSTOMERS[customer_id][:2]
    return {
        "customer_id": customer_id,
        "first_name": first,
        "last_name": last,
        "year": year,
        "month": month,
        "monthly_total": total,
    }


def _sti(pid: int, year: int, month: int, total: str, incentive: str) -> dict[str, Any]:
    first, last = SALES_TEAM[pid][:2]
    return {
        "sales_person_id": pid,
        "first_name": first,
        "last_name": last,
        "year": year,
        "month": month,
        "total_sales": total,
        "incentive": incentive,
    }


# --- 2. a later run changes an earlier month -----------------------------------------------------


def test_second_run_recomputes_the_month_it_touches(pipe: Pipeline) -> None:
    run1 = [
        sale(1, 10, 100, "2024-03-03", "100.00", 2),  # A (100): 200.00
        sale(2, 11, 100, "2024-03-20", "50.00", 2),  # A: +100.00 -> 300.00 (top)
        sale(1, 10, 101, "2024-03-31", "40.00", 5),  # B (101): 200.00
        sale(3, 10, 102, "2024-02-29", "15.25", 2),  # Feb: 30.50 -> 0.305 -> 0.31
        sale(4, 11, 101, "2024-02-01", "10.00", 1),
        sale(5, 11, 103, "2024-04-30", "99.99", 1),  # Apr: 0.9999 -> 1.00
        sale(999, 10, 101, "2024-03-05", "500.00", 1, reason="unknown_customer_id"),
    ]
    first = pipe.send("sales_2024_03_a.csv", sales_csv(run1), PROCESSED, run1)
    pipe.run()
    assert actual_customer_monthly(pipe) == [
        _cmp(3, 2024, 2, "30.50"),
        _cmp(4, 2024, 2, "10.00"),
        _cmp(1, 2024, 3, "400.00"),
        _cmp(2, 2024, 3, "100.00"),
        _cmp(5, 2024, 4, "99.99"),
    ]
    assert actual_incentives(pipe) == [
        _sti(101, 2024, 2, "10.00", "0.00"),
        _sti(102, 2024, 2, "30.50", "0.31"),
        _sti(100, 2024, 3, "300.00", "3.00"),
        _sti(101, 2024, 3, "200.00", "0.00"),
        _sti(103, 2024, 4, "99.99", "1.00"),
    ]
    tables_after_1 = {"cmp": actual_customer_monthly(pipe), "sti": actual_incentives(pipe)}
    marts_after_1 = tree_snapshot(pipe.marts)

    run2 = [
        sale(1, 11, 101, "2024-03-25", "75.00", 2),  # B: +150.00 -> 350.00 (now top)
        sale(3, 10, 102, "2024-03-26", "10.00", 1),  # a new customer-month and person-month
        sale(2, 10, 101, "2024-03-27", "1.00", 1, "9.00", reason="total_cost_mismatch"),
    ]
    second = pipe.send("sales_2024_03_b.csv", sales_csv(run2), PROCESSED, run2)
    pipe.run()
    assert first.batch != second.batch
    assert (pipe.landing / f"processed/{first.batch}/sales_2024_03_a.csv").is_file()
    assert (pipe.landing / f"processed/{second.batch}/sales_2024_03_b.csv").is_file()

    cmp, sti = actual_customer_monthly(pipe), actual_incentives(pipe)
    march_cmp = [r for r in cmp if (r["year"], r["month"]) == (2024, 3)]
    march_sti = [r for r in sti if (r["year"], r["month"]) == (2024, 3)]
    assert march_cmp == [  # one row per customer and month, over both files
        _cmp(1, 2024, 3, "550.00"),
        _cmp(2, 2024, 3, "100.00"),
        _cmp(3, 2024, 3, "10.00"),
    ]
    assert march_sti == [
        _sti(100, 2024, 3, "300.00", "0.00"),  # A lost the top spot
        _sti(101, 2024, 3, "350.00", "3.50"),
        _sti(102, 2024, 3, "10.00", "0.00"),
    ]
    # Months the second run did not touch are exactly as the first run left them.
    assert [r for r in cmp if r["month"] != 3] == [
        r for r in tables_after_1["cmp"] if r["month"] != 3
    ]
    assert [r for r in sti if r["month"] != 3] == [
        r for r in tables_after_1["sti"] if r["month"] != 3
    ]
    # The first run's mart files are untouched; the second only added files of its own batch.
    marts_after_2 = tree_snapshot(pipe.marts)
    assert {k: marts_after_2.get(k) for k in marts_after_1} == marts_after_1
    added = sorted(set(marts_after_2) - set(marts_after_1))
    assert added and all(Path(k).name.startswith(f"{second.batch}-") for k in added)
    assert {k.split("/")[0] for k in added} == {
        "customer_data_mart",
        "sales_team_data_mart",
        "quarantine",
        "partial_aggregates",
    }
    assert all("sales_month=2024-03/" in k for k in added if not k.startswith("quarantine/"))
    # Its partial aggregates (issue 16): one file per aggregate, of the one month it touched.
    assert sorted(str(Path(k).parent) for k in added if k.startswith("partial_aggregates/")) == [
        "partial_aggregates/customer_month/sales_month=2024-03",
        "partial_aggregates/sales_person_store_month/sales_month=2024-03",
    ]


# --- 3. ties and half-up rounding ----------------------------------------------------------------


def test_incentive_ties_and_half_up_rounding(pipe: Pipeline) -> None:
    sales = [
        # Jan: 100 and 101 tie at 250.00 -> both 2.50; 102 gets nothing.
        sale(1, 10, 100, "2024-01-05", "100.00", 1),
        sale(2, 11, 100, "2024-01-06", "150.00", 1),
        sale(3, 10, 101, "2024-01-07", "125.00", 2),
        sale(4, 10, 102, "2024-01-08", "100.00", 1),
        # Feb: top 100.50 -> 1.005 -> 1.01 (half-even would give 1.00).
        sale(5, 10, 102, "2024-02-10", "33.50", 3),
        sale(1, 11, 100, "2024-02-11", "100.49", 1),
        # Mar: the only sale is 0.50 -> 0.005 -> 0.01.
        sale(2, 10, 103, "2024-03-15", "0.25", 2),
        # May: 100 (one store) and 103 (two stores) tie at 100.50 -> both 1.01.
        sale(3, 10, 100, "2024-05-01", "100.50", 1),
        sale(4, 10, 103, "2024-05-02", "50.25", 1),
        sale(5, 11, 103, "2024-05-03", "50.25", 1),
        sale(1, 11, 101, "2024-05-04", "100.49", 1),
        # Jun: 12345.50 -> 123.455 -> 123.46.
        sale(2, 11, 101, "2024-06-30", "2469.10", 5),
        sale(3, 10, 100, "2024-06-30", "0.01", 1),
    ]
    half = len(sales) // 2  # two files, so the tie and months span files
    pipe.send("ties_1.csv", sales_csv(sales[:half]), PROCESSED, sales[:half])
    pipe.send("ties_2.csv", sales_csv(sales[half:]), PROCESSED, sales[half:])
    summary = pipe.run()

    assert actual_incentives(pipe) == [
        _sti(100, 2024, 1, "250.00", "2.50"),
        _sti(101, 2024, 1, "250.00", "2.50"),
        _sti(102, 2024, 1, "100.00", "0.00"),
        _sti(100, 2024, 2, "100.49", "0.00"),
        _sti(102, 2024, 2, "100.50", "1.01"),
        _sti(103, 2024, 3, "0.50", "0.01"),
        _sti(100, 2024, 5, "100.50", "1.01"),
        _sti(101, 2024, 5, "100.49", "0.00"),
        _sti(103, 2024, 5, "100.50", "1.01"),
        _sti(100, 2024, 6, "0.01", "0.00"),
        _sti(101, 2024, 6, "12345.50", "123.46"),
    ]
    top = {
        (t["sales_person_id"], t["year"], t["month"], str(t["incentive"]))
        for t in summary["top_performers"]
    }
    assert top == {
        (100, 2024, 1, "2.50"),
        (101, 2024, 1, "2.50"),
        (102, 2024, 2, "1.01"),
        (103, 2024, 3, "0.01"),
        (100, 2024, 5, "1.01"),
        (103, 2024, 5, "1.01"),
        (101, 2024, 6, "123.46"),
    }
    assert actual_customer_monthly(pipe) == [
        _cmp(1, 2024, 1, "100.00"),
        _cmp(2, 2024, 1, "150.00"),
        _cmp(3, 2024, 1, "250.00"),
        _cmp(4, 2024, 1, "100.00"),
        _cmp(1, 2024, 2, "100.49"),
        _cmp(5, 2024, 2, "100.50"),
        _cmp(2, 2024, 3, "0.50"),
        _cmp(1, 2024, 5, "100.49"),
        _cmp(3, 2024, 5, "100.50"),
        _cmp(4, 2024, 5, "50.25"),
        _cmp(5, 2024, 5, "50.25"),
        _cmp(2, 2024, 6, "12345.50"),
        _cmp(3, 2024, 6, "0.01"),
    ]
    # 103's May sales are in two store partitions of the sales team mart.
    may_103 = sorted(
        (r["store_id"], r["total_cost"])
        for r in pipe.mart("sales_team_data_mart")
        if r["sales_person_id"] == 103 and r["sales_month"] == "2024-05"
    )
    assert may_103 == [("10", Decimal("50.25")), ("11", Decimal("50.25"))]


# --- 4 and 5. duplicates, and a run with nothing to do -------------------------------------------


def _db_snapshot(pipe: Pipeline, tables: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    return {name: sorted(pipe.table(name), key=repr) for name in tables}


REPORTING = ("customer_monthly_purchase", "sales_team_incentive")


def test_duplicates_and_an_idle_run(pipe: Pipeline) -> None:
    day1 = [
        sale(1, 10, 100, "2024-07-01", "12.00", 3),
        sale(2, 11, 101, "2024-07-02", "8.00", 2),
        sale(3, 10, 100, "2024-07-03", "-1.00", 1, reason="negative_price"),
    ]
    day1_bytes = sales_csv(day1)
    other = [sale(4, 11, 102, "2024-07-04", "20.00", 1)]
    broken = csv_bytes(SALES_COLUMNS[:-1], [["1", "10", "pen", "2024-07-01", "100", "1.00", "1"]])

    # Run 1: two byte-identical files in one batch -> one loaded, one duplicate.
    pipe.send("day1.csv", day1_bytes, EITHER, day1)
    pipe.send("day1_copy.csv", day1_bytes, EITHER, day1)
    pipe.send("other.csv", sales_csv(other), PROCESSED, other)
    pipe.send("broken.csv", broken, BAD_SCHEMA)
    summary1 = pipe.run()
    batch1 = summary1["batch_id"]
    assert summary1["files_by_outcome"] == {"accepted": 2, BAD_SCHEMA: 1, DUPLICATES: 1}
    in_dup = files_under(pipe.landing / "error_files" / DUPLICATES / batch1)
    in_processed = files_under(pipe.landing / "processed" / batch1)
    assert len(in_dup) == 1 and in_dup[0] in ("day1.csv", "day1_copy.csv")
    assert sorted(in_processed) == sorted({"day1.csv", "day1_copy.csv", "other.csv"} - set(in_dup))
    assert summary1["rows_total"] == 4  # the copy's rows are not read
    assert actual_customer_monthly(pipe) == [
        _cmp(1, 2024, 7, "36.00"),
        _cmp(2, 2024, 7, "16.00"),
        _cmp(4, 2024, 7, "20.00"),
    ]
    assert actual_incentives(pipe) == [
        _sti(100, 2024, 7, "36.00", "0.36"),
        _sti(101, 2024, 7, "16.00", "0.00"),
        _sti(102, 2024, 7, "20.00", "0.00"),
    ]
    assert [r["reason"] for r in pipe.mart("quarantine")] == ["negative_price"]

    # Run 2: the same bytes again under a new name -> duplicates, nothing else changes.
    # A file identical to a *rejected* one is judged again on its own merits (not a duplicate).
    reporting_before = _db_snapshot(pipe, REPORTING)
    marts_before = tree_snapshot(pipe.marts)
    pipe.send("day1_resent_later.csv", day1_bytes, DUPLICATES)
    pipe.send("broken_again.csv", broken, BAD_SCHEMA)
    summary2 = pipe.run()
    batch2 = summary2["batch_id"]
    assert summary2["files_by_outcome"] == {BAD_SCHEMA: 1, DUPLICATES: 1}
    assert summary2["rows_total"] == 0
    assert files_under(pipe.landing / "error_files" / DUPLICATES / batch2) == [
        "day1_resent_later.csv"
    ]
    assert not (pipe.landing / "processed" / batch2).exists()
    assert _db_snapshot(pipe, REPORTING) == reporting_before
    assert tree_snapshot(pipe.marts) == marts_before
    staged = {r["file_name"]: r for r in pipe.table("staging_files") if r["batch_id"] == batch2}
    assert staged["day1_resent_later.csv"]["category"] == DUPLICATES
    assert "already loaded" in staged["day1_resent_later.csv"]["reason"]

    # Run 3: nothing in to_process/ -> nothing changes anywhere.
    everything = (*REPORTING, "staging_files", "etl_runs")
    tables_before, marts_before = _db_snapshot(pipe, everything), tree_snapshot(pipe.marts)
    landing_before = tree_snapshot(pipe.landing)
    dirs_before = sorted(p.relative_to(pipe.landing).as_posix() for p in pipe.landing.rglob("*"))
    summary3 = pipe.run()
    assert summary3["files_total"] == 0 and summary3["batch_id"] is None
    assert summary3["rows_total"] == 0 and summary3["months_recomputed"] == []
    assert _db_snapshot(pipe, everything) == tables_before
    assert tree_snapshot(pipe.marts) == marts_before
    assert tree_snapshot(pipe.landing) == landing_before
    assert (
        sorted(p.relative_to(pipe.landing).as_posix() for p in pipe.landing.rglob("*"))
        == dirs_before
    )


# --- file names ----------------------------------------------------------------------------------


def test_odd_file_names_and_column_names_load(pipe: Pipeline) -> None:
    """Exported file names often carry an ISO time stamp (``...T10:00:00``), spaces, brackets,
    ``#`` or ``%``; extra columns may be called anything, including names Spark itself uses
    (``_corrupt_record``, ``_metadata``) or with dots and backticks. Each is legal input: the
    file is loaded and the extra columns are kept in ``additional_column``."""
    odd_extras = {"_corrupt_record": "c1", "_metadata": "m1", "note `x`": "bt", "a.b": "dot"}
    names_and_sales = {
        "sales_2024-08-01T10:00:00.csv": [sale(1, 10, 100, "2024-08-01", "10.00", 1)],
        "store 11 [east] {x,y} #2 100%.csv": [sale(2, 11, 101, "2024-08-02", "20.00", 1)],
        "ventes_été*?.csv": [
            sale(3, 10, 102, "2024-08-03", "30.00", 1),
            sale(3, 10, 102, "2024-08-03", "30.00", 2, "30.00", reason="total_cost_mismatch"),
        ],
        "odd_columns.csv": [
            sale(4, 11, 103, "2024-08-04", "5.00", 1, extras=odd_extras),
            sale(4, 11, 103, "2024-08-04", "5.00", 1, "6.00", reason="total_cost_mismatch",
                 extras={k: v.upper() for k, v in odd_extras.items()}),
        ],
    }  # fmt: skip
    for name, sales in names_and_sales.items():
        header = [*SALES_COLUMNS, *sales[0].extras]
        pipe.send(name, sales_csv(sales, header), PROCESSED, sales)
    pipe.send("notes 10:00.txt", b"not a sales file\n", WRONG_TYPE)
    summary = pipe.run()  # the generic checks compare every additional_column (keys in order)
    assert summary["files_by_outcome"] == {"accepted": 4, WRONG_TYPE: 1}
    assert sorted(files_under(pipe.landing / "processed" / summary["batch_id"])) == sorted(
        names_and_sales
    )
    by_file = Counter(Path(r["source_file"]).name for r in pipe.mart("customer_data_mart"))
    assert by_file == {name: 1 for name in names_and_sales}
    [odd] = [r for r in pipe.mart("sales_team_data_mart") if r["sales_person_id"] == 103]
    assert list(json.loads(odd["additional_column"]).items()) == list(odd_extras.items())
    [odd_bad] = [r for r in pipe.mart("quarantine") if r["customer_id"] == "4"]
    assert json.loads(odd_bad["additional_column"])["_metadata"] == "M1"
    assert odd_bad["raw_record"] is None
    assert actual_incentives(pipe) == [
        _sti(100, 2024, 8, "10.00", "0.00"),
        _sti(101, 2024, 8, "20.00", "0.00"),
        _sti(102, 2024, 8, "30.00", "0.30"),
        _sti(103, 2024, 8, "5.00", "0.00"),
    ]


# --- the mass-quarantine guard (issue 12) --------------------------------------------------------


def judged(*args: Any, **kwargs: Any) -> Sale:
    """:func:`sale`, its expected reason given by the independent rule oracle (tests/corpus.py)."""
    record = sale(*args, **kwargs)
    record.reason = expected_reason(
        record.values,
        customers=tuple(CUSTOMERS),
        stores=tuple(STORES),
        sales_team=tuple(SALES_TEAM),
    )
    return record


def fate_under_guard(sales: Sequence[Sale], max_bad_row_fraction: Fraction) -> str:
    """HELD when more than the fraction of the records is bad (never for 0 records)."""
    bad = sum(not s.loaded for s in sales)
    return HELD if sales and Fraction(bad, len(sales)) > max_bad_row_fraction else PROCESSED


JUNE = "2024-06-0"


def _mostly_bad(*, fixed: bool = False) -> list[Sale]:
    """10 June records, 6 bad (3 unknown customers, 2 unreadable prices, 1 zero quantity);
    ``fixed``: the same records corrected, as the sender would resend them."""

    def pick(bad: object, good: object) -> object:
        return good if fixed else bad

    return [
        judged(1, 10, 100, JUNE + "1", "10.00", 1, product="held-pen"),
        judged(2, 10, 101, JUNE + "2", "10.00", 2, product="held-pen"),
        judged(3, 11, 102, JUNE + "3", "10.00", 3, product="held-pen"),
        judged(4, 11, 103, JUNE + "4", "10.00", 4, product="held-pen"),
        judged(pick(901, 5), 10, 100, JUNE + "5", "1.00", 1, product="held-pen"),
        judged(pick(902, 5), 10, 101, JUNE + "5", "2.00", 1, product="held-pen"),
        judged(pick(903, 5), 11, 102, JUNE + "5", "3.00", 1, product="held-pen"),
        judged(1, 10, 100, JUNE + "6", pick("ten", "10.00"), 1, "10.00", product="held-pen"),
        judged(2, 10, 100, JUNE + "6", pick("1.2.3", "1.25"), 4, "5.00", product="held-pen"),
        judged(3, 11, 103, JUNE + "7", "10.00", pick(0, 1), pick("0.00", "10.00"),
               product="held-pen"),
    ]  # fmt: skip


def _some_bad() -> list[Sale]:
    """10 June records, 4 bad (40%): loaded and quarantined as any file."""
    return [
        judged(1, 10, 100, JUNE + "1", "3.00", 1, product="pad"),
        judged(2, 10, 101, JUNE + "2", "3.00", 2, product="pad"),
        judged(3, 11, 102, JUNE + "3", "3.00", 3, product="pad"),
        judged(4, 11, 103, JUNE + "4", "3.00", 4, product="pad"),
        judged(5, 10, 100, JUNE + "5", "3.00", 5, product="pad"),
        judged(1, 11, 101, JUNE + "6", "3.00", 6, product="pad"),
        judged(2, 98, 101, JUNE + "6", "3.00", 1, product="pad"),
        judged(3, 97, 101, JUNE + "6", "3.00", 1, product="pad"),
        judged(4, 10, 101, "", "3.00", 1, product="pad"),
        judged(5, 10, 101, JUNE + "7", "3.00", 2, "6.50", product="pad"),
    ]


def _run_artifacts(pipe: Pipeline, summary: dict[str, Any]) -> dict[str, Any]:
    """The artifacts the run published, by key (tables parsed), read back from the Prefect API."""
    runs = pipe.table("etl_runs")
    return flow_run_artifacts(
        next(r["flow_run_id"] for r in runs if r["run_id"] == summary["run_id"])
    )


def test_a_file_with_too_many_bad_rows_is_held_whole_and_can_be_resent(pipe: Pipeline) -> None:
    from sales_etl.summary import format_summary

    half = Fraction(1, 2)  # the documented default of SALES_ETL_MAX_BAD_ROW_FRACTION
    mostly_bad, some_bad = _mostly_bad(), _some_bad()
    at_limit = [
        judged(1, 10, 100, JUNE + "8", "4.00", 1),
        judged(999, 10, 100, JUNE + "8", "4.00", 1),
    ]
    assert [sum(not s.loaded for s in x) for x in (mostly_bad, some_bad, at_limit)] == [6, 4, 1]
    cases = {"mostly_bad.csv": mostly_bad, "some_bad.csv": some_bad, "at_limit.csv": at_limit,
             "header_only.csv": []}  # fmt: skip
    expected = {"mostly_bad.csv": HELD, "some_bad.csv": PROCESSED, "at_limit.csv": PROCESSED,
                "header_only.csv": PROCESSED}  # fmt: skip
    assert {name: fate_under_guard(rows, half) for name, rows in cases.items()} == expected
    mostly_bad_bytes = sales_csv(mostly_bad)
    for name, rows in cases.items():
        pipe.send(name, sales_csv(rows), expected[name], rows)

    # Run 1: the 60% file is held whole; the 40% and 50% files and the empty one load as ever.
    summary = pipe.run()  # generic checks: places, bytes, marts, conservation, staging, summary
    batch = summary["batch_id"]
    assert summary["files_by_outcome"] == {"accepted": 3, HELD: 1}
    assert files_under(pipe.landing / "error_files" / HELD / batch) == ["mostly_bad.csv"]
    assert (pipe.landing / "error_files" / HELD / batch / "mostly_bad.csv").read_bytes() == (
        mostly_bad_bytes
    )
    for mart in ("customer_data_mart", "sales_team_data_mart", "quarantine"):
        rows = pipe.mart(mart)
        assert rows and not [r for r in rows if r["product_name"] == "held-pen"], mart
        assert "to_process/mostly_bad.csv" not in {r["source_file"] for r in rows}, mart
    assert summary["rows_total"] == 12 and summary["rows_held"] == 10
    top = {"unknown_customer_id": 3, "invalid_price": 2, "non_positive_quantity": 1}
    [entry] = [e for e in summary["files"] if e["file"] == "to_process/mostly_bad.csv"]
    assert entry["top_reasons"] == top and (entry["rows_total"], entry["rows_bad"]) == (10, 6)
    text = format_summary(summary)
    assert "to_process/mostly_bad.csv: too_many_bad_rows (6 of 10 rows (60%) are bad" in text
    assert "unknown_customer_id 3, invalid_price 2, non_positive_quantity 1" in text
    assert "Rows: 12 read, 7 loaded, 5 quarantined; 10 in held files" in text

    artifacts = _run_artifacts(pipe, summary)
    [shown] = [r for r in artifacts["sales-etl-files"] if r["file"] == "to_process/mostly_bad.csv"]
    assert (shown["outcome"], shown["rows_total"], shown["rows_loaded"]) == (HELD, 10, 0)
    assert "unknown_customer_id 3, invalid_price 2, non_positive_quantity 1" in shown["reason"]
    report = artifacts["sales-etl-summary"]
    assert "## Held files: too many bad rows" in report
    assert r"| to\_process/mostly\_bad.csv | 10 | 6 | unknown\_customer\_id 3," in report

    # Run 2: the same bytes again are held again: never loaded, so not a duplicate.
    marts_before = tree_snapshot(pipe.marts)
    reporting_before = _db_snapshot(pipe, REPORTING)
    pipe.send("mostly_bad.csv", mostly_bad_bytes, HELD, mostly_bad)
    summary2 = pipe.run()
    assert summary2["files_by_outcome"] == {HELD: 1}
    assert files_under(pipe.landing / "error_files" / HELD / summary2["batch_id"]) == [
        "mostly_bad.csv"
    ]
    assert tree_snapshot(pipe.marts) == marts_before
    assert _db_snapshot(pipe, REPORTING) == reporting_before

    # Run 3: the fixed file (other bytes, same name) loads normally and changes June.
    fixed = _mostly_bad(fixed=True)
    assert all(s.loaded for s in fixed)
    pipe.send("mostly_bad.csv", sales_csv(fixed), PROCESSED, fixed)
    summary3 = pipe.run()
    assert summary3["files_by_outcome"] == {"accepted": 1}
    assert (summary3["rows_loaded"], summary3["rows_held"]) == (10, 0)
    assert summary3["months_recomputed"] == ["2024-06"]


def test_a_fraction_of_one_turns_the_guard_off(
    pipe: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALES_ETL_MAX_BAD_ROW_FRACTION", "1.0")
    mostly_bad, all_bad = _mostly_bad(), [judged(999, 10, 100, JUNE + "1", "1.00", 1)]
    assert fate_under_guard(mostly_bad, Fraction(1)) == PROCESSED
    assert fate_under_guard(all_bad, Fraction(1)) == PROCESSED
    pipe.send("mostly_bad.csv", sales_csv(mostly_bad), PROCESSED, mostly_bad)
    pipe.send("all_bad.csv", sales_csv(all_bad), PROCESSED, all_bad)
    summary = pipe.run()  # the generic checks: 4 rows loaded, 7 quarantined, nothing held
    assert summary["files_by_outcome"] == {"accepted": 2}
    assert (summary["rows_loaded"], summary["rows_quarantined"], summary["rows_held"]) == (4, 7, 0)


def test_the_run_command_takes_the_fraction_as_a_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    from sales_etl.cli import _settings, build_parser

    monkeypatch.delenv("SALES_ETL_MAX_BAD_ROW_FRACTION", raising=False)
    parser = build_parser()
    assert _settings(parser.parse_args(["run"])).max_bad_row_fraction == 0.5
    args = parser.parse_args(["run", "--max-bad-row-fraction", "0.25"])
    assert _settings(args).max_bad_row_fraction == 0.25
    monkeypatch.setenv("SALES_ETL_MAX_BAD_ROW_FRACTION", "1.0")
    assert _settings(parser.parse_args(["run"])).max_bad_row_fraction == 1.0
