"""The sales-etl image built and run with podman (issue 14; ../shared/NOTES.md, "Containers").

``image_for(suite)`` builds (or reuses, when its inputs did not change) the image on a base made
from Debian packages through ``scripts/build-images.sh`` and returns its tag; ``podman`` runs a
podman command and fails the test with its output when it does not succeed. Nothing here is
skipped: without podman the tests fail with the command that installs it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
INSTALL_HINT = "run `bash scripts/install-containers.sh` (or `scripts/install.sh --dev`) first"
SUITES = ("bookworm", "trixie")  # Debian 12 (Python 3.11), Debian 13 (Python 3.13)
USER_ID = 10001  # the Dockerfile's non-root user

_built: dict[str, str] = {}
#: "<tag> <built|cached> <seconds> s <size>" of every image this session, for the report.
BUILD_LINES: list[str] = []


def podman(
    *args: str, timeout: float = 600, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``podman ARGS`` (text output); a failure fails the test with stdout and stderr.
    ``env``: podman's environment (``-e NAME`` copies a value from it)."""
    if shutil.which("podman") is None:
        pytest.fail(f"podman is not installed: {INSTALL_HINT}", pytrace=False)
    done = subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    if check and done.returncode != 0:
        pytest.fail(
            f"podman {' '.join(args[:6])} ... exited {done.returncode}:\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}",
            pytrace=False,
        )
    return done


def image_for(suite: str) -> str:
    """The tag of the sales-etl image on ``suite``'s base, built once per session if needed."""
    if suite not in _built:
        done = subprocess.run(
            ["bash", str(REPO / "scripts" / "build-images.sh"), suite],
            capture_output=True,
            text=True,
            timeout=3600,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            pytest.fail(
                f"scripts/build-images.sh {suite} failed ({done.returncode}):\n"
                f"{done.stderr[-4000:]}",
                pytrace=False,
            )
        lines = [line for line in done.stdout.splitlines() if line.startswith("build-images:")]
        BUILD_LINES.extend(lines)
        _built[suite] = lines[-1].split()[1]
    return _built[suite]


def inspect(tag: str) -> dict:
    """``podman image inspect`` of ``tag`` (the first and only entry)."""
    return json.loads(podman("image", "inspect", tag).stdout)[0]


def volume_path(name: str) -> Path:
    """Host folder of a named podman volume (podman runs as root here)."""
    return Path(podman("volume", "inspect", "--format", "{{ .Mountpoint }}", name).stdout.strip())


def wait_for_log(log: Path, pattern: str, proc: subprocess.Popen, timeout: float) -> bool:
    """True as soon as ``pattern`` (a plain substring) shows up in ``log``; False if ``proc``
    ends or ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pattern in log.read_text(errors="replace"):
            return True
        if proc.poll() is not None:
            return pattern in log.read_text(errors="replace")
        time.sleep(0.5)
    return False
