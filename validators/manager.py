"""The validator plugin manager, and running every validator over one file.

``get_plugin_manager(settings)`` builds a :class:`pluggy.PluginManager` with the built-in
validators, every installed plugin of the ``sales_etl`` entry-point group and every ``.py`` file
in ``settings.plugins_dir``, minus the plugins named in ``settings.disable_plugins``.
``validate_file(pm, incoming)`` runs the validators over one file and says what to do with it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from sales_etl.file_fate import FileVerdict
from sales_etl.secrets import scrub
from sales_etl.settings import Settings
from sales_etl.validators import hookspecs
from sales_etl.validators.builtin import DEFAULT_PLUGINS
from sales_etl.validators.hookspecs import PROJECT
from sales_etl.validators.model import UNKNOWN, IncomingFile, Rejection
from sales_etl.validators.schemas import MANDATORY_COLUMNS

logger = logging.getLogger(__name__)

#: How much of a crashed plugin's exception message a verdict keeps.
MAX_ERROR_CHARS = 500
#: Prefix of the module name a ``plugins_dir`` file is imported as.
DIR_MODULE_PREFIX = "sales_etl_plugin_"
#: Prefix of a ``plugins_dir`` plugin's name (``dir.<file stem>``).
DIR_NAME_PREFIX = "dir."
#: Names of the built-in validators.
BUILTIN_NAMES = frozenset(name for name, _ in DEFAULT_PLUGINS)
#: How much of a plugin's rejection reason a verdict keeps.
MAX_REASON_CHARS = 1000


def get_plugin_manager(settings: Settings | None = None) -> pluggy.PluginManager:
    """Build the plugin manager for one run.

    Plugins come from, in registration order: the ``sales_etl`` entry-point group of installed
    distributions (named by their entry-point name), each ``*.py`` file of
    ``settings.plugins_dir`` (imported as module ``sales_etl_plugin_<stem>``, named
    ``dir.<stem>``), then the built-ins (``builtin.file_type``, ``builtin.header_schema``,
    ``builtin.extra_columns``). pluggy calls later-registered implementations first, so a
    plugin's plain ``@hookimpl`` runs after the file type and header checks and before the
    ``trylast`` column-name check. Names in ``settings.disable_plugins`` (comma-separated) are
    blocked before anything is imported.

    Args:
        settings: The run's settings; ``Settings()`` when ``None``.

    Returns:
        A manager whose ``sales_etl_validate_file`` hook has every enabled validator.

    Raises:
        pluggy.PluginValidationError: A plugin implements a hook that does not exist (a
            misspelt name), declares an argument the hook does not provide, or is a hook
            wrapper.
        ValueError: ``plugins_dir`` is not a directory.
        ImportError: A ``plugins_dir`` file cannot be imported (the cause is chained).
    """
    settings = settings if settings is not None else Settings()
    disabled = parse_disabled(settings.disable_plugins)
    pm = new_plugin_manager(disabled)
    pm.load_setuptools_entrypoints(PROJECT)
    dir_names = _load_plugins_dir(pm, settings.plugins_dir) if settings.plugins_dir else []
    finish_plugin_manager(pm)

    known = BUILTIN_NAMES | set(dir_names) | _entry_point_names()
    for name in sorted(set(disabled) - known):
        logger.warning("disable_plugins names %r, but no validator plugin has that name", name)
    return pm


def new_plugin_manager(disabled: Iterable[str] = ()) -> pluggy.PluginManager:
    """An empty manager with the hook specification, the named plugins blocked.

    Register third-party plugins on it, then call :func:`finish_plugin_manager`, which adds
    the built-ins last (so the call order is the documented one) and checks every plugin.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in disabled:
        pm.set_blocked(name)
    return pm


def finish_plugin_manager(pm: pluggy.PluginManager) -> pluggy.PluginManager:
    """Register the built-ins that are not blocked and check every registered plugin.

    Raises:
        pluggy.PluginValidationError: A plugin implements an unknown hook, declares an
            argument the hook does not provide, or is a hook wrapper.
    """
    for name, plugin in DEFAULT_PLUGINS:
        if not pm.is_blocked(name):
            pm.register(plugin, name=name)
    pm.check_pending()
    for impl in pm.hook.sales_etl_validate_file.get_hookimpls():
        if impl.hookwrapper or impl.wrapper:  # validate_file calls implementations one by one
            raise pluggy.PluginValidationError(
                impl.plugin,
                f"validator plugin {impl.plugin_name!r}: hook wrappers are not supported "
                "for sales_etl_validate_file",
            )
    return pm


def parse_disabled(value: str) -> list[str]:
    """Split a ``disable_plugins`` setting (``"builtin.extra_columns, my_plugin"``) into names."""
    return [name.strip() for name in value.split(",") if name.strip()]


def _entry_point_names() -> set[str]:
    return {ep.name for ep in importlib.metadata.entry_points(group=PROJECT)}


def _load_plugins_dir(pm: pluggy.PluginManager, directory: str) -> list[str]:
    """Import and register every ``*.py`` file of ``directory``; returns all their names."""
    folder = Path(directory).expanduser()
    if not folder.is_dir():
        raise ValueError(f"plugins_dir {directory!r} is not a directory")
    names = []
    for path in sorted(folder.glob("*.py")):
        name = f"{DIR_NAME_PREFIX}{path.stem}"
        names.append(name)
        if pm.is_blocked(name):
            continue
        module_name = f"{DIR_MODULE_PREFIX}{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import validator plugin file {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            raise ImportError(f"cannot import validator plugin file {path}: {exc!r}") from exc
        pm.register(module, name=name)
    return names


def validate_file(pm: pluggy.PluginManager, incoming: IncomingFile) -> FileVerdict:
    """Run every ``sales_etl_validate_file`` implementation over one file, in pluggy order.

    The implementations are called one by one (``tryfirst`` first, ``trylast`` last), each
    with only the arguments it declares, so that a crash is pinned on the plugin that raised.
    The first :class:`Rejection` wins and the rest are not called.

    Args:
        pm: A manager from :func:`get_plugin_manager`.
        incoming: The file, from :meth:`IncomingFile.scan`.

    Returns:
        The verdict. A plugin that raises (or returns something other than ``None`` or a
        ``Rejection``) gives ``category="unknown"`` and a reason like ``validator plugin
        'dir.my_check' crashed: KeyError: 'x'`` (exception type and at most 500 characters
        of its message, URL credentials masked; never the traceback).
    """
    call_kwargs: dict[str, Any] = {"file": incoming}
    # get_hookimpls() lists trylast ... tryfirst; pluggy's _multicall walks it reversed.
    for impl in reversed(pm.hook.sales_etl_validate_file.get_hookimpls()):
        name = pm.get_name(impl.plugin) or impl.plugin_name
        if impl.hookwrapper or impl.wrapper:
            reason = (
                f"validator plugin {name!r} is a hook wrapper, which this hook does not support"
            )
            return _rejected(UNKNOWN, reason, name, incoming)
        try:
            args = [call_kwargs[arg] for arg in impl.argnames]
            kwargs = {arg: call_kwargs[arg] for arg in impl.kwargnames if arg in call_kwargs}
            result = impl.function(*args, **kwargs)
        except Exception as exc:
            reason = f"validator plugin {name!r} crashed: {describe_exception(exc)}"
            logger.warning("%s (file %r)", reason, incoming.key)
            return _rejected(UNKNOWN, reason, name, incoming)
        if result is None:
            continue
        if not isinstance(result, Rejection):
            reason = (
                f"validator plugin {name!r} crashed: it returned {type(result).__name__}, "
                "expected a Rejection or None"
            )
            return _rejected(UNKNOWN, reason, name, incoming)
        return _rejected(result.category, clean_reason(result.reason), name, incoming)

    header = _header_or_none(incoming)
    extra = [c for c in header if c not in MANDATORY_COLUMNS] if header is not None else []
    return FileVerdict(
        accepted=True, category=None, reason=None, plugin=None, header=header, extra_columns=extra
    )


def describe_exception(exc: BaseException) -> str:
    """``"ExcType: message"``, the message cut to 500 characters and URL passwords masked."""
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not hide the original failure
        message = "<unprintable exception>"
    message = scrub(message)
    if len(message) > MAX_ERROR_CHARS:
        message = message[:MAX_ERROR_CHARS] + "..."
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def clean_reason(reason: str) -> str:
    """A plugin's rejection reason as stored: URL passwords masked, at most 1000 characters."""
    reason = scrub(reason.strip())
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[:MAX_REASON_CHARS] + "..."
    return reason


def _header_or_none(incoming: IncomingFile) -> list[str] | None:
    try:
        return incoming.header
    except Exception:  # not CSV text: the verdict just has no header
        return None


def _rejected(category: str, reason: str, plugin: str, incoming: IncomingFile) -> FileVerdict:
    return FileVerdict(
        accepted=False,
        category=category,
        reason=reason,
        plugin=plugin,
        header=_header_or_none(incoming),
    )


def list_plugins(pm: pluggy.PluginManager) -> list[dict[str, Any]]:
    """Describe every registered plugin, for ``sales-etl plugins`` and logs.

    Returns:
        One dict per plugin, sorted by name: ``name``; ``source`` (``"builtin"``,
        ``"entry point"``, ``"plugins dir"``, or ``"registered"`` for one registered in
        process, e.g. by a test); ``module`` (its import name); ``file`` (source path or
        ``None``); ``distribution`` and ``version`` (for entry-point plugins, else ``None``);
        ``hooks`` (names of the hooks it implements) and ``order`` (per hook: ``"tryfirst"``,
        ``"trylast"`` or ``"default"``).
    """
    distributions = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    described = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:  # blocked
            continue
        if isinstance(plugin, ModuleType):
            module_name = plugin.__name__
        else:  # a class or an instance
            module_name = getattr(plugin, "__module__", None) or type(plugin).__module__
        module = sys.modules.get(module_name)
        dist = distributions.get(id(plugin))
        order = {}
        for caller in pm.get_hookcallers(plugin) or []:
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin:
                    order[caller.name] = _order_marker(impl)
        described.append(
            {
                "name": name,
                "source": _source(name, module_name, dist),
                "module": module_name,
                "file": getattr(module, "__file__", None),
                "distribution": dist.project_name if dist is not None else None,
                "version": dist.version if dist is not None else None,
                "hooks": sorted(order),
                "order": dict(sorted(order.items())),
            }
        )
    return sorted(described, key=lambda d: d["name"])


def call_order(pm: pluggy.PluginManager) -> list[str]:
    """Names of the plugins implementing ``sales_etl_validate_file``, in the order they run."""
    return [
        pm.get_name(impl.plugin) or impl.plugin_name
        for impl in reversed(pm.hook.sales_etl_validate_file.get_hookimpls())
    ]


def _order_marker(impl: pluggy.HookImpl) -> str:
    if impl.tryfirst:
        return "tryfirst"
    if impl.trylast:
        return "trylast"
    return "default"


def _source(name: str, module_name: str, dist: object | None) -> str:
    if dist is not None:
        return "entry point"
    if name in BUILTIN_NAMES and module_name == DEFAULT_PLUGINS[0][1].__module__:
        return "builtin"
    if name.startswith(DIR_NAME_PREFIX) and module_name.startswith(DIR_MODULE_PREFIX):
        return "plugins dir"
    return "registered"
