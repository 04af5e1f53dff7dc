"""docs/plugins.md cannot drift from the code: every hook, helper and command it must show."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from sales_etl.validators import hookspecs, testing
from sales_etl.validators.listing import format_plugin_report, hook_signatures, plugin_report
from sales_etl.validators.testing import isolated_settings, plugin_manager

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
TEXT = DOCS.read_text(encoding="utf-8")


def sections(level: str = "###") -> dict[str, str]:
    """``{heading: body}`` for every heading of ``level`` (body up to the next heading)."""
    found = {}
    parts = re.split(rf"^({level} .*)$", TEXT, flags=re.MULTILINE)
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        found[heading[len(level) + 1 :].strip()] = re.split(r"^#{1,3} \S", body, flags=re.M)[0]
    return found


def test_the_spec_has_hooks_and_each_is_found() -> None:
    spec_functions = [
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, "sales_etl_spec")
    ]
    assert spec_functions == sorted(hook_signatures())
    assert "sales_etl_validate_file" in spec_functions


@pytest.mark.parametrize("hook", sorted(hook_signatures()))
def test_every_hook_is_documented_with_its_signature(hook: str) -> None:
    signature = hook_signatures()[hook]
    documented = sections()
    assert f"`{signature}`" in documented, f"docs/plugins.md needs a '### `{signature}`' heading"
    body = documented[f"`{signature}`"]
    for argument in inspect.signature(getattr(hookspecs, hook)).parameters:
        assert f"`{argument}`" in body, f"argument {argument!r} of {hook} is not described"
    for part in ("**Arguments**", "**Returns**", "**Example**", "@hookimpl", f"def {hook}("):
        assert part in body, f"the {hook} section has no {part}"


def test_every_testing_helper_is_documented() -> None:
    body = sections("##")["Testing a plugin"]
    for name in testing.__all__:
        assert f"`{name}" in body, f"sales_etl.validators.testing.{name} is not documented"
    assert 'pytest_plugins = ["sales_etl.validators.testing"]' in body


@pytest.mark.parametrize(
    "needed",
    [
        "SALES_ETL_PLUGINS_DIR",
        "SALES_ETL_DISABLE_PLUGINS",
        "SALES_ETL_DATE_WINDOW_DAYS",
        "SALES_ETL_MAX_FILE_BYTES",
        "[project.entry-points.sales_etl]",
        "tryfirst",
        "trylast",
        "error_files/unknown/",
        "HOOKSPEC_VERSION",
        "--json",
    ],
)
def test_the_guide_covers(needed: str) -> None:
    assert needed in TEXT


def test_the_sample_output_matches_the_current_format() -> None:
    sample = sections("##")["`sales-etl plugins`"]
    block = sample.split("```console\n", 1)[1].split("```", 1)[0].splitlines()
    current = format_plugin_report(plugin_report(plugin_manager(), isolated_settings()))
    lines = current.splitlines()
    assert block[1:3] == lines[:2]  # block[0] is the command
    assert block[4].split() == lines[3].split()  # the column header
    assert block[-1] == lines[-1]


def test_the_example_package_section_matches_its_pyproject() -> None:
    pyproject = (
        DOCS.parents[1] / "plugins" / "sales-etl-date-window" / "pyproject.toml"
    ).read_text()
    assert 'date_window = "sales_etl_date_window"' in pyproject
    assert 'date_window = "sales_etl_date_window"' in TEXT
