"""docker-compose.yml validated by a compose implementation (podman-compose from PyPI, in the test
venv: scripts/install-containers.sh), not only parsed as YAML (issue 14): the file resolves, and
the documented stack publishes no host port but the Prefect UI's."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
HINT = "run `bash scripts/install-containers.sh` (or `scripts/install.sh --dev`) first"


def compose_config(path: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("podman-compose", path=str(Path(sys.executable).parent))
    assert exe, f"podman-compose is not installed in the venv: {HINT}"
    return subprocess.run(
        # every profile: the one-off `etl` and the docker worker publish nothing either
        [exe, "-f", str(path), "--profile", "tools", "--profile", "docker-pool", "config"],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},  # no SALES_ETL_DB_PASSWORD etc.: the defaults apply
    )


def test_compose_config_resolves_and_publishes_only_the_ui_port() -> None:
    done = compose_config(REPO / "docker-compose.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    resolved = yaml.safe_load(done.stdout)
    published = {
        name: service["ports"]
        for name, service in resolved["services"].items()
        if "ports" in service
    }
    assert published == {"prefect-server": ["127.0.0.1:4200:4200"]}
    # The resolved file still wires the image and the worker as documented.
    assert resolved["services"]["worker"]["image"] == "sales-etl:0.1.0"
    assert resolved["services"]["etl"]["volumes"] == ["etl-data:/data"]


def test_compose_config_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    text = (REPO / "docker-compose.yml").read_text()
    # A service that extends an anchor that does not exist: the file no longer resolves.
    broken.write_text(text.replace("<<: *etl-image", "<<: *no-such-anchor", 1))
    done = compose_config(broken)
    assert done.returncode != 0, done.stdout
