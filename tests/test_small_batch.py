"""A small batch through ``sales-etl run`` (issue 16, section 3): its JVM runs C1-only with the
serial GC and is warmed on a made-up batch while Prefect starts, and the results are exactly
those of one clean run, computed independently (``ops_helpers.assert_outputs_equal_clean_run``).

The speed is measured by ``bench/run.py --scale``, not here. What this test proves is that the
small-batch path was the one taken (the JVM's own input arguments, the warm-up called once
before the flow's Spark stage) and that it changes no result.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from crash_helpers import base_env
from ops_helpers import assert_outputs_equal_clean_run, prepare_workspace

#: Runs the CLI in-process with the warm-up wrapped to note when it ran and the JVM's arguments.
_PROBE = """
import json, sys
import sales_etl.warm_up as module
seen = {}
real = module.warm_up

def noting(spark):
    runtime = spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    seen["jvm_arguments"] = list(runtime.getInputArguments())
    seen["local_dir"] = spark.conf.get("spark.local.dir", None)
    real(spark)
    seen["warm_ups"] = seen.get("warm_ups", 0) + 1

module.warm_up = noting
from sales_etl.cli import main
code = main(["run", "--json"])
print(json.dumps({"exit_code": code, **seen}), file=sys.stderr)
"""


@pytest.mark.slow
def test_a_small_batch_runs_warm_and_c1_only_with_a_clean_runs_results(tmp_path: Path) -> None:
    env = base_env(tmp_path / "prefect-home", None)
    # base_env's JAVA_TOOL_OPTIONS already asks for C1 + serial GC: take it out, so that the
    # flags found in the JVM can only come from the product.
    env.pop("JAVA_TOOL_OPTIONS", None)
    scratch = tmp_path / "spark-scratch"  # spark.local.dir: where the warm-up writes
    scratch.mkdir()
    env["SALES_ETL_SPARK_SCRATCH"] = str(scratch)
    ws = prepare_workspace(tmp_path / "ws", env)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env={**env, **ws.env()},
        cwd=ws.root,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # Prefect may log after the probe's line (its shutdown): take the probe's own line.
    (line,) = [x for x in done.stderr.splitlines() if x.startswith('{"exit_code"')]
    seen = json.loads(line)
    assert done.stdout.lstrip().startswith("{"), done.stdout[:2000]
    assert seen["exit_code"] == 0 and seen["warm_ups"] == 1
    assert "-XX:TieredStopAtLevel=1" in seen["jvm_arguments"]
    assert "-XX:+UseSerialGC" in seen["jvm_arguments"]
    summary, _ = json.JSONDecoder().raw_decode(done.stdout.lstrip())
    assert summary["files_accepted"] == 2 and summary["rows_total"] == 9
    assert_outputs_equal_clean_run(ws)
    assert seen["local_dir"] == str(scratch)
    # The warm-up's folder is gone from spark.local.dir and nothing of it reached the workspace.
    assert not list(scratch.glob("sales-etl-warm-up-*"))
    assert not list(ws.root.rglob("*warm-up*"))
