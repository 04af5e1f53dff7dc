"""Validator plugins in a real run: the Prefect flow in-process, real Spark, SQLite, folders.

The example package ``plugins/sales-etl-date-window`` is installed with pip (into a site
folder put on ``sys.path`` for this module, so the shared virtualenv and the other test
modules never see it) and found through its ``sales_etl`` entry point; the single-file example
``plugins/examples/max_file_size.py`` and a plugin that crashes are loaded from
``SALES_ETL_PLUGINS_DIR``. One run shows all three acting on real files next to a good file
that is loaded; a second run, with ``SALES_ETL_DISABLE_PLUGINS``, loads the refused files.

Expected values are written out by hand here, not computed with the product's code.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from harness import Workspace
from helpers import (
    SALES_COLUMNS,
    csv_bytes,
    files_under,
    load_dimension_folder,
    read_table,
    write_dimensions,
)

pytestmark = pytest.mark.slow  # pip-installs a plugin and runs the nightly flow twice

REPO = Path(__file__).resolve().parents[1]
PACKAGE_SOURCE = REPO / "plugins" / "sales-etl-date-window"
MAX_FILE_SIZE_PLUGIN = REPO / "plugins" / "examples" / "max_file_size.py"

CRASHING_PLUGIN = """
from sales_etl.validators import hookimpl


@hookimpl
def sales_etl_validate_file(file):
    if "poison" in file.name:
        raise KeyError("no price list for " + file.name)
    return None
"""

#: Every plugin this module adds, as SALES_ETL_DISABLE_PLUGINS names them.
ADDED_PLUGINS = ("date_window", "dir.max_file_size", "dir.crash_on_poison")
SIZE_LIMIT = 400  # bytes: the small files are below it, sales_big.csv above


def sales(*rows: tuple[int, str, str, int]) -> bytes:
    """A sales file of ``(customer_id, sales_date, price, quantity)`` rows (store 1, person 1)."""
    return csv_bytes(
        SALES_COLUMNS,
        [
            [cid, 1, "apple", day, 1, price, qty, f"{Decimal(price) * qty:.2f}"]
            for cid, day, price, qty in rows
        ],
    )


FILES: dict[str, bytes] = {
    # Inside the window of its name (2024-03-20 +/- 1 day): loaded.
    "sales_2024-03-20.csv": sales((1, "2024-03-20", "2.00", 3), (2, "2024-03-21", "1.50", 2)),
    # A row twelve days after the date in the name: date_window refuses it.
    "sales_20240321.csv": sales((1, "2024-03-21", "4.00", 1), (2, "2024-04-02", "5.00", 1)),
    # No date in the name, above SIZE_LIMIT: max_file_size refuses it.
    "sales_big.csv": sales(*[(1, "2024-03-05", "1.00", 1)] * 20),
    # The crashing plugin raises on it.
    "sales_poison.csv": sales((2, "2024-03-06", "7.00", 1)),
}


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site_with_date_window(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``pip install`` the example package into a folder on ``sys.path`` for this module."""
    root = tmp_path_factory.mktemp("date_window_install")
    source = root / "src"  # build from a copy: the build leaves build/ and *.egg-info behind
    shutil.copytree(
        PACKAGE_SOURCE,
        source,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"),
    )
    site = root / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", site, source],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(site))  # also invalidates the import caches
        yield site
    sys.modules.pop("sales_etl_date_window", None)
    importlib.invalidate_caches()


@pytest.fixture(scope="module")
def plugins_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A plugins folder as an operator would mount it: the size example and a crasher."""
    folder = tmp_path_factory.mktemp("plugins")
    shutil.copy(MAX_FILE_SIZE_PLUGIN, folder / "max_file_size.py")
    (folder / "crash_on_poison.py").write_text(CRASHING_PLUGIN)
    yield folder
    for stem in ("max_file_size", "crash_on_poison"):
        sys.modules.pop(f"sales_etl_plugin_{stem}", None)


@pytest.fixture(scope="module")
def plugin_env(site_with_date_window: Path, plugins_dir: Path) -> Iterator[pytest.MonkeyPatch]:
    """The environment a run reads its plugin settings from (nothing inherited)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SALES_ETL_PLUGINS_DIR", str(plugins_dir))
        mp.setenv("SALES_ETL_DISABLE_PLUGINS", "")
        mp.setenv("SALES_ETL_MAX_FILE_BYTES", str(SIZE_LIMIT))
        mp.delenv("SALES_ETL_DATE_WINDOW_DAYS", raising=False)
        yield mp


@pytest.fixture(scope="module")
def workspace_with_plugins(
    tmp_path_factory: pytest.TempPathFactory, spark, prefect_api, plugin_env
) -> Workspace:
    """A workspace whose database holds tiny dimensions (customers 1 and 2, store 1, sales
    person 1, product apple)."""
    ws = Workspace(tmp_path_factory.mktemp("plugins_flow")).create()
    write_dimensions(
        ws.root / "dims",
        customer=[
            {"customer_id": 1, "first_name": "Asha", "last_name": "Rao", "pincode": "560001"},
            {"customer_id": 2, "first_name": "Ben", "last_name": "Cole", "pincode": "560002"},
        ],
        store=[{"id": 1, "address": "1 Main St", "store_manager_name": "Mona Shah"}],
        sales_team=[
            {"id": 1, "first_name": "Ann", "last_name": "Lee", "is_manager": "N"},
        ],
        product=[{"id": 1, "name": "apple", "current_price": "1.00"}],
    )
    counts = load_dimension_folder(ws.database_url, ws.root / "dims")
    assert counts == {"customer": 2, "store": 1, "sales_team": 1, "product": 1}
    return ws


def run(ws: Workspace) -> dict[str, Any]:
    """One flow run in ``ws`` (local[2]); its summary."""
    return ws.run_flow(spark_master="local[2]")


def staging(ws: Workspace, run_id: str) -> dict[str, dict[str, Any]]:
    """``staging_files`` rows of one run, by file name."""
    rows = read_table(ws.database_url, "staging_files", order_by=["id"])
    return {r["file_name"]: r for r in rows if r["run_id"] == run_id}


@pytest.fixture(scope="module")
def first_run(workspace_with_plugins: Workspace) -> dict[str, Any]:
    """One run over FILES with every added plugin enabled."""
    workspace_with_plugins.drop(FILES)
    return run(workspace_with_plugins)


def outcomes(summary: dict[str, Any]) -> dict[str, tuple[str, str | None, str | None]]:
    return {
        f["file"].rsplit("/", 1)[-1]: (f["outcome"], f["plugin"], f["reason"])
        for f in summary["files"]
    }


# --- the installed package and the plugins folder ------------------------------------------------


def test_pip_installed_package_is_found_by_its_entry_point(site_with_date_window: Path) -> None:
    found = {ep.name: ep for ep in importlib.metadata.entry_points(group="sales_etl")}
    assert found["date_window"].value == "sales_etl_date_window"
    assert found["date_window"].dist.name == "sales-etl-date-window"
    assert importlib.metadata.version("sales-etl-date-window") == "0.1.0"
    module = importlib.import_module("sales_etl_date_window")
    assert Path(module.__file__).is_relative_to(site_with_date_window)


def test_sales_etl_plugins_lists_every_source(
    plugin_env, site_with_date_window: Path, plugins_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {**os.environ, "PYTHONPATH": str(site_with_date_window)}
    done = subprocess.run(
        [sys.executable, "-m", "sales_etl.cli", "plugins", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["call_order"] == [
        "builtin.file_type",
        "dir.max_file_size",  # tryfirst
        "builtin.header_schema",
        "dir.crash_on_poison",
        "date_window",  # trylast
        "builtin.extra_columns",
    ]
    by_name = {p["name"]: p for p in report["plugins"]}
    assert (by_name["date_window"]["source"], by_name["date_window"]["distribution"]) == (
        "entry point",
        "sales-etl-date-window",
    )
    assert by_name["date_window"]["version"] == "0.1.0"
    assert by_name["dir.max_file_size"]["source"] == "plugins dir"
    assert by_name["dir.max_file_size"]["file"] == str(plugins_dir / "max_file_size.py")

    # The same, in this process (where the site folder is on sys.path), as a table.
    from sales_etl.cli import main

    assert main(["plugins"]) == 0
    text = capsys.readouterr().out
    assert "date_window" in text
    assert "entry point sales-etl-date-window 0.1.0" in text
    assert f"plugins dir {plugins_dir / 'max_file_size.py'}" in text


# --- one run: each plugin acts on its file, the good file is loaded ------------------------------


def test_each_plugin_decides_its_file_in_the_summary(first_run: dict[str, Any]) -> None:
    assert outcomes(first_run) == {
        "sales_2024-03-20.csv": ("accepted", None, None),
        "sales_20240321.csv": (
            "out_of_window",
            "date_window",
            "1 of 2 rows have a sales_date outside 2024-03-20..2024-03-22 (file name date "
            "2024-03-21 +/- 1 day(s), SALES_ETL_DATE_WINDOW_DAYS); first: row 2 has 2024-04-02",
        ),
        "sales_big.csv": (
            "too_large",
            "dir.max_file_size",
            f"file is {len(FILES['sales_big.csv']):,} bytes, above the 400-byte limit "
            "(SALES_ETL_MAX_FILE_BYTES)",
        ),
        "sales_poison.csv": (
            "unknown",
            "dir.crash_on_poison",
            "validator plugin 'dir.crash_on_poison' crashed: KeyError: "
            "'no price list for sales_poison.csv'",
        ),
    }
    assert first_run["files_by_outcome"] == {
        "accepted": 1,
        "out_of_window": 1,
        "too_large": 1,
        "unknown": 1,
    }


def test_refused_files_land_in_their_plugin_categories(
    first_run: dict[str, Any], workspace_with_plugins: Workspace
) -> None:
    batch = first_run["batch_id"]
    assert files_under(workspace_with_plugins.landing) == sorted(
        [
            f"error_files/out_of_window/{batch}/sales_20240321.csv",
            f"error_files/too_large/{batch}/sales_big.csv",
            f"error_files/unknown/{batch}/sales_poison.csv",
            f"processed/{batch}/sales_2024-03-20.csv",
        ]
    )
    for place in files_under(workspace_with_plugins.landing):  # bytes unchanged
        name = place.rsplit("/", 1)[-1]
        assert (workspace_with_plugins.landing / place).read_bytes() == FILES[name]


def test_staging_table_records_each_plugin_reason(
    first_run: dict[str, Any], workspace_with_plugins: Workspace
) -> None:
    staged = staging(workspace_with_plugins, first_run["run_id"])
    assert {name: (r["status"], r["category"]) for name, r in staged.items()} == {
        "sales_2024-03-20.csv": ("COMPLETED", None),
        "sales_20240321.csv": ("REJECTED", "out_of_window"),
        "sales_big.csv": ("REJECTED", "too_large"),
        "sales_poison.csv": ("REJECTED", "unknown"),
    }
    summary_reasons = {name: o[2] for name, o in outcomes(first_run).items()}
    for name, row in staged.items():
        assert row["reason"] == summary_reasons[name]
    assert "dir.crash_on_poison" in staged["sales_poison.csv"]["reason"]


def test_the_run_report_artifact_shows_each_plugin_reason(
    first_run: dict[str, Any], workspace_with_plugins: Workspace
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    from sales_etl.artifacts import FILES_KEY

    runs = read_table(workspace_with_plugins.database_url, "etl_runs")
    flow_run_id = next(r["flow_run_id"] for r in runs if r["run_id"] == first_run["run_id"])
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[FILES_KEY]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            )
        )
    assert len(artifacts) == 1
    table = artifacts[0].data
    table = json.loads(table) if isinstance(table, str) else table
    shown = {row["file"].rsplit("/", 1)[-1]: (row["plugin"], row["reason"]) for row in table}
    for name, (_, plugin, reason) in outcomes(first_run).items():
        if plugin is not None:
            assert shown[name] == (plugin, reason)


def test_the_run_completes_and_loads_the_good_file(
    first_run: dict[str, Any], workspace_with_plugins: Workspace
) -> None:
    assert (first_run["rows_total"], first_run["rows_loaded"]) == (2, 2)
    monthly = read_table(
        workspace_with_plugins.database_url, "customer_monthly_purchase", ["customer_id"]
    )
    assert [(r["customer_id"], r["year"], r["month"], r["monthly_total"]) for r in monthly] == [
        (1, 2024, 3, Decimal("6.00")),
        (2, 2024, 3, Decimal("3.00")),
    ]
    runs = read_table(workspace_with_plugins.database_url, "etl_runs")
    assert [r["status"] for r in runs if r["run_id"] == first_run["run_id"]] == ["COMPLETED"]


# --- the operator switches the plugins off and sends the refused files again ---------------------


@pytest.fixture(scope="module")
def resent_workspace(
    first_run: dict[str, Any],
    workspace_with_plugins: Workspace,
    tmp_path_factory: pytest.TempPathFactory,
) -> Workspace:
    """A copy of the workspace as the first run left it, for the second run: the first run's
    own workspace stays as it was, whatever order the tests run in."""
    ws = Workspace(tmp_path_factory.mktemp("plugins_flow_resent") / "ws")
    shutil.copytree(workspace_with_plugins.root, ws.root)
    return ws


@pytest.fixture(scope="module")
def run_with_plugins_disabled(
    resent_workspace: Workspace, plugin_env: pytest.MonkeyPatch
) -> dict[str, Any]:
    plugin_env.setenv("SALES_ETL_DISABLE_PLUGINS", ",".join(ADDED_PLUGINS))
    try:
        resent_workspace.drop({k: v for k, v in FILES.items() if k != "sales_2024-03-20.csv"})
        return run(resent_workspace)
    finally:
        plugin_env.setenv("SALES_ETL_DISABLE_PLUGINS", "")


def test_disabled_plugins_do_not_act(
    run_with_plugins_disabled: dict[str, Any], resent_workspace: Workspace
) -> None:
    summary = run_with_plugins_disabled
    assert {name: o[0] for name, o in outcomes(summary).items()} == {
        "sales_20240321.csv": "accepted",
        "sales_big.csv": "accepted",
        "sales_poison.csv": "accepted",
    }
    assert (summary["rows_total"], summary["rows_loaded"]) == (23, 23)
    batch = summary["batch_id"]
    assert [p for p in files_under(resent_workspace.landing) if batch in p] == [
        f"processed/{batch}/sales_20240321.csv",
        f"processed/{batch}/sales_big.csv",
        f"processed/{batch}/sales_poison.csv",
    ]
    staged = staging(resent_workspace, summary["run_id"])
    assert {name: r["status"] for name, r in staged.items()} == dict.fromkeys(
        ["sales_20240321.csv", "sales_big.csv", "sales_poison.csv"], "COMPLETED"
    )
