"""The plugin author's toolkit without Spark: the testing helpers, the single-file example
plugin, the ``sales-etl plugins`` report, and the example package's own test suite."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pluggy
import pytest

from sales_etl.cli import main
from sales_etl.validators import UNKNOWN, IncomingFile, Rejection, hookimpl
from sales_etl.validators.listing import format_plugin_report, hook_signatures, plugin_report
from sales_etl.validators.manager import call_order, get_plugin_manager, validate_file
from sales_etl.validators.schemas import MANDATORY_COLUMNS
from sales_etl.validators.testing import (
    DEFAULT_SALE,
    incoming_file,
    isolated_settings,
    plugin_manager,
    sales_csv,
)

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "plugins" / "examples"
PACKAGE = REPO / "plugins" / "sales-etl-date-window"
HOOK = "sales_etl_validate_file"
BUILTINS = ["builtin.file_type", "builtin.header_schema", "builtin.extra_columns"]


class First:
    @hookimpl(tryfirst=True)
    def sales_etl_validate_file(self, file: IncomingFile) -> None:
        return None


class Plain:
    @hookimpl
    def sales_etl_validate_file(self, file: IncomingFile) -> None:
        return None


class Last:
    @hookimpl(trylast=True)
    def sales_etl_validate_file(self, file: IncomingFile) -> None:
        return None


# --- sales_etl.validators.testing ----------------------------------------------------------------


def test_plugin_manager_orders_plugins_as_a_real_run_does(tmp_path: Path) -> None:
    pm = plugin_manager(Last(), ("my.plain", Plain()), First)
    expected = [
        "builtin.file_type",
        "First",  # a class is named by its name
        "builtin.header_schema",
        "my.plain",
        "Last",  # an instance by its class's name
        "builtin.extra_columns",
    ]
    assert call_order(pm) == expected

    # The same plugins in a plugins folder give the same order in a real manager.
    folder = tmp_path / "plugins"
    folder.mkdir()
    for stem, marker in [("first", "(tryfirst=True)"), ("plain", ""), ("last", "(trylast=True)")]:
        (folder / f"{stem}.py").write_text(
            "from sales_etl.validators import hookimpl\n\n\n"
            f"@hookimpl{marker}\ndef sales_etl_validate_file(file):\n    return None\n"
        )
    try:
        real = get_plugin_manager(isolated_settings(plugins_dir=str(folder)))
    finally:
        for stem in ("first", "plain", "last"):
            sys.modules.pop(f"sales_etl_plugin_{stem}", None)
    names = {"First": "dir.first", "my.plain": "dir.plain", "Last": "dir.last"}
    assert [n for n in call_order(real) if n.startswith(("dir.", "builtin."))] == [
        names.get(n, n) for n in expected
    ]


def test_plugin_manager_ignores_installed_and_folder_plugins(monkeypatch, tmp_path) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "noisy.py").write_text("raise RuntimeError('must not be imported')\n")
    monkeypatch.setenv("SALES_ETL_PLUGINS_DIR", str(folder))
    monkeypatch.setenv("SALES_ETL_DISABLE_PLUGINS", "builtin.file_type")
    assert call_order(plugin_manager()) == BUILTINS
    assert isolated_settings().plugins_dir is None


def test_plugin_manager_can_disable_plugins() -> None:
    pm = plugin_manager(("my.plain", Plain()), disabled=["my.plain", "builtin.extra_columns"])
    assert call_order(pm) == ["builtin.file_type", "builtin.header_schema"]


def test_plugin_manager_refuses_a_misspelt_hook() -> None:
    class Typo:
        @hookimpl
        def sales_etl_validate_fil(self, file: IncomingFile) -> None:
            return None

    with pytest.raises(pluggy.PluginValidationError, match="sales_etl_validate_fil"):
        plugin_manager(Typo())


def test_incoming_file_and_sales_csv_give_a_file_the_builtins_accept(tmp_path: Path) -> None:
    data = sales_csv({}, {"customer_id": 7, "note": None}, columns=[*MANDATORY_COLUMNS, "note"])
    assert data.decode().splitlines() == [
        ",".join([*MANDATORY_COLUMNS, "note"]),
        ",".join([*DEFAULT_SALE.values(), ""]),
        ",".join(["7", *list(DEFAULT_SALE.values())[1:], ""]),
    ]
    incoming = incoming_file(tmp_path, "sales.csv", data)
    assert (incoming.key, incoming.size) == ("to_process/sales.csv", len(data))
    with incoming.open() as stream:
        assert stream.read() == data
    verdict = validate_file(plugin_manager(), incoming)
    assert (verdict.accepted, verdict.extra_columns) == (True, ["note"])
    assert sales_csv() == (",".join(MANDATORY_COLUMNS) + "\n").encode()


# --- the single-file example: plugins/examples/max_file_size.py ---------------------------------


@pytest.fixture
def size_plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "plugins"
    folder.mkdir()
    shutil.copy(EXAMPLES / "max_file_size.py", folder)
    monkeypatch.delenv("SALES_ETL_MAX_FILE_BYTES", raising=False)
    yield folder
    sys.modules.pop("sales_etl_plugin_max_file_size", None)


def test_max_file_size_refuses_files_above_the_limit(size_plugin_dir, tmp_path, monkeypatch):
    pm = get_plugin_manager(isolated_settings(plugins_dir=str(size_plugin_dir)))
    assert call_order(pm)[:3] == ["builtin.file_type", "dir.max_file_size", "builtin.header_schema"]
    data = sales_csv({}, {})
    monkeypatch.setenv("SALES_ETL_MAX_FILE_BYTES", str(len(data)))
    assert validate_file(pm, incoming_file(tmp_path, "at_limit.csv", data)).accepted is True

    monkeypatch.setenv("SALES_ETL_MAX_FILE_BYTES", str(len(data) - 1))
    verdict = validate_file(pm, incoming_file(tmp_path, "over.csv", data))
    assert (verdict.category, verdict.plugin, verdict.reason) == (
        "too_large",
        "dir.max_file_size",
        f"file is {len(data):,} bytes, above the {len(data) - 1:,}-byte limit "
        "(SALES_ETL_MAX_FILE_BYTES)",
    )
    # Its check comes before the header's: an oversized file is too large, not bad_schema.
    assert validate_file(pm, incoming_file(tmp_path, "junk.csv", b"x" * 1000)).plugin == (
        "dir.max_file_size"
    )


def test_max_file_size_default_and_bad_setting(size_plugin_dir, tmp_path, monkeypatch) -> None:
    pm = get_plugin_manager(isolated_settings(plugins_dir=str(size_plugin_dir)))
    incoming = incoming_file(tmp_path, "sales.csv", sales_csv({}))
    assert validate_file(pm, incoming).accepted is True  # default limit: 1 GiB

    monkeypatch.setenv("SALES_ETL_MAX_FILE_BYTES", "10MB")
    verdict = validate_file(pm, incoming)
    assert (verdict.category, verdict.reason) == (
        UNKNOWN,
        "validator plugin 'dir.max_file_size' crashed: ValueError: SALES_ETL_MAX_FILE_BYTES "
        "must be a whole number of bytes > 0, got '10MB'",
    )


# --- what a plugin may answer ------------------------------------------------------------------


def test_a_category_too_long_for_the_staging_table_is_a_crash(tmp_path: Path) -> None:
    assert Rejection("x" * 64, "fits").category == "x" * 64
    with pytest.raises(ValueError, match="at most 64 characters, got 65"):
        Rejection("x" * 65, "too long")

    class LongCategory:
        @hookimpl
        def sales_etl_validate_file(self) -> Rejection:
            return Rejection("y" * 65, "too long")

    verdict = validate_file(
        plugin_manager(LongCategory()), incoming_file(tmp_path, "s.csv", sales_csv())
    )
    assert (verdict.category, verdict.plugin) == (UNKNOWN, "LongCategory")
    assert verdict.reason.startswith(
        "validator plugin 'LongCategory' crashed: ValueError: rejection category must be at most"
    )


def test_rejection_reasons_are_masked_and_capped(tmp_path: Path) -> None:
    class Leaky:
        @hookimpl
        def sales_etl_validate_file(self) -> Rejection:
            return Rejection(
                "leaky", " price list at https://etl:hunter2@prices.example/x unreachable " * 30
            )

    verdict = validate_file(plugin_manager(Leaky()), incoming_file(tmp_path, "s.csv", sales_csv()))
    assert "hunter2" not in verdict.reason
    assert verdict.reason.startswith("price list at https://etl:***@prices.example/x unreachable")
    assert len(verdict.reason) == 1003 and verdict.reason.endswith("...")


# --- sales-etl plugins ---------------------------------------------------------------------------


def test_hook_signatures_are_read_from_the_spec() -> None:
    assert hook_signatures() == {
        "sales_etl_validate_file": "sales_etl_validate_file(file: IncomingFile) -> Rejection | None"
    }


def test_plugin_report_as_data_and_as_a_table() -> None:
    pm = plugin_manager(("my.plain", Plain()), ("my.last", Last()))
    report = plugin_report(pm, isolated_settings(disable_plugins="other"))
    assert report["call_order"] == [
        "builtin.file_type",
        "builtin.header_schema",
        "my.plain",
        "my.last",
        "builtin.extra_columns",
    ]
    assert [p["name"] for p in report["plugins"]] == report["call_order"]
    mine = report["plugins"][3]
    assert (mine["source"], mine["order"]) == ("registered", {"sales_etl_validate_file": "trylast"})
    assert report["disabled"] == ["other"]
    json.dumps(report)

    lines = format_plugin_report(report).splitlines()
    assert lines[3].split() == ["#", "NAME", "ORDER", "SOURCE", "HOOKS"]
    assert lines[4].split() == ["1", "builtin.file_type", "tryfirst", "builtin", HOOK]
    assert lines[7].split()[:4] == ["4", "my.last", "trylast", "registered"]
    assert lines[-1] == "disabled (SALES_ETL_DISABLE_PLUGINS): other"


def test_cli_plugins_lists_a_folder_plugin_and_honours_disable(
    size_plugin_dir, capsys, monkeypatch
) -> None:
    monkeypatch.delenv("SALES_ETL_PLUGINS_DIR", raising=False)
    monkeypatch.setenv("SALES_ETL_DISABLE_PLUGINS", "")
    assert main(["plugins", "--plugins-dir", str(size_plugin_dir)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "dir.max_file_size" in line)
    assert row.split() == [
        "2",
        "dir.max_file_size",
        "tryfirst",
        "plugins",
        "dir",
        str(size_plugin_dir / "max_file_size.py"),
        "sales_etl_validate_file",
    ]
    assert f"plugins dir (SALES_ETL_PLUGINS_DIR): {size_plugin_dir}" in out

    args = ["plugins", "--plugins-dir", str(size_plugin_dir), "--json"]
    assert main([*args, "--disable-plugins", "dir.max_file_size"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "dir.max_file_size" not in report["call_order"]
    assert report["disabled"] == ["dir.max_file_size"]


def test_cli_plugins_reports_a_broken_plugin_without_a_traceback(tmp_path, capsys) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "broken.py").write_text("import no_such_module_for_sales_etl\n")
    try:
        assert main(["plugins", "--plugins-dir", str(folder)]) == 1
    finally:
        sys.modules.pop("sales_etl_plugin_broken", None)
    err = capsys.readouterr().err
    assert err.startswith("sales-etl plugins: cannot load the validator plugins: ImportError:")
    assert "broken.py" in err and "Traceback" not in err


# --- the example package's own tests -------------------------------------------------------------


def test_example_package_test_suite_passes(tmp_path: Path) -> None:
    # Run as its author would, from the package folder (its own pyproject and conftest),
    # on a copy so no cache or bytecode lands in the repository.
    copy = tmp_path / "sales-etl-date-window"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", ".*"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALES_ETL_")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout.splitlines()[-1]
    assert "failed" not in done.stdout.splitlines()[-1]
