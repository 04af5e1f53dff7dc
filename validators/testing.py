"""Test helpers for validator plugin authors (and this project's own tests).

Plain functions, usable from any test::

    from sales_etl.validators.testing import incoming_file, plugin_manager, sales_csv
    from sales_etl.validators.manager import validate_file

    def test_refuses_weekend_files(tmp_path):
        pm = plugin_manager(my_plugin)
        verdict = validate_file(pm, incoming_file(tmp_path, "sales_sat.csv", sales_csv({})))
        assert (verdict.category, verdict.plugin) == ("weekend", "my_plugin")

and, for pytest, the fixtures :func:`land_sales_file` and :func:`validator_settings`: add
``pytest_plugins = ["sales_etl.validators.testing"]`` to the top-level ``conftest.py`` of the
plugin's tests. This module imports pytest, so only import it from tests.

Everything here is hermetic: the managers it builds hold the built-ins and the plugins you
pass, never the entry points installed on the machine or a ``SALES_ETL_PLUGINS_DIR``, so a test
means the same on a laptop and in CI.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import ModuleType

import pluggy
import pytest

from sales_etl.settings import Settings
from sales_etl.storage.local import LocalStore
from sales_etl.validators.manager import finish_plugin_manager, new_plugin_manager
from sales_etl.validators.model import IncomingFile
from sales_etl.validators.schemas import MANDATORY_COLUMNS

__all__ = [
    "DEFAULT_SALE",
    "incoming_file",
    "isolated_settings",
    "land_sales_file",
    "plugin_manager",
    "sales_csv",
    "validator_settings",
]

#: The values :func:`sales_csv` fills in for a valid sale (every id is 1, one item at 1.50).
DEFAULT_SALE: dict[str, str] = {
    "customer_id": "1",
    "store_id": "1",
    "product_name": "apple",
    "sales_date": "2024-03-20",
    "sales_person_id": "1",
    "price": "1.50",
    "quantity": "1",
    "total_cost": "1.50",
}


def isolated_settings(**overrides: object) -> Settings:
    """``Settings`` with no plugins dir and nothing disabled, whatever the environment says."""
    values: dict[str, object] = {"plugins_dir": None, "disable_plugins": ""}
    values.update(overrides)
    return Settings(**values)


def plugin_manager(
    *plugins: object | tuple[str, object], disabled: Iterable[str] = ()
) -> pluggy.PluginManager:
    """A manager with ``plugins`` plus the built-ins, in the order a real run has them.

    The plugins are registered before the built-ins, exactly like installed and
    ``plugins_dir`` plugins are, so ``tryfirst``/``trylast`` place them as in production.

    Args:
        plugins: Plugin modules, classes or instances, or ``(name, plugin)`` pairs. Without
            a name a module is named by its ``__name__``, a class by its name and an
            instance by its class's name.
        disabled: Plugin names to block, as ``SALES_ETL_DISABLE_PLUGINS`` would (e.g.
            ``"builtin.extra_columns"``).

    Raises:
        pluggy.PluginValidationError: A plugin implements an unknown hook (a typo), declares
            an argument the hook does not have, or is a hook wrapper.
    """
    pm = new_plugin_manager(list(disabled))
    for entry in plugins:
        name, plugin = entry if isinstance(entry, tuple) else (_default_name(entry), entry)
        if not pm.is_blocked(name):
            pm.register(plugin, name=name)
    return finish_plugin_manager(pm)


def incoming_file(
    directory: str | os.PathLike[str],
    name: str,
    data: bytes,
    settings: Settings | None = None,
) -> IncomingFile:
    """Land ``data`` as ``<directory>/landing/to_process/<name>`` and scan it like a run does.

    Returns:
        The :class:`IncomingFile` a validator receives (``open()`` streams the written bytes).
    """
    store = LocalStore(Path(directory) / "landing")
    key = f"to_process/{name}"
    store.write_bytes(key, data)
    return IncomingFile.scan(store, key, settings if settings is not None else isolated_settings())


def sales_csv(
    *rows: Mapping[str, object],
    columns: Iterable[str] = MANDATORY_COLUMNS,
    line_end: str = "\n",
) -> bytes:
    """UTF-8 sales CSV bytes: a header of ``columns`` and one record per row.

    Each row is a mapping of the values that differ from :data:`DEFAULT_SALE`; other
    columns get the default (or ``""`` for an extra column). ``sales_csv()`` is a header-only
    file, ``sales_csv({})`` one valid sale, ``sales_csv({"sales_date": "2024-04-01"})`` one
    sale on another day.
    """
    header = list(columns)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator=line_end)
    writer.writerow(header)
    for row in rows:
        values = {**DEFAULT_SALE, **{k: "" if v is None else str(v) for k, v in row.items()}}
        writer.writerow([values.get(column, "") for column in header])
    return buffer.getvalue().encode("utf-8")


@pytest.fixture
def validator_settings() -> Settings:
    """Hermetic settings (:func:`isolated_settings`) for :class:`IncomingFile`."""
    return isolated_settings()


@pytest.fixture
def land_sales_file(
    tmp_path: Path, validator_settings: Settings
) -> Callable[[str, bytes], IncomingFile]:
    """A function ``land(name, data) -> IncomingFile`` writing under the test's ``tmp_path``."""

    def _land(name: str, data: bytes) -> IncomingFile:
        return incoming_file(tmp_path, name, data, validator_settings)

    return _land


def _default_name(plugin: object) -> str:
    if isinstance(plugin, ModuleType):
        return plugin.__name__
    if isinstance(plugin, type):
        return plugin.__name__
    return type(plugin).__name__
