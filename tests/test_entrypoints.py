"""Prefect loads each deployment's flow from the module the CLI imports (issue 17).

A file-path entrypoint (``flows/sales_flow.py:...``) makes Prefect run the file as a module of
its own (``sales_flow``), so one file would be two modules with two flow objects. No server:
only Prefect's own entrypoint loader.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from prefect.flows import load_flow_from_entrypoint

REPO = Path(__file__).resolve().parent.parent
DEPLOYMENTS = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
#: The flow each deployment must run, as the CLI imports it (sales_etl/cli.py).
FLOWS = {
    "sales-etl": ("sales_etl.flows.sales_flow", "sales_etl_flow"),
    "sales-etl-replay": ("sales_etl.flows.replay_flow", "sales_etl_replay_flow"),
}


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=[d["name"] for d in DEPLOYMENTS])
def test_the_deployment_loads_the_flow_the_cli_imports(deployment: dict) -> None:
    loaded = load_flow_from_entrypoint(deployment["entrypoint"], use_placeholder_flow=False)
    module, name = FLOWS[loaded.name]
    assert loaded is getattr(importlib.import_module(module), name)
    assert loaded.fn.__module__ == module
