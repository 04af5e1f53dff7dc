"""Helpers for the operations tests (tests/test_deployment.py, tests/test_retries.py).

- a small hand-written dataset (dimensions, two sales files with two bad rows, one wrong file)
  and its expected outputs, computed here with plain ``Decimal`` arithmetic, never with the
  product's own code;
- readers of a workspace's outputs from the outside (sqlite3, pyarrow, the file tree);
- the REST API of a Prefect server (``harness.PrefectServer``) and waiting for a run's states and
  logs there.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from harness import SALES_ETL, Workspace, expected_reporting_tuples
from helpers import wait_until

REPO = Path(__file__).resolve().parent.parent
CENT = Decimal("0.01")

# --- the dataset ---------------------------------------------------------------------------------

CUSTOMERS = {  # id: first, last
    1: ("Asha", "Rao"),
    2: ("Bilal", "Khan"),
    3: ("Chen", "Li"),
    4: ("Dana", "Ivers"),
}
SALES_TEAM = {  # id: first, last, manager, is_manager
    10: ("Ravi", "Menon", 10, "Y"),
    11: ("Sara", "Nunes", 10, "N"),
    20: ("Ivan", "Petrov", 20, "Y"),
    21: ("Lena", "Ng", 20, "N"),
}
STORES = {1: ("1 Market Sq", "Meera"), 2: ("2 Station Rd", "Tomas")}
HEADER = "customer_id,store_id,product_name,sales_date,sales_person_id,price,quantity,total_cost"
SALES_FILES = {
    # March: #21 sells 50.00 + 4.50 = 54.50 -> incentive 0.545 -> 0.55 (half-up, not 0.54).
    "sales_a.csv": [
        "1,1,soap,2024-03-02,11,2.50,4,10.00",
        "2,1,rice,2024-03-03,11,10.00,3,30.00",
        "3,2,rice,2024-03-05,21,10.00,5,50.00",
        "1,2,soap,2024-03-09,21,1.50,3,4.50",
        "4,1,rice,2024-03-15,10,10.00,1,10.00",
    ],
    "sales_b.csv": [
        "2,2,rice,2024-04-01,21,10.00,2,20.00",
        "3,1,soap,2024-04-02,11,2.50,10,25.00",
        "4,2,rice,2024-03-30,20,10.00,1,10.50",  # total_cost_mismatch
        "9,1,soap,2024-04-03,11,2.50,1,2.50",  # unknown_customer_id
    ],
}
BAD_ROWS = {("sales_b.csv", 2): "total_cost_mismatch", ("sales_b.csv", 3): "unknown_customer_id"}
WRONG_FILES = {"notes.txt": b"not a sales file\n"}


def dimension_csvs() -> dict[str, str]:
    """The four dimension files (``sales-etl load-dimensions`` input)."""
    customer = [
        "customer_id,first_name,last_name,address,pincode,phone_number,customer_joining_date"
    ]
    customer += [
        f"{cid},{first},{last},{cid} Hill Rd,56000{cid},900000000{cid},2023-01-0{cid}"
        for cid, (first, last) in CUSTOMERS.items()
    ]
    store = ["id,address,store_pincode,store_manager_name,store_opening_date,reviews"]
    store += [f"{sid},{a},5600{sid}0,{m},2022-01-01,good" for sid, (a, m) in STORES.items()]
    team = ["id,first_name,last_name,manager_id,is_manager,address,pincode,joining_date"]
    team += [
        f"{pid},{first},{last},{mgr},{is_mgr},{pid} Oak St,5600{pid},2021-01-01"
        for pid, (first, last, mgr, is_mgr) in SALES_TEAM.items()
    ]
    product = ["id,name,current_price,old_price,created_date,updated_date,expiry_date"]
    product += ["1,soap,2.50,2.25,2023-01-01,2023-06-01,2026-01-01"]
    product += ["2,rice,10.00,9.50,2023-01-01,2023-06-01,2026-01-01"]
    return {
        "customer.csv": "\n".join(customer) + "\n",
        "store.csv": "\n".join(store) + "\n",
        "sales_team.csv": "\n".join(team) + "\n",
        "product.csv": "\n".join(product) + "\n",
    }


def sales_bytes() -> dict[str, bytes]:
    """Every file dropped into ``to_process/``."""
    files = {
        name: ("\n".join([HEADER, *rows]) + "\n").encode() for name, rows in SALES_FILES.items()
    }
    return {**files, **WRONG_FILES}


def good_rows() -> list[dict[str, Any]]:
    """The rows that must be loaded, parsed independently of the product."""
    rows = []
    for name, lines in SALES_FILES.items():
        for index, line in enumerate(lines):
            if (name, index) in BAD_ROWS:
                continue
            cid, sid, _product, date, pid, _price, _qty, total = line.split(",")
            rows.append(
                {
                    "file": name,
                    "customer_id": int(cid),
                    "store_id": int(sid),
                    "sales_person_id": int(pid),
                    "sales_date": date,
                    "month": date[:7],
                    "total_cost": Decimal(total),
                }
            )
    return rows


def expected_tables() -> dict[str, list[tuple[str, ...]]]:
    """``customer_monthly_purchase`` and ``sales_team_incentive`` of one clean run, as text
    (the oracle of tests/harness.py over :func:`good_rows`)."""
    loaded = [
        {
            "customer_id": str(row["customer_id"]),
            "sales_person_id": str(row["sales_person_id"]),
            "sales_date": row["sales_date"],
            "total_cost": str(row["total_cost"]),
        }
        for row in good_rows()
    ]
    return expected_reporting_tuples(loaded, CUSTOMERS, SALES_TEAM, lambda _column, v: str(v))


def expected_months() -> list[str]:
    return sorted({row["month"] for row in good_rows()})


# --- a workspace ---------------------------------------------------------------------------------


#: A small Spark for the operations tests' `sales-etl` subprocesses.
SMALL_SPARK = {
    "SALES_ETL_SPARK_MASTER": "local[1]",
    "SALES_ETL_SPARK_DRIVER_MEMORY": "1g",
    "SALES_ETL_SPARK_SHUFFLE_PARTITIONS": "2",
}


def ops_workspace(root: Path) -> Workspace:
    """The operations tests' workspace: its database in ``root/db/`` (a folder a test can
    move away or replace by a link), :data:`SMALL_SPARK`."""
    return Workspace(root, database_file="db/sales_etl.db", settings=SMALL_SPARK)


def prepare_workspace(root: Path, env: dict[str, str]) -> Workspace:
    """Tables created and dimensions loaded with the product's CLI, files dropped in."""
    ws = ops_workspace(root)
    dims = root / "dimensions"
    dims.mkdir(parents=True)
    for name, text in dimension_csvs().items():
        (dims / name).write_text(text)
    ws.inbox.mkdir(parents=True)
    ws.marts.mkdir()
    run_env = {**env, **ws.env()}
    for args in (["init-db"], ["load-dimensions", str(dims)]):
        done = subprocess.run(
            [SALES_ETL, *args], env=run_env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"sales-etl {args[0]} failed:\n{done.stdout}\n{done.stderr}"
    ws.drop(sales_bytes())
    return ws


def sql_rows(db: Path, query: str) -> list[tuple[Any, ...]]:
    """Rows of a read-only query on the workspace's SQLite file (sqlite3, not the product)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return list(conn.execute(query))
    finally:
        conn.close()


def table_text(db: Path, table: str, columns: str) -> list[tuple[str, ...]]:
    return sorted(
        tuple(str(v) for v in row) for row in sql_rows(db, f"SELECT {columns} FROM {table}")
    )


def reporting_tables(db: Path) -> dict[str, list[tuple[str, ...]]]:
    return {
        "customer_monthly_purchase": table_text(
            db,
            "customer_monthly_purchase",
            "customer_id, first_name, last_name, year, month, monthly_total",
        ),
        "sales_team_incentive": table_text(
            db,
            "sales_team_incentive",
            "sales_person_id, first_name, last_name, year, month, total_sales, incentive",
        ),
    }


def landing_places(landing: Path) -> dict[str, list[str]]:
    """Each file name -> where it is, with the batch folder replaced by ``<batch>``."""
    places: dict[str, list[str]] = defaultdict(list)
    for path in sorted(landing.rglob("*")):
        if not path.is_file():
            continue
        parts = path.relative_to(landing).parts
        if parts[0] == "processed":
            where = "processed/<batch>"
        elif parts[0] == "error_files":
            where = f"error_files/{parts[1]}/<batch>"
        else:
            where = "/".join(parts[:-1])
        places[path.name].append(where)
    return dict(places)


def mart_rows(marts: Path) -> dict[str, list[tuple[str, ...]]]:
    """Rows of the two marts and quarantine, without batch ids (comparable across runs)."""
    import pyarrow.dataset as ds

    result = {}
    for mart, columns in (
        ("customer_data_mart", ("customer_id", "sales_date", "total_cost", "source_file")),
        ("sales_team_data_mart", ("sales_person_id", "sales_date", "total_cost", "source_file")),
        ("quarantine", ("customer_id", "sales_date", "total_cost", "reason", "source_file")),
    ):
        files = [
            str(p)
            for p in sorted((marts / mart).rglob("*.parquet"))
            if not p.name.startswith((".", "_"))
        ]
        if not files:
            result[mart] = []
            continue
        table = ds.dataset(files, format="parquet").to_table(columns=list(columns))
        result[mart] = sorted(tuple(str(v) for v in row.values()) for row in table.to_pylist())
    return result


def expected_mart_rows() -> dict[str, list[tuple[str, ...]]]:
    """What :func:`mart_rows` must read after one clean run over the dataset."""
    customer, team, quarantine = [], [], []
    for name, lines in SALES_FILES.items():
        for index, line in enumerate(lines):
            cid, _sid, _product, date, pid, _price, _qty, total = line.split(",")
            source = f"to_process/{name}"
            if (name, index) in BAD_ROWS:
                quarantine.append((cid, date, total, BAD_ROWS[(name, index)], source))
            else:
                customer.append((cid, date, total, source))
                team.append((pid, date, total, source))
    return {
        "customer_data_mart": sorted(customer),
        "sales_team_data_mart": sorted(team),
        "quarantine": sorted(quarantine),
    }


def assert_outputs_equal_clean_run(ws: Workspace) -> None:
    """Marts, reporting tables and file placement equal those of one clean run."""
    assert reporting_tables(ws.db) == expected_tables()
    assert mart_rows(ws.marts) == expected_mart_rows()
    assert landing_places(ws.landing) == {
        "sales_a.csv": ["processed/<batch>"],
        "sales_b.csv": ["processed/<batch>"],
        "notes.txt": ["error_files/wrong_file_types/<batch>"],
    }
    loaded = sql_rows(
        ws.db, "SELECT file_name FROM staging_files WHERE status = 'COMPLETED' ORDER BY file_name"
    )
    assert [r[0] for r in loaded] == ["sales_a.csv", "sales_b.csv"]


# --- the Prefect REST API ---------------------------------------------------------------------------


def _request(method: str, url: str, body: Any = None, timeout: float = 30) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        text = resp.read().decode()
    return json.loads(text) if text else None


def api_get(api_url: str, path: str) -> Any:
    return _request("GET", api_url + path)


def api_post(api_url: str, path: str, body: Any) -> Any:
    return _request("POST", api_url + path, body)


def flow_run(api_url: str, flow_run_id: str) -> dict[str, Any]:
    return api_get(api_url, f"/flow_runs/{flow_run_id}")


def task_runs(api_url: str, flow_run_id: str) -> list[dict[str, Any]]:
    return api_post(
        api_url,
        "/task_runs/filter",
        {"flow_runs": {"id": {"any_": [flow_run_id]}}, "sort": "EXPECTED_START_TIME_ASC"},
    )


def artifacts(api_url: str, flow_run_id: str) -> list[dict[str, Any]]:
    """The run's artifacts. No waiting needed: a flow creates each one with a direct POST
    (prefect/artifacts.py, ``create_artifact``) before its final state is set, unlike logs
    and task run states, which are shipped in the background (:func:`wait_for_run_logs`)."""
    return api_post(
        api_url, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}}
    )


def run_logs(api_url: str, flow_run_id: str) -> list[dict[str, Any]]:
    logs: list[dict[str, Any]] = []
    while True:
        page = api_post(
            api_url,
            "/logs/filter",
            {
                "logs": {"flow_run_id": {"any_": [flow_run_id]}},
                "sort": "TIMESTAMP_ASC",
                "offset": len(logs),
                "limit": 200,
            },
        )
        logs += page
        if len(page) < 200:
            return logs


def state_text(run: dict[str, Any]) -> str:
    """A flow run's state as ``TYPE message (run_count N)``, for failure messages."""
    state = run.get("state") or {}
    return f"{state.get('type')} {state.get('message')} (run_count {run.get('run_count')})"


def wait_for_state(
    api_url: str,
    flow_run_id: str,
    types: set[str],
    timeout: float,
    on_tick: Callable[[], None] | None = None,
    min_run_count: int = 1,
) -> dict[str, Any]:
    """Poll the flow run until its state type is in ``types`` (in its ``min_run_count``-th run
    or later); returns the flow run. ``on_tick`` is called before each poll and may raise to
    stop waiting (e.g. the worker died). Raises :class:`helpers.WaitTimeout`."""

    def probe() -> dict[str, Any]:
        if on_tick is not None:
            on_tick()
        return flow_run(api_url, flow_run_id)

    return wait_until(
        probe,
        lambda run: (
            (run.get("state") or {}).get("type") in types and run["run_count"] >= min_run_count
        ),
        timeout=timeout,
        describe=f"flow run {flow_run_id} in {sorted(types)}, run_count >= {min_run_count}",
        interval=1,
        retry_on=(OSError,),  # urllib.error.URLError included: the server is busy
        show=state_text,
    )


#: The flow engine's last log line of a flow run (prefect/flow_engine.py), logged after the
#: run's final state was set: once it is in the API, so is every earlier line of that run.
FINAL_FLOW_LOG = "Finished in state "


def wait_for_run_logs(
    api_url: str, flow_run_id: str, expected: Sequence[str] = (), timeout: float = 120
) -> list[dict[str, Any]]:
    """Every log of a flow run that ran once, read when all of it has reached the API.

    Prefect ships a run's logs in batches from a background thread, so the last ones can
    arrive after the run's final state (issue 12). Waits until the run's own (not a task's)
    ``Finished in state ...`` line and a line containing each ``expected`` text are there.
    Returns the log dicts, oldest first. Raises :class:`helpers.WaitTimeout`.
    """

    def complete(logs: list[dict[str, Any]]) -> bool:
        messages = [log["message"] for log in logs]
        final = any(
            log["task_run_id"] is None and log["message"].startswith(FINAL_FLOW_LOG) for log in logs
        )
        return final and all(any(text in m for m in messages) for text in expected)

    return wait_until(
        lambda: run_logs(api_url, flow_run_id),
        complete,
        timeout=timeout,
        describe=f"the logs of flow run {flow_run_id} up to its {FINAL_FLOW_LOG!r} line, "
        f"with {list(expected)}",
        interval=1,
        retry_on=(OSError,),
        show=lambda logs: "\n".join(log["message"] for log in logs[-30:]),
    )


#: Prefect's log line of a task run that failed (prefect/task_engine.py, ``handle_retry``).
#: It is followed by ``- Retry i/n will start ...`` when the task retries, and by ``- Retries
#: are exhausted`` after its last retry; a task configured with 0 retries logs it bare (and a
#: task with retries left logs nothing when its retry condition refuses the error).
TASK_FAILED_LOG = "Task run failed with exception: "


def assert_task_failed_without_retries(logs: Sequence[dict[str, Any]]) -> None:
    """A task of the run failed, and it and every other task ran with 0 retries configured.

    ``logs``: the run's complete logs (:func:`wait_for_run_logs`).
    """
    failed = [log["message"] for log in logs if log["message"].startswith(TASK_FAILED_LOG)]
    assert failed, "no task run failed: " + "\n".join(log["message"] for log in logs[-30:])
    retried = [m for m in failed if " - Retry " in m or " - Retries are exhausted" in m]
    assert retried == [], retried[0][:500]


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
