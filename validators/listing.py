"""What ``sales-etl plugins`` prints: the loaded validator plugins, where each came from, and
the hooks they implement, in the order a run calls them.

Kept apart from the manager so that the CLI stays thin and the report is testable as data.
"""

from __future__ import annotations

import inspect
from typing import Any

import pluggy

from sales_etl.settings import Settings
from sales_etl.validators import hookspecs
from sales_etl.validators.hookspecs import HOOKSPEC_VERSION, PROJECT
from sales_etl.validators.manager import call_order, list_plugins, parse_disabled


def hook_signatures() -> dict[str, str]:
    """``{hook name: "name(arg: Type, ...) -> ReturnType"}`` for every hook in the spec.

    The types are written as in the source (``IncomingFile``, ``Rejection | None``); this is
    the text ``docs/plugins.md`` must show for each hook.
    """
    signatures = {}
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        if not hasattr(function, f"{PROJECT}_spec"):  # set by the hookspec marker
            continue
        signature = inspect.signature(function)  # annotations stay strings (__future__)
        params = ", ".join(
            f"{p.name}: {p.annotation}" if p.annotation is not p.empty else p.name
            for p in signature.parameters.values()
        )
        returns = signature.return_annotation
        signatures[name] = f"{name}({params})" + (
            f" -> {returns}" if returns is not signature.empty else ""
        )
    return signatures


def plugin_report(pm: pluggy.PluginManager, settings: Settings) -> dict[str, Any]:
    """Everything ``sales-etl plugins`` shows, as JSON-ready data.

    Returns:
        ``hookspec_version``, ``entry_point_group``, ``plugins_dir``, ``disabled`` (names
        from ``disable_plugins``), ``hooks`` (see :func:`hook_signatures`), ``call_order``
        (plugin names in the order ``sales_etl_validate_file`` runs them) and ``plugins``
        (:func:`~sales_etl.validators.manager.list_plugins`, in call order, then any plugin
        that implements no hook).
    """
    order = call_order(pm)
    rank = {name: i for i, name in enumerate(order)}
    plugins = sorted(list_plugins(pm), key=lambda p: (rank.get(p["name"], len(rank)), p["name"]))
    return {
        "hookspec_version": HOOKSPEC_VERSION,
        "entry_point_group": PROJECT,
        "plugins_dir": settings.plugins_dir,
        "disabled": parse_disabled(settings.disable_plugins),
        "hooks": hook_signatures(),
        "call_order": order,
        "plugins": plugins,
    }


def describe_source(plugin: dict[str, Any]) -> str:
    """One plugin's origin for humans: ``builtin``, ``entry point dist 1.0``, ``plugins dir /x.py``."""
    source = plugin["source"]
    if source == "entry point":
        return f"entry point {plugin['distribution']} {plugin['version']}"
    if source == "plugins dir":
        return f"plugins dir {plugin['file']}"
    if source == "registered":
        return f"registered in process ({plugin['module']})"
    return source


def format_plugin_report(report: dict[str, Any]) -> str:
    """The plain-text table of :func:`plugin_report`."""
    rank = {name: i + 1 for i, name in enumerate(report["call_order"])}
    header = ("#", "NAME", "ORDER", "SOURCE", "HOOKS")
    rows = [
        (
            str(rank.get(p["name"], "-")),
            p["name"],
            ", ".join(sorted(set(p["order"].values()))) or "-",
            describe_source(p),
            ", ".join(p["hooks"]) or "-",
        )
        for p in report["plugins"]
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        f"Validator plugins (hookspec version {report['hookspec_version']}, "
        f"entry-point group {report['entry_point_group']!r}).",
        "Each file meets them in this order (#); the first rejection decides.",
        "",
    ]
    for row in [header, *rows]:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    lines.append("")
    lines.append(f"plugins dir (SALES_ETL_PLUGINS_DIR): {report['plugins_dir'] or 'not set'}")
    disabled = ", ".join(report["disabled"]) or "none"
    lines.append(f"disabled (SALES_ETL_DISABLE_PLUGINS): {disabled}")
    return "\n".join(line.rstrip() for line in lines)
