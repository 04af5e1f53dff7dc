"""``sales-etl replay`` (issue 15): late-arriving dimensions, quarantined rows loaded once.

Acceptance 1 and 3 on local folders + SQLite: the dimensions lack 5 customers, a store and a
sales person; a run quarantines their rows; the missing rows are loaded; a dry run changes
nothing (byte for byte) and predicts the load; the replay loads exactly those rows; the tables
and marts equal values computed here in plain Python over all rows; a second replay changes
nothing; conservation (input rows = mart rows + quarantine rows not replayed) after every step.

Expected values come from the rows written below and plain Decimal arithmetic, never from the
product's code; outputs are read back with pyarrow and SQLAlchemy.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from harness import decimal_money, expected_reporting_tuples
from helpers import (
    SALES_COLUMNS,
    csv_bytes,
    flow_run_artifacts,
    load_dimension_folder,
    read_parquet_rows,
    read_table,
    reporting_table_rows,
    tree_snapshot,
    write_bytes,
    write_dimensions,
)

pytestmark = pytest.mark.slow  # the nightly and replay flows

# --- the data -------------------------------------------------------------------------------------

#: Every customer, store and sales person the sales point at; LATE_* arrive only after the run.
CUSTOMERS = {i: (f"First{i}", f"Last{i}") for i in range(1, 11)}
LATE_CUSTOMERS = {6, 7, 8, 9, 10}
STORES = {1: "Meera", 2: "Tomas", 3: "Ines"}
LATE_STORE = 3
SALES_PEOPLE = {10: ("Ravi", "Menon"), 11: ("Sara", "Nunes"), 12: ("Uma", "Iyer")}
LATE_PERSON = 12
NEVER_KNOWN_CUSTOMER = 99

EXTRA = "channel"


def _row(customer, store, person, date, price, quantity, total=None, channel="web"):
    total = total if total is not None else str(Decimal(price) * int(quantity))
    return {
        "customer_id": str(customer),
        "store_id": str(store),
        "product_name": "pen",
        "sales_date": date,
        "sales_person_id": str(person),
        "price": price,
        "quantity": str(quantity),
        "total_cost": total,
        EXTRA: channel,
    }


#: file name -> rows. March: known and late customers, the late store and person, a duplicate
#: pair (identical rows: two inputs), a row with a bad quantity AND a late customer (stays
#: quarantined with its reason brought up to date), a customer that never arrives.
FILES: dict[str, list[dict[str, str]]] = {
    "sales_2024_03.csv": [
        _row(1, 1, 10, "2024-03-01", "10.00", 2),
        _row(2, 2, 11, "2024-03-02", "5.00", 3),
        _row(6, 1, 10, "2024-03-03", "7.00", 1),
        _row(7, 2, 11, "2024-03-04", "3.00", 4),
        _row(8, 1, 11, "2024-03-05", "12.00", 1),
        _row(8, 1, 11, "2024-03-05", "12.00", 1),  # identical to the one above
        _row(1, LATE_STORE, 10, "2024-03-06", "9.50", 2),
        _row(2, 1, LATE_PERSON, "2024-03-07", "60.00", 1),  # makes 12 March's top performer
        _row(7, 1, 10, "2024-03-08", "2.00", 0, "0.00"),  # quantity 0 and a late customer
        _row(NEVER_KNOWN_CUSTOMER, 1, 10, "2024-03-09", "1.00", 1),
    ],
    "sales_2024_04.csv": [
        _row(3, 2, 10, "2024-04-01", "20.00", 1, channel="store"),
        _row(9, 2, 11, "2024-04-02", "4.25", 2, channel="store"),
        _row(10, 1, 10, "2024-04-03", "6.00", 5, channel=""),
        _row(4, 1, 11, "2024-04-04", "1.00", 1),
    ],
}
HEADER = (*SALES_COLUMNS, EXTRA)
#: Sent after the late dimensions arrived: a row that stays quarantined (negative price), and a
#: nightly run whose summary must count the rows a replay could load now.
LATE_FILE = {"sales_2024_04_late.csv": [_row(1, 1, 10, "2024-04-10", "-1.00", 1)]}


def _dimension_rows(late: bool) -> dict[str, list[dict[str, object]]]:
    """The dimension tables without (``late=False``) or with the late rows."""
    return {
        "customer": [
            {"customer_id": i, "first_name": f, "last_name": ln, "address": f"{i} Road"}
            for i, (f, ln) in CUSTOMERS.items()
            if late or i not in LATE_CUSTOMERS
        ],
        "store": [
            {"id": i, "address": f"{i} Square", "store_manager_name": m}
            for i, m in STORES.items()
            if late or i != LATE_STORE
        ],
        "sales_team": [
            {"id": i, "first_name": f, "last_name": ln, "manager_id": 10, "is_manager": "N"}
            for i, (f, ln) in SALES_PEOPLE.items()
            if late or i != LATE_PERSON
        ],
        "product": [{"id": 1, "name": "pen", "current_price": "1.00"}],
    }


# --- the independent oracle -----------------------------------------------------------------------


def _reasons(row: dict[str, str], late: bool) -> list[str]:
    """The reasons (DESIGN.md order) of one row under the dimensions of ``late``."""
    dims = _dimension_rows(late)
    customers = {r["customer_id"] for r in dims["customer"]}
    stores = {r["id"] for r in dims["store"]}
    people = {r["id"] for r in dims["sales_team"]}
    reasons = []
    if int(row["quantity"]) <= 0:
        reasons.append("non_positive_quantity")
    if Decimal(row["price"]) < 0:
        reasons.append("negative_price")
    if int(row["customer_id"]) not in customers:
        reasons.append("unknown_customer_id")
    if int(row["store_id"]) not in stores:
        reasons.append("unknown_store_id")
    if int(row["sales_person_id"]) not in people:
        reasons.append("unknown_sales_person_id")
    return reasons


def _all_rows(files: dict[str, list[dict[str, str]]] = FILES) -> list[tuple[str, dict[str, str]]]:
    return [(name, row) for name, rows in files.items() for row in rows]


def _loaded(late: bool) -> list[tuple[str, dict[str, str]]]:
    return [(n, r) for n, r in _all_rows() if not _reasons(r, late)]


def expected_tables(late: bool) -> dict[str, list[tuple[Any, ...]]]:
    """customer_monthly_purchase and sales_team_incentive over every row that loads (the
    oracle of tests/harness.py), as sorted tuples with money as ``Decimal``."""
    loaded = [row for _name, row in _loaded(late)]
    return expected_reporting_tuples(loaded, CUSTOMERS, SALES_PEOPLE, decimal_money)


def _mart_key(mart: str, source: str, row: dict[str, str]) -> tuple[Any, ...]:
    """What a mart row of ``row`` must hold (the customer mart has no sales person)."""
    person = int(row["sales_person_id"]) if mart == "sales_team_data_mart" else None
    return (
        int(row["customer_id"]),
        int(row["store_id"]),
        person,
        row["sales_date"],
        Decimal(row["total_cost"]),
        f"to_process/{source}",
        json.dumps({EXTRA: row[EXTRA] or None}, separators=(",", ":")),
    )


# --- reading the outputs --------------------------------------------------------------------------


def mart_keys(marts: Path, mart: str, batch: str | None = None) -> list[tuple[Any, ...]]:
    """The mart's rows (of one batch, if given) as :func:`_mart_key` tuples, sorted."""
    return sorted(
        (
            int(r["customer_id"]),
            int(r["store_id"]),
            int(r["sales_person_id"]) if "sales_person_id" in r else None,
            str(r["sales_date"]),
            r["total_cost"],
            r["source_file"],
            r["additional_column"],
        )
        for r in read_parquet_rows(marts / mart)
        if batch is None or r["batch_id"] == batch
    )


def ledger(database_url: str) -> list[dict[str, Any]]:
    return read_table(database_url, "quarantine_ledger", order_by=["row_id"])


def assert_conservation(settings, sent: dict[str, list[dict[str, str]]]) -> None:
    """input rows (of the files ``sent``) = mart rows + quarantine rows not replayed (each
    mart), after every step."""
    marts = Path(settings.marts)
    quarantine = len(read_parquet_rows(marts / "quarantine"))
    replayed = sum(1 for r in ledger(settings.database_url) if r["status"] == "REPLAYED")
    for mart in ("customer_data_mart", "sales_team_data_mart"):
        loaded = len(read_parquet_rows(marts / mart))
        assert loaded + quarantine - replayed == len(_all_rows(sent)), (
            f"{mart}: {loaded} loaded + {quarantine} quarantined - {replayed} replayed "
            f"!= {len(_all_rows(sent))} input rows"
        )


def snapshot(settings, db_file: Path) -> dict[str, Any]:
    """Every byte of the landing zone, the marts and the SQLite file."""
    return {
        "landing": tree_snapshot(settings.landing),
        "marts": tree_snapshot(settings.marts),
        "db": hashlib.sha256(db_file.read_bytes()).hexdigest(),
    }


# --- the test -------------------------------------------------------------------------------------


@pytest.fixture
def replay_env(flow_env, tmp_path: Path):
    """The workspace's settings in the environment (the replay flow reads SALES_ETL_*), the
    early dimensions loaded, both sales files waiting."""
    workspace = flow_env
    load_dimension_folder(
        workspace.database_url, write_dimensions(tmp_path / "dims-early", **_dimension_rows(False))
    )
    for name, rows in FILES.items():
        write_bytes(Path(workspace.landing) / "to_process" / name, csv_bytes(HEADER, rows))
    return workspace


def test_replay_loads_exactly_the_rows_whose_dimensions_arrived(replay_env, tmp_path: Path):
    from sales_etl.flows.replay_flow import sales_etl_replay_flow
    from sales_etl.flows.sales_flow import sales_etl_flow

    settings = replay_env
    db_file = Path(settings.database_url.get_secret_value().removeprefix("sqlite:///"))
    marts = Path(settings.marts)

    # 1. The nightly run quarantines the rows of the late dimensions.
    sent = dict(FILES)
    summary = sales_etl_flow()
    quarantined_now = len(_all_rows(sent)) - len(_loaded(False))
    assert summary["rows_loaded"] == len(_loaded(False))
    assert summary["rows_quarantined"] == quarantined_now == 10
    assert reporting_table_rows(settings.database_url) == expected_tables(False)
    assert_conservation(settings, sent)

    # 2. The missing dimension rows arrive.
    load_dimension_folder(
        settings.database_url, write_dimensions(tmp_path / "dims-late", **_dimension_rows(True))
    )
    newly = [(n, r) for n, r in _loaded(True) if _reasons(r, False)]
    assert len(newly) == 8  # 5 customers (one twice), the store, the sales person
    # The next nightly run says how many quarantined rows a replay could load now.
    for name, rows in LATE_FILE.items():
        write_bytes(Path(settings.landing) / "to_process" / name, csv_bytes(HEADER, rows))
    sent.update(LATE_FILE)
    summary = sales_etl_flow()
    late_batch = summary["batch_id"]
    assert summary["rows_quarantined"] == 1 and summary["rows_loaded"] == 0
    assert summary["replayable_rows"] == len(newly)
    quarantined_now += 1
    assert_conservation(settings, sent)

    # 3. A dry run predicts the load and changes nothing, byte for byte.
    before = snapshot(settings, db_file)
    report = sales_etl_replay_flow(dry_run=True)
    assert snapshot(settings, db_file) == before
    assert report["batch_id"] is None and report["dry_run"] is True
    assert report["rows_judged"] == quarantined_now
    assert report["rows_loadable"] == len(newly)
    was = Counter(",".join(_reasons(r, False)) for _n, r in newly)
    assert report["loadable_by_reason"] == dict(was)
    months = sorted({r["sales_date"][:7] for _n, r in newly})
    assert report["months"] == months
    old, new = expected_tables(False), expected_tables(True)
    for month in months:
        y, m = int(month[:4]), int(month[5:])
        effect = report["months_effect"][month]
        total_old = sum(
            (r[5] for r in old["customer_monthly_purchase"] if r[3:5] == (y, m)), Decimal(0)
        )
        total_new = sum(
            (r[5] for r in new["customer_monthly_purchase"] if r[3:5] == (y, m)), Decimal(0)
        )
        assert effect["customer_total_before"] == f"{total_old:.2f}"
        assert effect["customer_total_after"] == f"{total_new:.2f}"
        assert effect["top_performers_before"] == sorted(
            r[0] for r in old["sales_team_incentive"] if r[3:5] == (y, m) and r[6] > 0
        )
        assert effect["top_performers_after"] == sorted(
            r[0] for r in new["sales_team_incentive"] if r[3:5] == (y, m) and r[6] > 0
        )
    assert report["months_effect"]["2024-03"]["top_performers_after"] == [LATE_PERSON]

    # The selection flags: --batch picks the rows one nightly batch quarantined (dry run).
    only_late = sales_etl_replay_flow(dry_run=True, batch=late_batch)
    assert (only_late["rows_judged"], only_late["rows_loadable"]) == (1, 0)
    # A batch the quarantine does not hold (a mistyped id) is refused, not judged as 0 rows.
    from sales_etl.errors import ConfigError

    with pytest.raises(ConfigError, match=r"'20240301_000000': no quarantined row") as typo:
        sales_etl_replay_flow(dry_run=True, batch="20240301_000000")
    assert late_batch in typo.value.hint
    # --source-file is a glob on the whole key or file name, not a substring.
    assert sales_etl_replay_flow(dry_run=True, source_file="03.csv")["rows_judged"] == 0
    assert snapshot(settings, db_file) == before

    # 4. A replay of one reason in the files matching a glob loads just that row ...
    store_rows = [(n, r) for n, r in newly if "unknown_store_id" in _reasons(r, False)]
    assert len(store_rows) == 1
    first = sales_etl_replay_flow(reason=["unknown_store_id"], source_file="sales_2024_03*")
    assert first["rows_judged"] == 1 and first["rows_loaded"] == 1
    for mart in ("customer_data_mart", "sales_team_data_mart"):
        assert mart_keys(marts, mart, first["batch_id"]) == [
            _mart_key(mart, n, r) for n, r in store_rows
        ]
    assert_conservation(settings, sent)

    # ... and a replay of every reason loads exactly the others, once.
    state = sales_etl_replay_flow(return_state=True)
    summary = state.result()
    batch = summary["batch_id"]
    rest = [row for row in newly if row not in store_rows]
    assert batch and summary["rows_loaded"] == len(rest)
    # Its report in the UI: the batch, the count, and the months' new top performers.
    artifacts = flow_run_artifacts(state.state_details.flow_run_id)
    report_text = re.sub(r"\\(.)", r"\1", artifacts["sales-etl-replay"])  # Markdown escapes out
    assert f"- Replay batch {batch} (UTC)" in report_text
    assert f"loaded {len(rest)}, still failing 3" in report_text
    tops = {(t["month"], t["sales_person_id"]) for t in artifacts["sales-etl-top-performers"]}
    assert tops == {
        (f"{r[3]:04d}-{r[4]:02d}", r[0])
        for r in expected_tables(True)["sales_team_incentive"]
        if r[6] > 0 and f"{r[3]:04d}-{r[4]:02d}" in summary["months"]
    }
    assert summary["reasons_updated"] == 1  # quantity 0: no longer also unknown_customer_id
    assert reporting_table_rows(settings.database_url) == expected_tables(True)
    for mart in ("customer_data_mart", "sales_team_data_mart"):
        assert mart_keys(marts, mart) == sorted(_mart_key(mart, n, r) for n, r in _loaded(True))
        assert mart_keys(marts, mart, batch) == sorted(_mart_key(mart, n, r) for n, r in rest)
    entries = ledger(settings.database_url)
    assert Counter((e["status"], e["reason"], e["replay_batch_id"]) for e in entries) == {
        ("REPLAYED", None, first["batch_id"]): 1,
        ("REPLAYED", None, batch): len(rest),
        ("QUARANTINED", "non_positive_quantity", batch): 1,
    }
    assert len({e["row_id"] for e in entries}) == len(entries)
    # the quarantine Parquet is never rewritten: still every row the run quarantined
    assert len(read_parquet_rows(marts / "quarantine")) == quarantined_now
    assert_conservation(settings, sent)
    runs = read_table(settings.database_url, "etl_runs")
    assert [(r["kind"], r["status"]) for r in runs if r["batch_id"] == batch] == [
        ("replay", "COMPLETED")
    ]
    assert not list(marts.glob("_incoming*"))

    # 5. A second replay changes nothing.
    before = snapshot(settings, db_file)
    again = sales_etl_replay_flow()
    assert again["batch_id"] is None and again["rows_loaded"] == 0
    assert again["rows_judged"] == 3  # the rows still quarantined
    after = snapshot(settings, db_file)
    assert after["landing"] == before["landing"] and after["marts"] == before["marts"]
    assert reporting_table_rows(settings.database_url) == expected_tables(True)
    assert ledger(settings.database_url) == entries
    assert_conservation(settings, sent)

    # 6. The nightly count follows the batch. After a replay (the ledger changed) the next run
    # judges the whole quarantine: nothing loads now.
    def nightly(name: str, rows: list[dict[str, str]]) -> dict[str, Any]:
        write_bytes(Path(settings.landing) / "to_process" / name, csv_bytes(HEADER, rows))
        sent[name] = rows
        return sales_etl_flow()

    may = [_row(NEVER_KNOWN_CUSTOMER, 1, 10, "2024-05-01", "4.00", 1)]
    summary = nightly("sales_2024_05.csv", may)
    assert (summary["rows_quarantined"], summary["replayable_rows"]) == (1, 0)
    # With the same rules and dimension ids, a run judges only its own batch and adds it to the
    # last run's count (made up here, to see that it is the base).
    with sqlite3.connect(db_file) as conn:
        (stored,) = conn.execute(
            "SELECT summary FROM etl_runs WHERE batch_id = ?", (summary["batch_id"],)
        ).fetchone()
        conn.execute(
            "UPDATE etl_runs SET summary = ? WHERE batch_id = ?",
            (json.dumps({**json.loads(stored), "replayable_rows": 1000}), summary["batch_id"]),
        )
    may2 = [_row(NEVER_KNOWN_CUSTOMER, 2, 11, "2024-05-02", "5.00", 2)]
    assert nightly("sales_2024_05_b.csv", may2)["replayable_rows"] == 1000
    # Customer 99 arrives: the ids changed, so the whole quarantine is judged again: its March
    # row and both May rows would load now.
    dims = _dimension_rows(True)
    dims["customer"].append({"customer_id": 99, "first_name": "Zed", "last_name": "Late"})
    load_dimension_folder(settings.database_url, write_dimensions(tmp_path / "dims-99", **dims))
    summary = nightly("sales_2024_05_c.csv", [_row(1, 1, 10, "2024-05-03", "1.00", 1)])
    assert (summary["rows_loaded"], summary["replayable_rows"]) == (1, 3)
    assert_conservation(settings, sent)


def test_replay_refuses_an_unknown_reason_and_a_malformed_batch():
    from sales_etl.errors import ConfigError
    from sales_etl.tasks.replay import ReplaySelection

    with pytest.raises(ConfigError, match="unknown_customer"):
        ReplaySelection(reasons=("unknown_customer",)).check()
    for not_a_batch in ("2024-03-01", "20241301_000000", "20240301_250000", "20240230_000000"):
        with pytest.raises(ConfigError, match="YYYYMMDD_HHMMSS"):
            ReplaySelection(batch=not_a_batch).check()
    ReplaySelection(
        reasons=("unknown_customer_id", "unknown_store_id"), batch="20240301_000000"
    ).check()


def test_replay_is_refused_while_a_nightly_run_holds_the_lock(replay_env):
    """The nightly run and a replay exclude each other through the one pipeline lock."""
    from sales_etl import journal
    from sales_etl.db.engine import make_engine
    from sales_etl.flows.replay_flow import sales_etl_replay_flow

    settings = replay_env
    db_file = Path(settings.database_url.get_secret_value().removeprefix("sqlite:///"))
    engine = make_engine(settings.database_url)
    try:
        journal.acquire_lock(engine, "a-nightly-run", 600)  # held by this live process
        before = snapshot(settings, db_file)
        with pytest.raises(journal.RunLockedError, match="a-nightly-run"):
            sales_etl_replay_flow()
        # A dry run takes no lock, but does not read the marts while a run may publish them.
        with pytest.raises(journal.RunLockedError, match="a-nightly-run"):
            sales_etl_replay_flow(dry_run=True)
        assert snapshot(settings, db_file) == before
    finally:
        journal.release_lock(engine, "a-nightly-run")
        engine.dispose()


def test_cli_replay_refuses_an_unknown_reason_in_one_line(tmp_path: Path):
    import subprocess
    import sys

    done = subprocess.run(
        [str(Path(sys.executable).parent / "sales-etl"), "replay", "--reason", "unknown_shop_id"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0] == (
        "sales-etl replay: --reason 'unknown_shop_id' is not a quarantine reason code"
    )
    assert lines[1].startswith("hint: use one or more of") and "unknown_store_id" in lines[1]
    assert len(lines) == 2 and done.stdout == ""
