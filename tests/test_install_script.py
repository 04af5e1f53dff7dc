"""scripts/install.sh's interpreter choice and venv decisions, with real interpreters.

Each case runs the script with ``--dry-run`` (it decides and prints, changes nothing) on a PATH
that holds only the tools it needs plus symlinks to real Python interpreters of the versions the
case needs: 3.11 and 3.13 (supported) and 3.10 (not). A case whose interpreter this machine lacks
is skipped with the reason shown. scripts/apt.sh's refusal to run apt-get as a normal user is
checked as user ``nobody``.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "install.sh"
TOOLS = ["bash", "cat", "cut", "dirname", "du", "find", "head", "id", "ls", "rm", "sed"]
OPTIONAL_TOOLS = ["java"]  # without it the dry run says it would install a JDK


def _describe(executable: str) -> tuple[str, str] | None:
    """(version, real path of the interpreter) -- through any launcher shim (pyenv's)."""
    try:
        proc = subprocess.run(
            [
                executable,
                "-c",
                "import os, sys; print('%d.%d.%d' % sys.version_info[:3], os.path.realpath(sys.executable))",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except OSError:
        return None
    if proc.returncode != 0:
        return None
    version, _, real = proc.stdout.strip().partition(" ")
    return version, real


def find_python(minor: int) -> tuple[str, str]:
    """(path, full version) of a real Python 3.<minor>, or skip the test saying which is missing."""
    name = f"python3.{minor}"
    candidates = [
        shutil.which(name),
        f"/usr/bin/{name}",
        *sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/3.{minor}*/bin/{name}"))),
    ]
    for path in filter(None, candidates):
        found = _describe(path)
        if found and found[0].startswith(f"3.{minor}."):
            return found[1], found[0]
    pytest.skip(
        f"no Python 3.{minor} interpreter on this machine (looked in PATH, /usr/bin, ~/.pyenv)"
    )


@pytest.fixture
def sandbox(tmp_path: Path) -> dict[str, object]:
    """A bin folder with only the tools the script uses; Python links are added per case."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        if found is None:
            pytest.skip(f"{tool} not found (scripts/install.sh needs it)")
        (bin_dir / tool).symlink_to(found)
    for tool in OPTIONAL_TOOLS:
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHON", "SALES_ETL_VENV", "VIRTUAL_ENV")
    }
    env.update(
        {"PATH": str(bin_dir), "SALES_ETL_VENV": str(tmp_path / "venv"), "HOME": str(tmp_path)}
    )
    return {"bin": bin_dir, "env": env, "venv": tmp_path / "venv"}


def link(sandbox: dict[str, object], name: str, target: str) -> None:
    (Path(str(sandbox["bin"])) / name).symlink_to(target)


def dry_run(sandbox: dict[str, object], **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {**sandbox["env"], **extra_env}  # type: ignore[dict-item]
    return subprocess.run(
        ["bash", str(SCRIPT), "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("links", "chosen"),
    [
        ({"python3": 10, "python3.13": 13}, "python3.13"),  # an unsupported python3 is passed over
        ({"python3.13": 13, "python3.11": 11}, "python3.11"),  # 3.11 (what CI runs) comes first
    ],
    ids=["skips-unsupported-python3", "prefers-3.11"],
)
def test_picks_the_first_supported_interpreter(
    sandbox: dict[str, object], links: dict[str, int], chosen: str
) -> None:
    found = {name: find_python(minor) for name, minor in links.items()}
    for name, (path, _) in found.items():
        link(sandbox, name, path)
    proc = dry_run(sandbox)
    assert proc.returncode == 0, proc.stderr
    path, version = found[chosen]
    assert f"install: Python {version} ({path}, from {chosen})" in proc.stdout
    assert "would (re)create" in proc.stdout
    assert not Path(str(sandbox["venv"])).exists()  # a dry run creates nothing


def test_a_venv_made_by_another_interpreter_is_rebuilt_unless_python_names_it(
    sandbox: dict[str, object],
) -> None:
    py311, v311 = find_python(11)
    py313, v313 = find_python(13)
    link(sandbox, "python3.11", py311)
    venv = Path(str(sandbox["venv"]))
    subprocess.run([py313, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    proc = dry_run(sandbox)
    assert proc.returncode == 0, proc.stderr
    assert (
        f"install: {venv} was made by Python {v313} ({py313}), not the chosen Python {v311} "
        f"({py311}): rebuilding it" in proc.stdout
    )
    kept = dry_run(sandbox, PYTHON=py313)
    assert kept.returncode == 0, kept.stderr
    assert f"install: {venv} exists (Python {v313}): keeping it" in kept.stdout
    assert "would (re)create" not in kept.stdout


def test_no_supported_python_is_one_line_and_exit_1(sandbox: dict[str, object]) -> None:
    old, old_version = find_python(10)
    link(sandbox, "python3", old)
    proc = dry_run(sandbox)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(
        f"install: no supported Python (3.11, 3.12 or 3.13) found (tried: python3 ({old_version}))"
    )
    assert "PYTHON=" in lines[0]


def test_python_naming_an_unsupported_version_is_refused(sandbox: dict[str, object]) -> None:
    old, old_version = find_python(10)
    proc = dry_run(sandbox, PYTHON=old)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"install: PYTHON={old} is Python {old_version}; sales-etl supports 3.11, 3.12 or 3.13: "
        "set PYTHON to one of those (or unset it to pick one)"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a command as user nobody")
def test_apt_install_as_a_normal_user_prints_the_command_and_runs_nothing(tmp_path: Path) -> None:
    as_nobody = ["runuser", "-u", "nobody", "--", "env", "PATH=/usr/bin:/bin"]
    if shutil.which("sudo") and subprocess.run([*as_nobody, "sudo", "-n", "true"]).returncode == 0:
        pytest.skip("user nobody may sudo -n here, so apt.sh would rightly use it")
    script = (
        f"source {REPO / 'scripts' / 'apt.sh'}; apt_install install-test some-package; echo after"
    )
    proc = subprocess.run(
        [*as_nobody, "bash", "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""  # stopped before anything ran
    assert proc.stderr.strip() == (
        "install-test: needs root (not root, and sudo -n is not allowed): run  sudo apt-get update "
        "&& sudo apt-get install -y --no-install-recommends some-package  then run this script again"
    )
