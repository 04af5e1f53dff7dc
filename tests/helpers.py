"""Generic helpers for tests that build inputs by hand and read the product's outputs back.

Nothing here calls the product's own generator or transforms: inputs are written as bytes and
outputs are read with plain tools (csv, hashlib, pyarrow, SQLAlchemy), so that expected values
computed by a test stay independent of the code under test.

:func:`wait_until` is the one way tests wait for anything that happens asynchronously (a server
becoming ready, Prefect logs and task run states reaching the API, a process exiting).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: Column names of the four dimension files (the tables' columns in ``sales_etl.db.schema``).
DIMENSION_HEADERS: dict[str, tuple[str, ...]] = {
    "customer": (
        "customer_id",
        "first_name",
        "last_name",
        "address",
        "pincode",
        "phone_number",
        "customer_joining_date",
    ),
    "store": (
        "id",
        "address",
        "store_pincode",
        "store_manager_name",
        "store_opening_date",
        "reviews",
    ),
    "sales_team": (
        "id",
        "first_name",
        "last_name",
        "manager_id",
        "is_manager",
        "address",
        "pincode",
        "joining_date",
    ),
    "product": (
        "id",
        "name",
        "current_price",
        "old_price",
        "created_date",
        "updated_date",
        "expiry_date",
    ),
}

#: The mandatory sales columns, in the order DESIGN.md lists them.
SALES_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "store_id",
    "product_name",
    "sales_date",
    "sales_person_id",
    "price",
    "quantity",
    "total_cost",
)


# --- writing inputs ------------------------------------------------------------------------------


def csv_bytes(
    header: Sequence[str],
    rows: Iterable[Sequence[object] | Mapping[str, object]],
    *,
    line_end: str = "\n",
    bom: bool = False,
    quote_all: bool = False,
) -> bytes:
    """UTF-8 CSV bytes (RFC 4180 quoting by :mod:`csv`) for ``header`` and ``rows``.

    A row is a sequence in header order or a mapping by column name (missing keys -> empty).
    ``None`` values are written as empty fields.
    """
    buffer = io.StringIO(newline="")
    writer = csv.writer(
        buffer,
        lineterminator=line_end,
        quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL,
    )
    writer.writerow(header)
    for row in rows:
        values = [row.get(name) for name in header] if isinstance(row, Mapping) else list(row)
        writer.writerow(["" if v is None else v for v in values])
    data = buffer.getvalue().encode("utf-8")
    return (b"\xef\xbb\xbf" + data) if bom else data


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` (parents created); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


def write_dimensions(
    directory: str | os.PathLike[str],
    *,
    customer: Iterable[Mapping[str, object]] = (),
    store: Iterable[Mapping[str, object]] = (),
    sales_team: Iterable[Mapping[str, object]] = (),
    product: Iterable[Mapping[str, object]] = (),
) -> Path:
    """Write ``customer.csv``, ``store.csv``, ``sales_team.csv`` and ``product.csv``.

    Each row is a mapping by column name; columns it leaves out are written empty.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    tables = {"customer": customer, "store": store, "sales_team": sales_team, "product": product}
    for name, rows in tables.items():
        header = DIMENSION_HEADERS[name]
        rows = list(rows)
        unknown = {k for row in rows for k in row} - set(header)
        if unknown:
            raise ValueError(f"{name}: unknown columns {sorted(unknown)}")
        (folder / f"{name}.csv").write_bytes(csv_bytes(header, rows))
    return folder


def load_dimension_folder(database_url: str, directory: str | os.PathLike[str]) -> dict[str, int]:
    """Create the product's tables and load the four dimension CSVs of ``directory``."""
    from sales_etl.db.dimensions import load_dimensions
    from sales_etl.db.engine import init_db, make_engine

    engine = make_engine(database_url)
    try:
        init_db(engine)
        return load_dimensions(engine, directory)
    finally:
        engine.dispose()


# --- reading inputs back -------------------------------------------------------------------------


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def csv_records(data: bytes) -> list[list[str]]:
    """Every non-blank record after the header, parsed with :mod:`csv` (UTF-8, BOM dropped)."""
    text = data.decode("utf-8-sig")
    records = list(csv.reader(io.StringIO(text, newline="")))
    return [r for r in records[1:] if r]


def feed_in_chunks(feed: Callable[[bytes], None], data: bytes, cuts: Iterable[int]) -> None:
    """Call ``feed`` with ``data`` cut at ``cuts`` (any order, repeats and out-of-range cuts
    ignored), as a streaming reader hands out chunks."""
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        if start < cut <= len(data):
            feed(data[start:cut])
            start = cut


def count_csv_records(data: bytes) -> int:
    """Number of non-blank data records (header excluded) in CSV bytes."""
    return len(csv_records(data))


# --- reading outputs -----------------------------------------------------------------------------


def tree_snapshot(root: str | os.PathLike[str]) -> dict[str, str]:
    """``{relative POSIX path: sha256}`` of every file under ``root`` (empty if it is missing)."""
    base = Path(root)
    if not base.exists():
        return {}
    return {
        path.relative_to(base).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(base.rglob("*"))
        if path.is_file()
    }


def files_under(root: str | os.PathLike[str], suffix: str = "") -> list[str]:
    """Sorted relative POSIX paths of the files under ``root`` ending with ``suffix``.

    ``os.walk`` skips a folder that vanishes while it is walked (``Path.rglob`` raises): a
    JVM of the other test session removes its own ``/tmp/blockmgr-*`` folders at any moment.
    """
    base = Path(root)
    return sorted(
        (Path(folder, name).relative_to(base)).as_posix()
        for folder, _subfolders, names in os.walk(base)
        for name in names
        if name.endswith(suffix) and os.path.isfile(os.path.join(folder, name))
    )


def read_parquet_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every row of a Parquet folder (hive partitions ``k=v`` become columns) as plain dicts.

    Partition values are returned as strings, exactly as they appear in the folder names.
    Hidden and side files (``.``/``_`` prefixes, ``.crc``) are ignored. A missing folder
    reads as no rows.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    base = Path(path)
    if not base.exists():
        return []
    files = [p for p in base.rglob("*.parquet") if not p.name.startswith((".", "_"))]
    if not files:
        return []
    # Keep the partition columns in folder order (outermost first).
    ordered: list[str] = []
    for f in files:
        for part in f.relative_to(base).parts[:-1]:
            name = part.split("=", 1)[0]
            if "=" in part and name not in ordered:
                ordered.append(name)
    partitioning = (
        ds.partitioning(pa.schema([(k, pa.string()) for k in ordered]), flavor="hive")
        if ordered
        else None
    )
    dataset = ds.dataset(
        [str(f) for f in sorted(files)],
        format="parquet",
        partitioning=partitioning,
        partition_base_dir=str(base),
    )
    return dataset.to_table().to_pylist()


def read_table(
    database_url: str, table_name: str, order_by: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """All rows of one of the product's tables as dicts (SQLAlchemy types: Money -> Decimal)."""
    from sqlalchemy import select

    from sales_etl.db.engine import make_engine
    from sales_etl.db.schema import metadata

    table = metadata.tables[table_name]
    query = select(table)
    if order_by:
        query = query.order_by(*[table.c[name] for name in order_by])
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]
    finally:
        engine.dispose()


#: The reporting tables' columns, in the order tests write their expected tuples.
REPORTING_COLUMNS: dict[str, tuple[str, ...]] = {
    "customer_monthly_purchase": (
        "customer_id",
        "first_name",
        "last_name",
        "year",
        "month",
        "monthly_total",
    ),
    "sales_team_incentive": (
        "sales_person_id",
        "first_name",
        "last_name",
        "year",
        "month",
        "total_sales",
        "incentive",
    ),
}


def reporting_table_rows(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Both reporting tables as sorted tuples of :data:`REPORTING_COLUMNS` (Money -> Decimal)."""
    return {
        table: sorted(tuple(r[c] for c in columns) for r in read_table(database_url, table))
        for table, columns in REPORTING_COLUMNS.items()
    }


# --- waiting for asynchronous results ------------------------------------------------------------


class WaitTimeout(AssertionError):
    """:func:`wait_until` gave up: its condition did not hold before the deadline."""


def _shown(text: str, limit: int = 4000) -> str:
    return text if len(text) <= limit else "..." + text[-limit:]


def wait_until(
    probe: Callable[[], T],
    done: Callable[[T], object] = bool,
    *,
    timeout: float,
    describe: str,
    interval: float = 0.5,
    retry_on: tuple[type[Exception], ...] = (),
    show: Callable[[T], str] = repr,
    context: Callable[[], str] | None = None,
) -> T:
    """Call ``probe()`` every ``interval`` seconds until ``done(value)`` is true; return the value.

    For everything a test reads that is shipped or written asynchronously: Prefect sends a
    run's logs in batches from a background thread and task run states as events, so both can
    reach the API after the flow run's final state; servers answer some time after they start;
    a JVM exits after its parent. Read such a thing until the condition the test asserts holds,
    never once, and never after a fixed ``time.sleep``.

    - ``probe`` may raise to stop waiting at once (e.g. an ``AssertionError`` when the process
      that should produce the value has exited); exceptions of a type in ``retry_on`` mean "not
      yet" (a server not listening yet) and are shown as the last thing seen.
    - ``timeout`` and ``interval`` are in seconds (``time.monotonic``); ``probe`` runs at least
      once, the last time at or after the deadline.
    - Raises :class:`WaitTimeout` (an ``AssertionError``) ``"<describe>: not so after <timeout> s;
      last seen: <show(value)>"``, followed by ``context()`` when given (e.g. a log's tail).
    """
    deadline = time.monotonic() + timeout
    last = "nothing (the probe never returned)"
    while True:
        try:
            value = probe()
        except retry_on as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if done(value):
                return value
            last = show(value)
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    message = f"{describe}: not so after {timeout:g} s; last seen: {_shown(last)}"
    if context is not None:
        message += f"\n{context()}"
    raise WaitTimeout(message)


def flow_run_artifacts(flow_run_id: Any) -> dict[str, Any]:
    """The artifacts a flow run published, by key (tables parsed), read from the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {
        a.key: json.loads(a.data) if isinstance(a.data, str) and a.type == "table" else a.data
        for a in found
    }
