"""The wheel and sdist as users get them (issue 12, acceptance 1).

``python -m build`` makes the sdist, then the wheel *from that sdist*, in isolated build
environments: a wheel that builds at all proves the sdist holds what rebuilding needs. The
expected contents are computed here from the source tree and the documented installed names
(``flows/`` -> ``sales_etl.flows`` ...), not from setup.py's discovery. The slow test installs the
wheel non-editable into a new venv and runs ``sales-etl demo`` and ``sales-etl plugins`` from a
folder outside the repository, with a private HOME and PREFECT_HOME; ``SALES_ETL_TEST_PYTHON``
names another interpreter for that venv (``SALES_ETL_TEST_PYTHON=python3.13``).
"""

from __future__ import annotations

import email.parser
import json
import os
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
from helpers import count_csv_records, read_parquet_rows

REPO = Path(__file__).resolve().parent.parent
# repository folder -> installed package path (the layout DESIGN.md and the README document)
INSTALLED_AS = {
    "sales_etl": "sales_etl",
    "flows": "sales_etl/flows",
    "tasks": "sales_etl/tasks",
    "validators": "sales_etl/validators",
}
# The validator plugins every install has (README, "Validator plugins"), in call order.
BUILTIN_PLUGINS = ["builtin.file_type", "builtin.header_schema", "builtin.extra_columns"]


def source_files() -> dict[str, str]:
    """``{path in the wheel: path in the repository}`` for every module and resource.

    Every file under the four package folders ships, except byte code and dot-files (editor and
    OS litter).
    """
    found = {}
    for folder, installed in INSTALLED_AS.items():
        for path in sorted((REPO / folder).rglob("*")):
            relative = path.relative_to(REPO / folder)
            if (
                not path.is_file()
                or "__pycache__" in relative.parts
                or path.suffix == ".pyc"
                or any(part.startswith(".") for part in relative.parts)
            ):
                continue
            found[f"{installed}/{relative.as_posix()}"] = f"{folder}/{relative.as_posix()}"
    return found


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist and the wheel built from it (``python -m build``, isolated)."""
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (
        f"python -m build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    wheels = sorted(out.glob("*.whl"))
    sdists = sorted(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


def test_the_source_tree_has_what_the_test_expects() -> None:
    """Guards the test itself: the walk finds the modules a run imports and the log4j2 file."""
    files = source_files()
    for needed in (
        "sales_etl/cli.py",
        "sales_etl/db/engine.py",
        "sales_etl/storage/s3.py",
        "sales_etl/resources/log4j2.properties",
        "sales_etl/flows/sales_flow.py",
        "sales_etl/rules/transform.py",
        "sales_etl/tasks/marts.py",
        "sales_etl/validators/builtin.py",
    ):
        assert needed in files


def test_the_wheel_holds_every_module_and_resource_under_its_installed_name(
    built: dict[str, Path],
) -> None:
    with zipfile.ZipFile(built["wheel"]) as wheel:
        names = wheel.namelist()
        dist_info = [n for n in names if n.split("/", 1)[0].endswith(".dist-info")]
        payload = sorted(set(names) - set(dist_info))
        expected = source_files()
        assert payload == sorted(expected), (
            f"missing from the wheel: {sorted(set(expected) - set(payload))}; "
            f"unexpected: {sorted(set(payload) - set(expected))}"
        )
        for installed, repo_path in expected.items():
            assert wheel.read(installed) == (REPO / repo_path).read_bytes(), installed
        meta_name = next(n for n in dist_info if n.endswith("/METADATA"))
        metadata = email.parser.Parser().parsestr(wheel.read(meta_name).decode())
        entry_points = wheel.read(next(n for n in dist_info if n.endswith("/entry_points.txt")))
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert metadata["Requires-Python"] is not None
    assert sorted(metadata["Requires-Python"].split(",")) == sorted(
        project["requires-python"].split(",")
    )
    assert metadata["License-Expression"] == project["license"]
    assert "sales-etl = sales_etl.cli:main" in entry_points.decode()


def test_the_sdist_holds_the_sources_and_the_build_configuration(built: dict[str, Path]) -> None:
    with tarfile.open(built["sdist"]) as sdist:
        members = {m.name.split("/", 1)[1] for m in sdist.getmembers() if m.isfile()}
    for repo_path in [*source_files().values(), "pyproject.toml", "setup.py", "README.md"]:
        assert repo_path in members, f"{repo_path} missing from {built['sdist'].name}"


def test_install_script_supports_the_python_versions_pyproject_declares() -> None:
    """scripts/install.sh's interpreter range and pyproject's requires-python say the same."""
    spec = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    low = re.search(r">=\s*3\.(\d+)", spec)
    high = re.search(r"<\s*3\.(\d+)", spec)
    assert low and high, spec
    minors = [str(m) for m in range(int(low.group(1)), int(high.group(1)))]
    script = (REPO / "scripts" / "install.sh").read_text()
    declared = re.search(r"^SUPPORTED_MINORS=\(([^)]*)\)", script, re.M)
    assert declared, "SUPPORTED_MINORS not found in scripts/install.sh"
    assert declared.group(1).split() == minors
    text = re.search(r'^SUPPORTED_TEXT="([^"]*)"', script, re.M)
    assert (
        text and text.group(1) == ", ".join(f"3.{m}" for m in minors[:-1]) + f" or 3.{minors[-1]}"
    )


def _clean_env(root: Path, venv: Path) -> dict[str, str]:
    """No SALES_ETL_*/PREFECT_*/PYTHONPATH from the developer; a private HOME and PREFECT_HOME."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SALES_ETL_", "PREFECT_", "PYTHON", "VIRTUAL_ENV", "SPARK_"))
    }
    (root / "home").mkdir(exist_ok=True)
    env.update(
        {
            "HOME": str(root / "home"),
            "PREFECT_HOME": str(root / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    return env


@pytest.mark.slow
@pytest.mark.timeout(2400)  # a new venv gets ~1.5 GB from pip's cache; on a busy host, minutes
def test_the_installed_wheel_runs_demo_and_plugins_from_an_unrelated_folder(
    built: dict[str, Path], tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    env = _clean_env(tmp_path, venv)
    # SALES_ETL_TEST_PYTHON: the interpreter of the new venv (e.g. a python3.13), default this one.
    base = os.environ.get("SALES_ETL_TEST_PYTHON", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, env=env, timeout=300)
    python = venv / "bin" / "python"
    # Pinned to the versions this suite runs with: the same set, and pip skips minutes of
    # backtracking through prefect-aws/aiobotocore releases (downloads included).
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(
        "\n".join(line for line in frozen if "==" in line and not line.startswith("sales")) + "\n"
    )
    install = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-c",
            str(constraints),
            str(built["wheel"]),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    work = tmp_path / "work"
    work.mkdir()
    # The package comes from the new venv's site-packages, not from the checkout.
    where = subprocess.run(
        [
            str(python),
            "-c",
            "import sales_etl.flows, sales_etl.db; print(sales_etl.flows.__file__)",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(venv), where
    assert not Path(where).is_relative_to(REPO), where

    def sales_etl(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(venv / "bin" / "sales-etl"), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=work,
            timeout=1200,
        )
        assert proc.returncode == 0, (
            f"sales-etl {args}: {proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
        return proc

    report = json.loads(sales_etl("plugins", "--json").stdout)
    assert report["call_order"] == BUILTIN_PLUGINS
    assert {p["name"]: p["source"] for p in report["plugins"]} == dict.fromkeys(
        BUILTIN_PLUGINS, "builtin"
    )
    table = sales_etl("plugins").stdout
    listed = [line.split()[1] for line in table.splitlines() if re.match(r"^\d+\s", line)]
    assert listed == BUILTIN_PLUGINS, table

    demo = sales_etl("demo")

    # The counts the summary printed, against what demo left on disk.
    landing = work / "data" / "landing"
    accepted = sorted((landing / "processed").rglob("*.*"))
    rejected = sorted((landing / "error_files").rglob("*.*"))
    assert not any((landing / "to_process").iterdir())
    files = re.search(r"^Files: (\d+) seen, (\d+) accepted, (\d+) rejected$", demo.stdout, re.M)
    assert files, demo.stdout
    assert [int(n) for n in files.groups()] == [
        len(accepted) + len(rejected),
        len(accepted),
        len(rejected),
    ]
    rows = re.search(r"^Rows: (\d+) read, (\d+) loaded, (\d+) quarantined$", demo.stdout, re.M)
    assert rows, demo.stdout
    read = sum(count_csv_records(p.read_bytes()) for p in accepted)
    mart = read_parquet_rows(work / "data" / "marts" / "customer_data_mart")
    loaded = len(mart)
    quarantined = len(read_parquet_rows(work / "data" / "marts" / "quarantine"))
    assert [int(n) for n in rows.groups()] == [read, loaded, quarantined]
    assert loaded > 0 and quarantined > 0 and loaded + quarantined == read
    # Months recomputed: those of the loaded sales (a quarantined row's month is not one).
    months = re.search(r"^Months recomputed: (.+)$", demo.stdout, re.M)
    assert months, demo.stdout
    assert months.group(1).split(", ") == sorted({str(row["sales_date"])[:7] for row in mart})
