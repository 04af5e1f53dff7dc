"""The one test harness: ports, stopping processes, workspaces, a Prefect server, and the shared
dimensions with the independent oracle of the row and incentive rules.

Every module that starts a process, lays out a landing zone / marts / database, or computes the
expected marts and reporting tables from the rows it wrote uses this module, so each of these
ideas lives in one place. Variants are parameters (a workspace's database file and Spark
settings; a process group or a process tree to stop; the source-file form a mart row carries).

Nothing here runs the product's own transform or reporting code: expected values are computed
with plain ``Decimal`` arithmetic over the rows a test wrote (DESIGN.md's rules: a sale is in the
month of its ``sales_date``; the company-wide top seller of a month, ties included, earns 1 % of
their total, half-up to the cent).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from ephemeral_port_reserve import reserve
from helpers import (
    REPORTING_COLUMNS,
    SALES_COLUMNS,
    WaitTimeout,
    csv_bytes,
    load_dimension_folder,
    wait_until,
    write_bytes,
    write_dimensions,
)

VENV_BIN = Path(sys.executable).parent
SALES_ETL = str(VENV_BIN / "sales-etl")
PREFECT = str(VENV_BIN / "prefect")
CENT = Decimal("0.01")

# --- ports and processes -------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 for a server a test is about to start.

    ``ephemeral_port_reserve`` leaves the port in TIME_WAIT, so the kernel hands it to no other
    ``bind(port 0)`` for about a minute (two servers started at once cannot get the same port),
    while a server that binds it with SO_REUSEADDR (MariaDB, moto/werkzeug, uvicorn, Spark's
    Netty and Jetty all do) still can. Nothing listens there until the caller starts one.
    """
    return reserve("127.0.0.1")


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_process(
    proc: subprocess.Popen[Any] | None, *, grace: float = 20, group: bool = False
) -> None:
    """Stop a process this test started and every process it started; reap ``proc``.

    SIGTERM first, then SIGKILL whatever is left after ``grace`` seconds (with ``group=True``:
    as soon as ``proc`` has exited, at most ``grace`` seconds; ``grace=0``: SIGKILL at once, e.g.
    to crash a run). ``group=True`` signals the process group of a process started
    with ``start_new_session=True``: it reaches processes whose parent is already gone (a Spark
    JVM after its driver was SIGKILLed), which a walk of the process tree cannot find, and it
    works after ``proc`` itself exited. ``group=False`` walks ``proc``'s process tree (psutil),
    for processes that share the test's own group. Only processes this test started are signalled.
    """
    if proc is None:
        return
    if group:
        _signal_group(proc.pid, signal.SIGKILL if grace <= 0 else signal.SIGTERM)
        if grace > 0:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace)
            _signal_group(proc.pid, signal.SIGKILL)
    elif proc.poll() is None:
        import psutil

        try:
            parent = psutil.Process(proc.pid)
            family = [*parent.children(recursive=True), parent]
        except psutil.NoSuchProcess:
            family = []
        for member in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill() if grace <= 0 else member.terminate()
        _, alive = psutil.wait_procs(family, timeout=max(grace, 0))
        for member in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()
    proc.wait(timeout=60)


def tail(path: Path, lines: int = 60) -> str:
    """The last ``lines`` lines of a log file (for failure messages)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- a workspace ---------------------------------------------------------------------------------


@dataclass
class Workspace:
    """A landing folder, a marts folder and an SQLite database, all under ``root``.

    ``database_file`` is the database's path below ``root``; ``settings`` are further
    ``SALES_ETL_*`` values :meth:`env` adds (e.g. a small Spark); ``logs`` collects the log
    files of the subprocesses run in it (``crash_helpers.run_cli``).
    """

    root: Path
    database_file: str = "etl.db"
    settings: Mapping[str, str] = field(default_factory=dict)
    logs: list[Path] = field(default_factory=list)

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def inbox(self) -> Path:
        return self.landing / "to_process"

    @property
    def marts(self) -> Path:
        return self.root / "marts"

    @property
    def db(self) -> Path:
        return self.root / self.database_file

    @property
    def db_dir(self) -> Path:
        return self.db.parent

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.db}"

    def env(self) -> dict[str, str]:
        """``SALES_ETL_*`` settings pointing at this workspace (plus :attr:`settings`)."""
        return {
            "SALES_ETL_LANDING": str(self.landing),
            "SALES_ETL_MARTS": str(self.marts),
            "SALES_ETL_DATABASE_URL": self.database_url,
            **self.settings,
        }

    def create(self) -> Workspace:
        """Make ``to_process/``, the marts folder and the database's folder; returns self."""
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.marts.mkdir(parents=True, exist_ok=True)
        self.db_dir.mkdir(parents=True, exist_ok=True)
        return self

    def drop(self, files: Mapping[str, bytes]) -> None:
        """Put files (name -> bytes) into ``to_process/``."""
        for name, data in files.items():
            write_bytes(self.inbox / name, data)

    def run_flow(self, **parameters: Any) -> dict[str, Any]:
        """One run of the nightly flow in this process; ``parameters`` are further flow
        parameters (e.g. ``max_bad_row_fraction``, ``spark_master``). Returns its summary."""
        from sales_etl.flows.sales_flow import sales_etl_flow

        return sales_etl_flow(
            landing=str(self.landing),
            marts=str(self.marts),
            database_url=self.database_url,
            **parameters,
        )


# --- a Prefect server ----------------------------------------------------------------------------


def prefect_env(home: Path, api_url: str) -> dict[str, str]:
    """The environment of a Prefect subprocess: private home, this API, no telemetry; no
    ``SALES_ETL_*`` of the test process except the short retry delay."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "SALES_ETL_")) or k == "SALES_ETL_RETRY_DELAY_SECONDS"
    }
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_CLI_PROMPT": "false",
            "PREFECT_LOGGING_LEVEL": "INFO",
            "SPARK_LOCAL_IP": "127.0.0.1",
        }
    )
    return env


class PrefectServer:
    """``prefect server start`` on a free 127.0.0.1 port, in its own session, with a private
    PREFECT_HOME (``home``); its output goes to ``log`` (default ``home/server.log``)."""

    def __init__(self, home: Path, log: Path | None = None) -> None:
        self.home = home
        self.log = log or home / "server.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.url}/api"
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0

    def env(self) -> dict[str, str]:
        """The environment of a Prefect client or worker of this server (:func:`prefect_env`)."""
        return prefect_env(self.home, self.api_url)

    def healthy(self) -> bool:
        """Whether ``/api/health`` answers ``true`` now."""
        try:
            with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as response:
                return json.loads(response.read()) is True
        except (OSError, ValueError):
            return False

    def start(self, timeout: float = 180) -> None:
        """Start the server and wait until it is healthy; raises (server stopped) if it exits
        or is not healthy within ``timeout`` seconds, with the tail of its log."""
        self.home.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.home,
                start_new_session=True,
            )
        proc = self.proc

        def health() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited {proc.returncode}:\n{tail(self.log)}")
            return self.healthy()

        try:
            wait_until(
                health,
                timeout=timeout,
                describe=f"prefect server at {self.api_url} healthy",
                context=lambda: tail(self.log),
            )
        except (WaitTimeout, RuntimeError):
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - start

    def stop(self) -> None:
        stop_process(self.proc, group=True)
        self.proc = None


# --- the shared dimensions -----------------------------------------------------------------------

#: id -> (first name, last name, address, pincode, phone). Customer 2's pincode keeps a leading
#: zero (pincode is text); customer 4 has non-ASCII names and no phone number.
CUSTOMERS: dict[int, tuple[str, str, str, str, str | None]] = {
    1: ("Asha", "Rao", "12 Lake Rd", "560001", "9000000001"),
    2: ("Ben", "Cole", "3 Hill St", "040002", "9000000002"),
    3: ("Chen", "Wu", "7 Bay Ave, Apt 2", "560003", "9000000003"),
    4: ("Zoë", "Fox 😀", "9 Elm Ct", "560004", None),
    5: ("Eli", "Park", "1 Oak Ln", "560005", "9000000005"),
}
#: id -> (address, pincode, manager name).
STORES: dict[int, tuple[str, str, str]] = {
    10: ("1 Main St", "560010", "Mona Shah"),
    11: ("2 High St", "560011", "Nick Bose"),
}
#: id -> (first name, last name, manager id, is_manager).
SALES_TEAM: dict[int, tuple[str, str, int | None, str]] = {
    100: ("Ann", "Lee", 103, "N"),
    101: ("Bob", "Ray", 103, "N"),
    102: ("Cy", "Dee", 103, "N"),
    103: ("Dev", "Roy", None, "Y"),
}
PRODUCTS: tuple[dict[str, object], ...] = (
    {"id": 1, "name": "pen", "current_price": "10.00", "old_price": "9.50"},
    {"id": 2, "name": "ink", "current_price": "4.25", "old_price": ""},
)


def write_shared_dimensions(folder: Path) -> Path:
    """The four dimension CSVs of :data:`CUSTOMERS`, :data:`STORES`, :data:`SALES_TEAM` and
    :data:`PRODUCTS` into ``folder``."""
    return write_dimensions(
        folder,
        customer=[
            {
                "customer_id": cid,
                "first_name": first,
                "last_name": last,
                "address": address,
                "pincode": pincode,
                "phone_number": phone,
                "customer_joining_date": "2020-01-15",
            }
            for cid, (first, last, address, pincode, phone) in CUSTOMERS.items()
        ],
        store=[
            {
                "id": sid,
                "address": address,
                "store_pincode": pincode,
                "store_manager_name": manager,
                "store_opening_date": "2019-06-01",
                "reviews": "good",
            }
            for sid, (address, pincode, manager) in STORES.items()
        ],
        sales_team=[
            {
                "id": pid,
                "first_name": first,
                "last_name": last,
                "manager_id": manager,
                "is_manager": is_manager,
                "address": "HQ",
                "pincode": "560100",
                "joining_date": "2021-02-01",
            }
            for pid, (first, last, manager, is_manager) in SALES_TEAM.items()
        ],
        product=PRODUCTS,
    )


def load_shared_dimensions(folder: Path, database_url: str) -> None:
    """Write the shared dimensions into ``folder`` and load them (tables created first)."""
    counts = load_dimension_folder(database_url, write_shared_dimensions(folder))
    assert counts == {
        "customer": len(CUSTOMERS),
        "store": len(STORES),
        "sales_team": len(SALES_TEAM),
        "product": len(PRODUCTS),
    }


# --- sales a test writes -------------------------------------------------------------------------


@dataclass
class Sale:
    """One data record as written: raw strings of the mandatory columns (+ extras)."""

    values: dict[str, str]
    reason: str | None = None  # the expected quarantine reason; None = must be loaded
    extras: dict[str, str] = field(default_factory=dict)  # extra columns, header order
    raw_line: str | None = None  # for a malformed record: the line as written

    @property
    def loaded(self) -> bool:
        return self.reason is None


def sale(
    customer: object,
    store: object,
    person: object,
    date: str,
    price: str,
    quantity: object,
    total: str | None = None,
    *,
    product: str = "pen",
    reason: str | None = None,
    extras: dict[str, str] | None = None,
) -> Sale:
    """A record; ``total`` defaults to price x quantity (exact decimal)."""
    if total is None:
        total = str(Decimal(price) * int(quantity))  # type: ignore[call-overload]
    values = {
        "customer_id": str(customer),
        "store_id": str(store),
        "product_name": product,
        "sales_date": date,
        "sales_person_id": str(person),
        "price": price,
        "quantity": str(quantity),
        "total_cost": total,
    }
    return Sale(values, reason, dict(extras or {}))


def sales_csv(
    sales: Sequence[Sale], header: Sequence[str] = SALES_COLUMNS, **csv_options: Any
) -> bytes:
    """CSV bytes of ``sales`` under ``header`` (mandatory and extra columns, any order);
    ``csv_options`` as :func:`helpers.csv_bytes` takes them (line_end, bom, quote_all)."""
    return csv_bytes(header, [{**s.values, **s.extras} for s in sales], **csv_options)


# --- the oracle ----------------------------------------------------------------------------------


def money_text(value: Decimal) -> str:
    """A DECIMAL(18,2) amount as the database returns it: half-up to the cent, two places."""
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def _values(s: Sale | Mapping[str, Any]) -> Mapping[str, Any]:
    return s.values if isinstance(s, Sale) else s


def _month(v: Mapping[str, Any]) -> tuple[int, int]:
    """(year, month) of a sale: of its ``sales_date`` (an ISO date) or, for a mart row, its
    ``sales_month`` (``YYYY-MM``)."""
    if "sales_date" in v:
        day = dt.date.fromisoformat(v["sales_date"])
        return day.year, day.month
    year, month = v["sales_month"].split("-")
    return int(year), int(month)


def _monthly_totals(
    loaded: Iterable[Sale | Mapping[str, Any]], *id_columns: str
) -> dict[tuple[int, ...], Decimal]:
    """``{(year, month, *ids): total_cost summed}`` over the sales, the ids from
    ``id_columns``; a sale counts in the calendar month of its ``sales_date``."""
    totals: dict[tuple[int, ...], Decimal] = defaultdict(Decimal)
    for s in loaded:
        v = _values(s)
        ids = tuple(int(v[column]) for column in id_columns)
        totals[(*_month(v), *ids)] += Decimal(v["total_cost"])
    return dict(sorted(totals.items()))


#: The oracle's names of people: id -> (first name, last name, ...).
Names = Mapping[int, Sequence[Any]]


def expected_customer_monthly(
    loaded: Iterable[Sale | Mapping[str, Any]], customers: Names = CUSTOMERS
) -> list[dict[str, Any]]:
    """``customer_monthly_purchase`` over the loaded sales (a :class:`Sale` or its values by
    column; money as text, see :func:`money_text`), sorted by year, month, customer."""
    return [
        dict(
            zip(
                REPORTING_COLUMNS["customer_monthly_purchase"],
                (cid, *customers[cid][:2], year, month, money_text(total)),
                strict=True,
            )
        )
        for (year, month, cid), total in _monthly_totals(loaded, "customer_id").items()
    ]


def _top_performers(totals: Mapping[tuple[int, ...], Decimal]) -> dict[tuple[int, ...], Decimal]:
    """1 % of the total of each best seller per ``key[:-1]`` (ties all earn it), unrounded,
    keyed by ``key``; the last element of a key is the sales person."""
    best: dict[tuple[int, ...], Decimal] = {}
    for key, total in totals.items():
        best[key[:-1]] = max(best.get(key[:-1], total), total)
    return {key: total * CENT for key, total in totals.items() if total == best[key[:-1]]}


def expected_incentives(
    loaded: Iterable[Sale | Mapping[str, Any]],
    sales_team: Names = SALES_TEAM,
    scope: str = "company",
) -> list[dict[str, Any]]:
    """``sales_team_incentive`` over the loaded sales (DESIGN.md): the top performer of a
    month earns 1 % of their total, ties all earn it, half-up to the cent. ``scope="store"``:
    the top performer of each store and month earns 1 % of their sales in that store, summed
    over the stores they top, rounded once."""
    loaded = list(loaded)
    totals = _monthly_totals(loaded, "sales_person_id")
    if scope == "company":
        earned = _top_performers(totals)
    else:
        earned = defaultdict(Decimal)
        in_stores = _monthly_totals(loaded, "store_id", "sales_person_id")
        for (year, month, _store, pid), amount in _top_performers(in_stores).items():
            earned[(year, month, pid)] += amount
    return [
        dict(
            zip(
                REPORTING_COLUMNS["sales_team_incentive"],
                (
                    pid,
                    *sales_team[pid][:2],
                    year,
                    month,
                    money_text(total),
                    money_text(earned.get((year, month, pid), Decimal(0))),
                ),
                strict=True,
            )
        )
        for (year, month, pid), total in totals.items()
    ]


def expected_reporting_tuples(
    loaded: Iterable[Sale | Mapping[str, Any]],
    customers: Names = CUSTOMERS,
    sales_team: Names = SALES_TEAM,
    value: Callable[[str, Any], Any] = lambda column, v: v,
    scope: str = "company",
) -> dict[str, list[tuple[Any, ...]]]:
    """Both reporting tables of the oracle as sorted tuples in :data:`helpers.REPORTING_COLUMNS`
    order, each value through ``value(column, value)`` (e.g. money text to ``Decimal``);
    ``scope`` as :func:`expected_incentives`."""
    loaded = list(loaded)
    tables = {
        "customer_monthly_purchase": expected_customer_monthly(loaded, customers),
        "sales_team_incentive": expected_incentives(loaded, sales_team, scope),
    }
    return {
        table: sorted(tuple(value(c, v) for c, v in row.items()) for row in rows)
        for table, rows in tables.items()
    }


#: The money columns of the reporting tables (DECIMAL(18,2)).
MONEY_COLUMNS = frozenset({"monthly_total", "total_sales", "incentive"})


def decimal_money(column: str, value: Any) -> Any:
    """For :func:`expected_reporting_tuples`: money as ``Decimal`` (as SQLAlchemy reads it)."""
    return Decimal(value) if column in MONEY_COLUMNS else value


def reporting_rows(table: str, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A reporting table's rows as the oracle gives them: its columns
    (:data:`helpers.REPORTING_COLUMNS`), money as text, sorted by year, month, id. Fails if a
    money column is not a ``Decimal`` (the tables are DECIMAL(18,2))."""
    columns = REPORTING_COLUMNS[table]
    out = []
    for row in rows:
        picked = {c: row[c] for c in columns}
        for name in MONEY_COLUMNS & set(picked):
            assert isinstance(picked[name], Decimal), (table, name, picked[name])
            picked[name] = str(picked[name])
        out.append(picked)
    return sorted(out, key=lambda r: (r["year"], r["month"], r[columns[0]]))


def assert_reporting_tables_match(
    read_table: Callable[[str], Iterable[Mapping[str, Any]]],
    loaded: Sequence[Sale | Mapping[str, str]],
    customers: Names = CUSTOMERS,
    sales_team: Names = SALES_TEAM,
) -> None:
    """Both reporting tables (``read_table(name)`` reads one's rows) equal the oracle over the
    ``loaded`` sales (:func:`expected_customer_monthly`, :func:`expected_incentives`), money
    compared as text (two places)."""
    for table, expected in (
        ("customer_monthly_purchase", expected_customer_monthly(loaded, customers)),
        ("sales_team_incentive", expected_incentives(loaded, sales_team)),
    ):
        assert reporting_rows(table, read_table(table)) == expected, table


def _extras(s: Sale) -> tuple[tuple[str, str], ...] | None:
    return tuple(s.extras.items()) or None


def json_pairs(text: str | None) -> tuple[tuple[str, Any], ...] | None:
    """``additional_column`` parsed with json, keeping key order."""
    if text is None:
        return None
    return tuple(json.loads(text, object_pairs_hook=lambda items: tuple(items)))


def _typed(s: Sale) -> dict[str, Any]:
    """A loaded sale's values as the marts type them."""
    v = s.values
    return {
        "customer_id": int(v["customer_id"]),
        "store_id": int(v["store_id"]),
        "sales_person_id": int(v["sales_person_id"]),
        "product_name": v["product_name"],
        "sales_date": dt.date.fromisoformat(v["sales_date"]),
        "price": Decimal(v["price"]),
        "quantity": int(v["quantity"]),
        "total_cost": Decimal(v["total_cost"]),
    }


def _customer_fields(s: Sale) -> dict[str, Any]:
    fields = _typed(s)
    del fields["sales_person_id"]  # the customer mart has no sales person
    first, last, address, pincode, phone = CUSTOMERS[fields["customer_id"]]
    return {
        **fields,
        "first_name": first,
        "last_name": last,
        "address": address,
        "pincode": pincode,
        "phone_number": phone,
    }


def _sales_team_fields(s: Sale) -> dict[str, Any]:
    fields = _typed(s)
    first, last, manager_id, is_manager = SALES_TEAM[fields["sales_person_id"]]
    address, _pincode, store_manager = STORES[fields["store_id"]]
    return {
        **fields,
        "store_id": str(fields["store_id"]),
        "first_name": first,
        "last_name": last,
        "manager_id": manager_id,
        "is_manager": is_manager,
        "store_address": address,
        "store_manager_name": store_manager,
    }


def _quarantine_fields(s: Sale) -> dict[str, Any]:
    return {
        **{c: s.values[c] or None for c in SALES_COLUMNS},
        "raw_record": s.raw_line,
        "reason": s.reason,
    }


def _multiset(rows: Iterable[Mapping[str, Any]], keys: Sequence[str]) -> Counter:
    return Counter(tuple(r[k] for k in keys) for r in rows)


def assert_marts_match(
    marts: Mapping[str, Sequence[Mapping[str, Any]]],
    loaded: Sequence[tuple[str, Sale]],
    quarantined: Sequence[tuple[str, Sale]],
    source: Callable[[str], str] = str,
) -> None:
    """The rows of ``customer_data_mart``, ``sales_team_data_mart`` and ``quarantine`` (in
    ``marts``, by name) equal, as multisets, the oracle over the ``(source file, sale)`` pairs
    (loaded ones in the two marts, the others in the quarantine): every column the oracle
    predicts (the dimension values joined, the extras in header order, ``sales_month``; the
    sales team mart's ``store_id`` is its hive partition: text). ``source`` maps a row's
    ``source_file`` to the form the pairs use."""
    for mart, sales, fields in (
        ("customer_data_mart", loaded, _customer_fields),
        ("sales_team_data_mart", loaded, _sales_team_fields),
        ("quarantine", quarantined, _quarantine_fields),
    ):
        expected = [
            {**fields(s), "source_file": src, "additional_column": _extras(s)} for src, s in sales
        ]
        if mart != "quarantine":
            for row in expected:
                row["sales_month"] = f"{row['sales_date']:%Y-%m}"
        actual = [
            {
                **row,
                "source_file": source(row["source_file"]),
                "additional_column": json_pairs(row["additional_column"]),
            }
            for row in marts[mart]
        ]
        keys = tuple(expected[0]) if expected else ("source_file",)
        assert _multiset(actual, keys) == _multiset(expected, keys), mart
