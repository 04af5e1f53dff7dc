"""bench/run.py end to end at a tiny size: it must run, and the pipeline and the DuckDB reference
(an independent implementation of the same rules) must agree on every number it compares."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_runs_and_both_sides_agree(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "run.py"),
            "--rows",
            "20000",
            "--files",
            "3",
            "--customers",
            "500",
            "--stores",
            "3",
            "--months",
            "2",
            "--bad-row-fraction",
            "0.03",
            "--work",
            str(tmp_path / "work"),
            "--json",
            str(out),
            "--floor",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "results agree: yes" in proc.stdout
    assert "ratio pipeline / reference:" in proc.stdout
    result = json.loads(out.read_text())
    assert result["rows"] == 20000 and result["results_agree"] is True
    assert result["ratio"] == pytest.approx(
        result["pipeline_seconds"] / result["reference_seconds"], rel=0.01
    )
    # Both process trees were really sampled (a JVM alone is far above 100 MB).
    assert result["pipeline_peak_rss"] > 300 * 2**20 and result["reference_peak_rss"] > 0
    stages = result["pipeline_stages"]
    assert {"list and validate files", "marts (spark)", "archive"} <= set(stages)
    assert "scan csv, classify (one pass)" in result["pipeline_stage_details"]["marts (spark)"]
    # The memory per process kind adds up to the tree's peak, and the JVM is one of them.
    by_process = result["pipeline_peak_by_process"]
    assert by_process["java"] > 100 * 2**20
    assert sum(by_process.values()) == result["pipeline_peak_rss"]
    # The floor: its parts, summed as documented, and both marts really rewritten by month.
    floor = result["floor_stages"]
    parts = floor["csv scan"] + sum(
        floor[f"{mart} read + write"] - floor[f"{mart} read"]
        for mart in ("customer_data_mart", "sales_team_data_mart")
    )
    assert result["floor_seconds"] == pytest.approx(parts, abs=0.01)
    rewritten = tmp_path / "work" / "floor"
    assert len(list(rewritten.glob("customer_data_mart/sales_month=*/*.parquet"))) >= 2
    assert len(list(rewritten.glob("sales_team_data_mart/sales_month=*/store_id=*/*.parquet"))) >= 2
    assert "Spark floor (csv scan + the two mart writes, nothing else)" in proc.stdout
