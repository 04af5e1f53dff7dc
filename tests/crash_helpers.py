"""Helpers for tests/test_crash_recovery.py: fixture files, workspaces (``harness.Workspace``)
from a template database, `sales-etl` subprocesses killed at an instant, and the comparable state
of a workspace.

Everything here looks at a workspace from the outside (files, SQLite, Parquet read with pyarrow),
never through the product's own code, so the exactly-once tests cannot share a bug with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import SALES_ETL, Workspace, stop_process
from helpers import WaitTimeout, wait_until

BATCH_RE = re.compile(r"^[0-9]{8}_[0-9]{6}$")
MART_NAMES = ("customer_data_mart", "sales_team_data_mart", "quarantine")
#: The per-batch partial aggregates of the marts (issue 16, docs/architecture.md).
PARTIAL_NAMES = ("partial_aggregates/customer_month", "partial_aggregates/sales_person_store_month")
#: Their additive columns (amounts and row counts); every other column is part of the key.
PARTIAL_SUMS = ("monthly_total", "total_sales", "sale_count")

# --- fixture data --------------------------------------------------------------------------------

DIMENSIONS: dict[str, str] = {
    "customer.csv": (
        "customer_id,first_name,last_name,address,pincode,phone_number,customer_joining_date\n"
        "1,Asha,Rao,12 Hill Rd,560001,9000000001,2023-01-05\n"
        "2,Bilal,Khan,4 Lake St,560002,9000000002,2023-02-11\n"
        "3,Chen,Li,9 Park Ave,560003,9000000003,2023-03-20\n"
        "4,Dana,Ivers,77 Mill Ln,560004,9000000004,2023-04-01\n"
        "5,Emil,Sorensen,3 Bay Rd,560005,,2023-05-15\n"
    ),
    "store.csv": (
        "id,address,store_pincode,store_manager_name,store_opening_date,reviews\n"
        "1,1 Market Sq,560010,Meera,2022-01-01,good\n"
        "2,2 Station Rd,560020,Tomas,2022-06-01,\n"
    ),
    "sales_team.csv": (
        "id,first_name,last_name,manager_id,is_manager,address,pincode,joining_date\n"
        "10,Ravi,Menon,10,Y,5 Oak St,560011,2021-01-01\n"
        "11,Sara,Nunes,10,N,6 Elm St,560012,2021-02-01\n"
        "20,Ivan,Petrov,20,Y,7 Ash St,560021,2021-03-01\n"
        "21,Lena,Ng,20,N,8 Fir St,560022,2021-04-01\n"
    ),
    "product.csv": (
        "id,name,current_price,old_price,created_date,updated_date,expiry_date\n"
        "1,soap,2.50,2.25,2023-01-01,2023-06-01,2026-01-01\n"
        "2,rice,10.00,9.50,2023-01-01,2023-06-01,2026-01-01\n"
        "3,tea,4.75,,2023-01-01,,2026-01-01\n"
    ),
}

_HEADER = "customer_id,store_id,product_name,sales_date,sales_person_id,price,quantity,total_cost\n"

#: First batch: three sales files over two months (bad rows, one extra column, another column
#: order) and one file that is not a CSV.
BATCH_1: dict[str, bytes] = {
    "sales_2024_03_a.csv": (
        _HEADER + "1,1,soap,2024-03-02,11,2.50,4,10.00\n"
        "2,1,rice,2024-03-05,11,10.00,3,30.00\n"
        "3,2,tea,2024-03-07,21,4.75,2,9.50\n"
        "99,1,soap,2024-03-08,11,2.50,1,2.50\n"  # unknown customer
        "4,2,rice,2024-03-09,21,10.00,0,0.00\n"  # quantity 0
        "1,1,tea,2024-02-30,10,4.75,1,4.75\n"  # not a real date
        "5,2,soap,2024-03-15,20,2.50,10,25.00\n"
    ).encode(),
    "sales_2024_03_b.csv": (
        b"sales_date,customer_id,store_id,sales_person_id,product_name,price,quantity,"
        b"total_cost,channel,coupon\n"
        b"2024-03-11,4,1,10,rice,10.00,2,20.00,web,SPRING\n"
        b'2024-03-12,5,2,21,"tea, green",4.75,4,19.00,store,\n'
        b"2024-04-01,1,2,20,soap,2.50,2,5.00,web,APRIL\n"
        b"2024-03-13,2,1,11,rice,10.00,1,11.00,web,\n"  # total_cost mismatch
        b"2024-04-02,3,1,10,tea,4.75,3,14.25,store,X\n"
    ),
    "sales_2024_04.csv": (
        _HEADER + "3,1,rice,2024-04-03,11,10.00,5,50.00\n"
        "4,2,soap,2024-04-04,21,2.50,8,20.00\n"
        "5,1,tea,2024-04-05,10,4.75,2,9.50\n"
        "1,2,rice,2024-04-06,20,abc,1,10.00\n"  # price does not parse
        "2,3,soap,2024-04-07,11,2.50,2,5.00\n"  # unknown store
        ",1,tea,2024-04-08,10,4.75,1,4.75\n"  # missing customer_id
        "2,1,soap,2024-04-09,99,2.50,2,5.00\n"  # unknown sales person
    ).encode(),
    "store_notes.json": b'{"note": "not a sales file"}\n',
}

#: Second batch: a late March file (changes March's totals and its top performer).
BATCH_2: dict[str, bytes] = {
    "sales_2024_03_late.csv": (
        _HEADER + "3,2,rice,2024-03-28,21,10.00,6,60.00\n"
        "1,2,tea,2024-03-29,21,4.75,2,9.50\n"
        "2,1,soap,2024-03-30,11,-2.50,1,-2.50\n"  # negative price
    ).encode(),
}

ALL_FILES: dict[str, bytes] = {**BATCH_1, **BATCH_2}

#: Files the mass-quarantine guard holds whole at its default (more than half of the rows bad):
#: sales_2024_04.csv has 4 bad rows of 7 (57 %); sales_2024_03_a.csv, 3 of 7, is loaded.
HELD_FILES = ("sales_2024_04.csv",)


def write_crash_dimensions(directory: Path) -> Path:
    """The crash scenario's four dimension CSVs (:data:`DIMENSIONS`, headers = the table columns)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in DIMENSIONS.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


# --- workspaces and runs -----------------------------------------------------------------------


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of an SQLite database (WAL included) through the backup API."""
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def new_workspace(root: Path, template_db: Path) -> Workspace:
    """A fresh workspace whose database already holds the dimensions (copied from a template)."""
    ws = Workspace(root).create()
    copy_sqlite(template_db, ws.db)
    return ws


def clone_workspace(source: Workspace, root: Path) -> Workspace:
    """A copy of a finished workspace (no run may be live in it)."""
    ws = Workspace(root)
    root.mkdir(parents=True)
    shutil.copytree(source.landing, ws.landing)
    shutil.copytree(source.marts, ws.marts)
    copy_sqlite(source.db, ws.db)
    return ws


def base_env(prefect_home: Path, api_url: str | None) -> dict[str, str]:
    """Environment of every `sales-etl` subprocess (small Spark, quiet Prefect)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SALES_ETL_", "PREFECT_"))}
    env.update(
        {
            "SALES_ETL_SPARK_MASTER": "local[2]",
            "SALES_ETL_SPARK_SHUFFLE_PARTITIONS": "2",
            "SALES_ETL_SPARK_DRIVER_MEMORY": "1g",
            "SALES_ETL_RETRY_DELAY_SECONDS": "0.2",
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYSPARK_PYTHON": sys.executable,
            # Tiny jobs on 2 shared cores: the C1 JIT alone and the serial GC halve the time of
            # a run here (measured 46-69 s against 111-127 s per clean run, load ~8).
            "JAVA_TOOL_OPTIONS": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
            "PREFECT_HOME": str(prefect_home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


@dataclass
class RunResult:
    """How one `sales-etl` subprocess ended."""

    returncode: int
    seconds: float
    log: Path
    started_wall: float  # time.time() at start, to place the log's time stamps
    killed_at: float | None = None  # seconds after start when the test SIGKILLed the group
    kill_reason: str | None = None
    stdout: Path | None = None  # the command's stdout alone, when run_cli(separate_stdout=True)

    def tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


@dataclass(frozen=True)
class KillAt:
    """SIGKILL the process group ``delay`` seconds after ``anchor`` (a regex) first shows up in
    the run's log (after the process start when ``anchor`` is None) -- or as soon as ``until``
    shows up, if that comes first, so the kill stays inside the phase even in a faster run."""

    delay: float
    anchor: str | None = None
    until: str | None = None


def _group_alive(pgid: int) -> bool:
    """Whether any non-zombie process is left in process group ``pgid``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _let_group_exit(proc: subprocess.Popen[bytes], seconds: float) -> None:
    """Give the rest of the group (the Spark JVM) ``seconds`` to exit by itself; the caller
    SIGKILLs whatever is left afterwards, so running out of time is not an error here."""
    with contextlib.suppress(WaitTimeout):
        wait_until(
            lambda: not _group_alive(proc.pid),
            timeout=seconds,
            describe=f"process group {proc.pid} gone",
            interval=0.1,
        )


def _wait_for_kill(
    proc: subprocess.Popen[bytes], log: Path, kill: KillAt, start: float
) -> str | None:
    """Wait for the kill instant (or the process end); returns why the group was killed."""
    deadline = None if kill.anchor else start + kill.delay
    anchor = re.compile(kill.anchor) if kill.anchor else None
    until = re.compile(kill.until) if kill.until else None
    seen = 0
    while proc.poll() is None:
        now = time.monotonic()
        with log.open("rb") as handle:
            handle.seek(seen)
            chunk = handle.read()
        # Only complete lines: a half-written line is read again next time.
        text = chunk[: chunk.rfind(b"\n") + 1]
        seen += len(text)
        lines = text.decode(errors="replace")
        if deadline is None and anchor is not None and anchor.search(lines):
            deadline = now + kill.delay
        if deadline is not None and now >= deadline:
            stop_process(proc, grace=0, group=True)
            return "at its instant"
        if deadline is not None and until is not None and until.search(lines):
            stop_process(proc, grace=0, group=True)
            return "at the phase end (run faster than the reference)"
        time.sleep(0.02)
    return None


def run_cli(
    args: list[str],
    ws: Workspace,
    env: dict[str, str],
    *,
    label: str,
    extra_env: dict[str, str] | None = None,
    kill: KillAt | None = None,
    timeout: float = 600,
    linger: float = 60,
    separate_stdout: bool = False,
) -> RunResult:
    """Run ``sales-etl ARGS`` against ``ws`` in its own session, output to a log file.

    ``kill``: SIGKILL the whole process group at that instant (if still running). After a
    clean exit the group's other processes (the Spark JVM) get ``linger`` seconds to exit by
    themselves; after that, or after any other end, whatever is left of the group is
    SIGKILLed, so a crashed run cannot keep writing into the workspace while the next starts.
    ``separate_stdout``: stdout goes to its own file (``RunResult.stdout``, e.g. for
    ``run --json``), only stderr to the log.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    log = ws.root / f"{len(ws.logs):02d}-{slug}.log"
    ws.logs.append(log)
    full_env = {**env, **ws.env(), **(extra_env or {})}
    killed_at = kill_reason = None
    stdout = log.with_suffix(".stdout") if separate_stdout else None
    with log.open("wb") as out, (stdout or Path(os.devnull)).open("wb") as std:
        started_wall, start = time.time(), time.monotonic()
        proc = subprocess.Popen(
            [SALES_ETL, *args],
            env=full_env,
            cwd=ws.root,
            stdout=std if stdout else out,
            stderr=out if stdout else subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            if kill is not None:
                kill_reason = _wait_for_kill(proc, log, kill, start)
                if kill_reason:
                    killed_at = time.monotonic() - start
            proc.wait(timeout=timeout)
            seconds = time.monotonic() - start
            if proc.returncode == 0:
                _let_group_exit(proc, linger)
        finally:
            stop_process(proc, grace=0, group=True)
    # A SIGKILLed process dies when the kernel gets to it: read the workspace only once nothing
    # of this run is left that could still write into it (the Spark JVM, Prefect helpers).
    wait_until(
        lambda: not _group_alive(proc.pid),
        timeout=60,
        describe=f"every process of `sales-etl {args[0]}` (group {proc.pid}) gone after SIGKILL",
        interval=0.1,
    )
    return RunResult(proc.returncode, seconds, log, started_wall, killed_at, kill_reason, stdout)


_STAMP = re.compile(r"^(\d{2}):(\d{2}):(\d{2}\.\d+) \|")


def log_offsets(result: RunResult, pattern: str) -> list[float]:
    """Seconds after the process start of every log line matching ``pattern``."""
    start = time.localtime(result.started_wall)
    start_of_day = start.tm_hour * 3600 + start.tm_min * 60 + start.tm_sec
    start_of_day += result.started_wall % 1
    offsets = []
    regex = re.compile(pattern)
    for line in result.log.read_text(errors="replace").splitlines():
        stamp = _STAMP.match(line)
        if stamp and regex.search(line):
            h, m, sec = int(stamp[1]), int(stamp[2]), float(stamp[3])
            offsets.append((h * 3600 + m * 60 + sec - start_of_day) % 86400)
    return offsets


# --- a class-data-sharing archive for the Spark JVM ----------------------------------------------

_WARM_UP = """
import sys
from pathlib import Path

import pandas as pd
from sales_etl.settings import Settings
from sales_etl.spark import start_spark, stop_spark

work = Path(sys.argv[1])
(work / "in.csv").write_text("a,b,c\\n1,x,2024-03-01\\n2,y,2024-04-01\\n")
spark = start_spark(Settings(spark_master="local[2]", spark_shuffle_partitions=2,
                             spark_driver_memory="1g"))
dims = spark.createDataFrame(pd.DataFrame({"a": ["1", "2"], "name": ["p", "q"]}))
frame = spark.read.option("header", "true").csv(str(work / "in.csv")).join(dims, "a", "left")
frame.write.mode("overwrite").partitionBy("c").parquet(str(work / "out"))
spark.read.parquet(str(work / "out")).groupBy("c").count().collect()
list(spark.read.parquet(str(work / "out")).toLocalIterator())
stop_spark()
"""


def dump_class_archive(archive: Path, env: dict[str, str], work: Path) -> float:
    """Run a small Spark job with ``-XX:ArchiveClassesAtExit``; returns seconds taken.

    Every later JVM maps the archive (``-XX:SharedArchiveFile``) instead of loading and
    verifying Spark's classes from the jars again. A missing archive only costs speed.
    """
    work.mkdir(parents=True, exist_ok=True)
    java_opts = f"{env.get('JAVA_TOOL_OPTIONS', '')} -XX:ArchiveClassesAtExit={archive}"
    start = time.monotonic()
    with (work / "warm-up.log").open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", _WARM_UP, str(work)],
            env={**env, "JAVA_TOOL_OPTIONS": java_opts.strip()},
            cwd=work,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=300)
            _let_group_exit(proc, 60)  # the JVM writes the archive as it exits
        finally:
            stop_process(proc, grace=0, group=True)
    return time.monotonic() - start


def with_class_archive(env: dict[str, str], archive: Path) -> dict[str, str]:
    """``env`` whose JVMs map ``archive`` (unchanged if there is none)."""
    if not archive.is_file():
        return env
    java_opts = f"{env.get('JAVA_TOOL_OPTIONS', '')} -XX:SharedArchiveFile={archive}"
    return {**env, "JAVA_TOOL_OPTIONS": java_opts.strip()}


# --- the comparable state of a workspace -------------------------------------------------------


def _norm(value: Any) -> str:
    return "<null>" if value is None else f"{type(value).__name__}:{value}"


def _sql_rows(db: Path, table: str) -> list[tuple[str, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        cursor = conn.execute(f"SELECT * FROM {table}")
        names = [d[0] for d in cursor.description]
        rows = [tuple(f"{n}={_norm(v)}" for n, v in zip(names, row, strict=True)) for row in cursor]
    finally:
        conn.close()
    return sorted(rows)


def mart_rows(mart_root: Path) -> list[tuple[str, ...]]:
    """Every row of a Parquet mart, partition values included, ``batch_id`` dropped; sorted.

    Rows are compared as a sorted list (a multiset), so a duplicated row is a difference.
    """
    import pyarrow.parquet as pq

    rows: list[tuple[str, ...]] = []
    if not mart_root.is_dir():
        return rows
    for path in sorted(mart_root.rglob("*.parquet")):
        rel = path.relative_to(mart_root).parts
        partitions = dict(part.split("=", 1) for part in rel[:-1] if "=" in part)
        table = pq.read_table(path, partitioning=None)
        names = [n for n in table.column_names if n != "batch_id"]
        for record in table.select(names).to_pylist():
            values = {**{k: _norm(v) for k, v in record.items()}, **partitions}
            rows.append(tuple(f"{k}={values[k]}" for k in sorted(values)))
    return sorted(rows)


def partial_sums(root: Path) -> list[tuple[str, ...]]:
    """A partial aggregate folder summed over batches: one row per key (month included) with
    its summed amounts and counts, sorted. Equal for any split of the same mart rows into
    batches, and it counts a rolled-back batch's leftover file as a difference."""
    import pyarrow.parquet as pq

    sums: dict[tuple[str, ...], dict[str, Any]] = {}
    for path in sorted(root.rglob("*.parquet")) if root.is_dir() else []:
        if path.name.startswith((".", "_")):
            continue
        month = path.parent.name
        for record in pq.read_table(path, partitioning=None).to_pylist():
            key = (
                month,
                *(f"{k}={_norm(v)}" for k, v in sorted(record.items()) if k not in PARTIAL_SUMS),
            )
            total = sums.setdefault(key, {})
            for name in PARTIAL_SUMS:
                if name in record:
                    total[name] = total.get(name, 0) + record[name]
    return sorted(
        (*key, *(f"{k}={_norm(v)}" for k, v in sorted(t.items()))) for key, t in sums.items()
    )


def landing_places(landing: Path) -> dict[str, list[str]]:
    """File name -> every place it is in the landing zone, batch folders shown as ``<batch>``."""
    places: dict[str, list[str]] = defaultdict(list)
    for path in sorted(p for p in landing.rglob("*") if p.is_file()):
        parts = [
            "<batch>" if BATCH_RE.match(part) else part for part in path.relative_to(landing).parts
        ]
        places[path.name].append("/".join(parts))
    return {name: sorted(found) for name, found in sorted(places.items())}


def landing_checksums(landing: Path) -> dict[str, list[str]]:
    """File name -> sha256 of every copy of it in the landing zone."""
    sums: dict[str, list[str]] = defaultdict(list)
    for path in sorted(p for p in landing.rglob("*") if p.is_file()):
        sums[path.name].append(hashlib.sha256(path.read_bytes()).hexdigest())
    return dict(sums)


def journal(db: Path) -> dict[str, Any]:
    """Latest staging status per file name, open staging rows, open runs."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        latest = dict(
            conn.execute(
                "SELECT file_name, status FROM staging_files s WHERE id = "
                "(SELECT MAX(id) FROM staging_files t WHERE t.file_name = s.file_name)"
            ).fetchall()
        )
        active = conn.execute(
            "SELECT file_name, run_id FROM staging_files WHERE status = 'ACTIVE'"
        ).fetchall()
        open_runs = conn.execute(
            "SELECT run_id, status FROM etl_runs WHERE status IN ('STARTED', 'LOADED')"
        ).fetchall()
    finally:
        conn.close()
    return {
        "latest_status": dict(sorted(latest.items())),
        "active_rows": sorted(active),
        "open_runs": sorted(open_runs),
    }


def workspace_state(ws: Workspace) -> dict[str, Any]:
    """Everything that must be equal between a workspace and the clean reference."""
    return {
        "customer_monthly_purchase": _sql_rows(ws.db, "customer_monthly_purchase"),
        "sales_team_incentive": _sql_rows(ws.db, "sales_team_incentive"),
        **{f"mart:{name}": mart_rows(ws.marts / name) for name in MART_NAMES},
        **{f"partials:{name}": partial_sums(ws.marts / name) for name in PARTIAL_NAMES},
        "marts_top_level": sorted(p.name for p in ws.marts.iterdir()),
        "landing": landing_places(ws.landing),
        **journal(ws.db),
    }


def diff_states(actual: dict[str, Any], expected: dict[str, Any]) -> str:
    """A readable summary of which parts differ (the full values follow in pytest's diff)."""
    lines = []
    for key in sorted(set(actual) | set(expected)):
        a, e = actual.get(key), expected.get(key)
        if a == e:
            continue
        if isinstance(a, list) and isinstance(e, list):
            missing = _multiset_minus(e, a)
            extra = _multiset_minus(a, e)
            lines.append(f"{key}: {len(missing)} missing, {len(extra)} unexpected")
            lines += [f"    - {row}" for row in missing[:5]]
            lines += [f"    + {row}" for row in extra[:5]]
        else:
            lines.append(f"{key}:\n    expected {e}\n    actual   {a}")
    return "\n".join(lines)


def _multiset_minus(left: list[Any], right: list[Any]) -> list[Any]:
    remaining = list(right)
    out = []
    for item in left:
        if item in remaining:
            remaining.remove(item)
        else:
            out.append(item)
    return out


def assert_nothing_lost(ws: Workspace, names: dict[str, bytes]) -> None:
    """Every input file is in exactly one place in the landing zone, byte for byte."""
    places = landing_places(ws.landing)
    sums = landing_checksums(ws.landing)
    for name, data in names.items():
        found = places.get(name, [])
        assert len(found) == 1, f"{name} should be in exactly one place, found {found}"
        assert sums[name] == [hashlib.sha256(data).hexdigest()], f"{name} changed bytes"


_TASK_LINE = re.compile(r"Task run '(?P<task>[a-z0-9-]+?)-[0-9a-f]{3}' - (?P<what>.*)")


def last_step(log: Path) -> str:
    """The last task a run's log mentions, with what it said (where a killed run was)."""
    last = "before the first task"
    for line in log.read_text(errors="replace").splitlines():
        match = _TASK_LINE.search(line)
        if match:
            what = "finished" if match["what"].startswith("Finished") else "running"
            last = f"{match['task']} ({what})"
    return last
