"""Benchmark: one full ``sales-etl run`` on the embedded default against a DuckDB reference.

    .venv/bin/python bench/run.py                 # 10M rows, 10 files, 100k customers, 20 stores
    .venv/bin/python bench/run.py --rows 1000000  # quicker
    .venv/bin/python bench/run.py --rows 100000000 --skip-reference   # the 100M-row run
    .venv/bin/python bench/run.py --scale --big-one-file 100000000   # issue 16, all sections

Both sides read the same generated files. The pipeline side is ``sales-etl run`` exactly as an
operator runs it (ephemeral Prefect, local folders, SQLite, Spark ``local[*]``): validation,
quarantine, both marts, the reporting tables and the archive. The reference
(``bench/duckdb_reference.py``) does the transform + mart work only. Each runs in its own
process tree, measured for wall time and peak RSS (Python + JVM + Prefect server). The script
checks that both computed the same rows and totals before it prints the ratio.

``--scale`` adds issue 16's figures: section 2 (a ``--batch-rows`` batch into a month already
holding ``--rows`` rows against one into an empty month: the reporting recompute reads partial
aggregates, so both should cost about the same) and section 3 (small batches).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import Measured, run_measured

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _spec(args: argparse.Namespace, rows: int, files: int) -> dict[str, Any]:
    """What ``sales-etl generate`` makes: ``rows`` in ``files`` files, the rest from ``args``."""
    return {
        "rows": rows,
        "files": files,
        "customers": args.customers,
        "stores": args.stores,
        "months": args.months,
        "bad_row_fraction": args.bad_row_fraction,
        "seed": args.seed,
    }


def _generate(spec: dict[str, Any], data: Path) -> Path:
    """Generate the dataset once per parameter set (kept between runs: it takes a while)."""
    marker = data / "spec.json"
    if marker.is_file() and json.loads(marker.read_text()) == spec:
        return data
    shutil.rmtree(data, ignore_errors=True)
    cmd = [str(BIN / "sales-etl"), "generate", "--out", str(data)]
    for name, value in spec.items():
        cmd += [f"--{name.replace('_', '-')}", str(value)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    marker.write_text(json.dumps(spec))
    return data


def _sales_files(data: Path) -> list[Path]:
    return sorted((data / "sales").glob("*.csv"))


def _pipeline_env(ws: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SALES_ETL_LANDING=str(ws / "landing"),
        SALES_ETL_MARTS=str(ws / "marts"),
        SALES_ETL_DATABASE_URL=f"sqlite:///{ws / 'sales_etl.db'}",
    )
    return env


def run_pipeline(
    data: Path, ws: Path, *, with_files: bool = True, extra_env: dict[str, str] | None = None
) -> tuple[Measured, dict[str, Any], Path]:
    """Fresh workspace ``ws``, dimensions loaded (untimed), then one timed ``sales-etl run --json``
    (``with_files=False``: nothing waits in ``to_process/``, an idle run; ``extra_env``: more
    environment, e.g. ``SALES_ETL_SPARK_MASTER``)."""
    shutil.rmtree(ws, ignore_errors=True)
    inbox = ws / "landing" / "to_process"
    inbox.mkdir(parents=True)
    for path in _sales_files(data) if with_files else []:
        os.link(path, inbox / path.name)  # same bytes, no copy; the run moves the link
    env = {**_pipeline_env(ws), **(extra_env or {})}
    cli = str(BIN / "sales-etl")
    subprocess.run([cli, "init-db"], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(
        [cli, "load-dimensions", str(data / "dimensions")],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    measured, summary = timed_run(ws)
    return measured, summary, ws


def timed_run(ws: Path) -> tuple[Measured, dict[str, Any]]:
    """One timed ``sales-etl run --json`` in the prepared workspace ``ws``; its summary."""
    measured = run_measured(
        [str(BIN / "sales-etl"), "run", "--json"], env=_pipeline_env(ws), cwd=str(ws)
    )
    if measured.returncode != 0:
        sys.stderr.write(measured.stderr[-5000:])
        raise SystemExit(f"sales-etl run failed with exit code {measured.returncode}")
    return measured, json.loads(measured.stdout)


def _run_script(
    script: str, args: list[str], what: str, env: dict[str, str] | None = None
) -> tuple[Measured, dict[str, Any]]:
    """Run ``bench/<script>`` measured in its own process; its last stdout line is JSON."""
    measured = run_measured(
        [sys.executable, str(Path(__file__).resolve().parent / script), *args], env=env
    )
    if measured.returncode != 0:
        sys.stderr.write(measured.stderr[-5000:])
        raise SystemExit(f"{what} failed")
    return measured, json.loads(measured.stdout.strip().splitlines()[-1])


def run_reference(data: Path, work: Path) -> tuple[Measured, dict[str, Any]]:
    """The DuckDB reference in its own process, all cores."""
    out = work / "reference"
    shutil.rmtree(out, ignore_errors=True)
    files = [str(p) for p in _sales_files(data)]
    return _run_script(
        "duckdb_reference.py", [str(out), str(data / "dimensions"), *files], "the DuckDB reference"
    )


def run_floor(data: Path, work: Path, marts: Path) -> tuple[Measured, dict[str, Any]]:
    """``spark_floor.py`` over the same files and the marts the pipeline just wrote."""
    files = [str(p) for p in _sales_files(data)]
    return _run_script(
        "spark_floor.py",
        [str(work / "floor"), str(marts), *files],
        "bench/spark_floor.py",
        env=_pipeline_env(work / "floor-ws"),
    )


def _median_run(argv: list[str], repeat: int, env: dict[str, str] | None = None) -> Measured:
    """Run ``argv`` ``repeat`` times; the run of median wall time (a failed run stops the bench)."""
    runs = []
    for _ in range(repeat):
        measured = run_measured(argv, env=env)
        if measured.returncode != 0:
            sys.stderr.write(measured.stderr[-5000:])
            raise SystemExit(f"{' '.join(argv)} failed with exit code {measured.returncode}")
        runs.append(measured)
    return sorted(runs, key=lambda m: m.seconds)[len(runs) // 2]


#: Issue 16's goals for section 3 (ratios within one invocation).
IDLE_GOAL, SMALL_GOAL = 1.5, 2.0


def run_small_scale(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Issue 16 section 3, every figure from this one invocation (medians of ``--repeat``).

    ``import prefect`` in a bare Python; an idle ``sales-etl run``; Spark's own start + one tiny
    job + stop (``spark_start_stop.py``, Spark's defaults, the pipeline's master); one
    ``sales-etl run`` of ``--small-rows`` rows in one file into the same dimensions as the
    big run. Returns the seconds, the two ratios and the small run's stages.
    """
    from sales_etl.settings import Settings

    master = Settings().spark_master
    repeat = max(1, args.repeat)
    cheap = max(3, repeat)  # sub-second to 2 s measurements: always a median of >= 3
    data = _generate(_spec(args, args.small_rows, 1), work / "small-data")
    prefect = _median_run([sys.executable, "-c", "import prefect"], cheap)
    idle_runs, small_runs, floor_runs = [], [], []
    for _ in range(cheap):
        idle_runs.append(run_pipeline(data, work / "idle", with_files=False)[:2])
    for _ in range(repeat):  # interleaved, so a drift of the machine hits both alike
        floor_runs.append(_run_script("spark_start_stop.py", [master], "Spark start + stop"))
        small_runs.append(run_pipeline(data, work / "small")[:2])
    idle, idle_summary = sorted(idle_runs, key=lambda r: r[0].seconds)[len(idle_runs) // 2]
    floor, floor_phases = sorted(floor_runs, key=lambda r: r[0].seconds)[len(floor_runs) // 2]
    small, small_summary = sorted(small_runs, key=lambda r: r[0].seconds)[len(small_runs) // 2]
    if idle_summary["files_total"] != 0 or small_summary["rows_total"] != args.small_rows:
        raise SystemExit("the idle or the small run did not see the input it was given")
    return {
        "repeat": repeat,
        "import_prefect_seconds": round(prefect.seconds, 3),
        "idle_run_seconds": round(idle.seconds, 3),
        "idle_ratio": round(idle.seconds / prefect.seconds, 3),
        "idle_stages": idle_summary["stage_seconds"],
        "spark_start_stop_seconds": round(floor.seconds, 3),
        "spark_start_stop_phases": floor_phases["phases"],
        "small_rows": args.small_rows,
        "small_run_seconds": round(small.seconds, 3),
        "small_ratio": round(small.seconds / floor.seconds, 3),
        "small_stages": small_summary["stage_seconds"],
        "small_stage_details": small_summary["stage_details"],
        "small_peak_rss": small.peak_rss,
    }


#: Issue 16 section 1: one file may take at most this many times the same rows in 10 files.
ONE_FILE_GOAL = 1.15
#: Section 1 runs on exactly two cores, as the issue states it.
LOCAL_2 = {"SALES_ETL_SPARK_MASTER": "local[2]"}
SCAN_STAGE = "scan csv, classify (one pass)"


def one_file_copy(data: Path, dest: Path) -> Path:
    """``data``'s sales files as ONE file (the header once, then every file's rows in order)
    in ``dest/sales/``, its dimensions linked: the same rows, one file. Kept between runs."""
    sources = _sales_files(data)
    marker = dest / "made_from.json"
    made_from = {"files": [p.name for p in sources], "bytes": [p.stat().st_size for p in sources]}
    if marker.is_file() and json.loads(marker.read_text()) == made_from:
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    (dest / "sales").mkdir(parents=True)
    (dest / "dimensions").symlink_to(data / "dimensions")
    with (dest / "sales" / "sales_all.csv").open("wb") as out:
        for index, path in enumerate(sources):
            with path.open("rb") as src:
                header = src.readline()
                if index == 0:
                    out.write(header)
                shutil.copyfileobj(src, out, 16 * 2**20)
    marker.write_text(json.dumps(made_from))
    return dest


def _scan_seconds(summary: dict[str, Any]) -> float:
    return summary.get("stage_details", {}).get("marts (spark)", {}).get(SCAN_STAGE, 0.0)


def _java_peak(measured: Measured) -> int:
    return max((java for _, java in measured.java_timeline), default=0)


def run_one_file_scale(args: argparse.Namespace, data: Path, work: Path) -> dict[str, Any]:
    """Issue 16 section 1: the ``--rows`` rows in ``--files`` files against the same rows in ONE
    file (:func:`one_file_copy`), ``local[2]``, runs interleaved, medians of ``--repeat``.

    Raises SystemExit when the two computed different results (row counts, totals, top sellers).
    """
    one = one_file_copy(data, work / "one-file-data")
    many_runs, one_runs = [], []
    for _ in range(max(1, args.repeat)):
        many_runs.append(run_pipeline(data, work / "many-files", extra_env=LOCAL_2))
        one_runs.append(run_pipeline(one, work / "one-file", extra_env=LOCAL_2))
    many, many_summary, many_ws = sorted(many_runs, key=lambda r: r[0].seconds)[len(many_runs) // 2]
    single, one_summary, one_ws = sorted(one_runs, key=lambda r: r[0].seconds)[len(one_runs) // 2]
    facts_many, facts_one = (
        pipeline_facts(many_summary, many_ws),
        pipeline_facts(one_summary, one_ws),
    )
    if facts_many != facts_one:
        raise SystemExit(f"one file and {args.files} files disagree: {facts_one} != {facts_many}")
    return {
        "rows": one_summary["rows_total"],
        "files": len(_sales_files(data)),
        "many_files_seconds": round(many.seconds, 3),
        "one_file_seconds": round(single.seconds, 3),
        "ratio": round(single.seconds / many.seconds, 3),
        "many_files_scan_seconds": _scan_seconds(many_summary),
        "one_file_scan_seconds": _scan_seconds(one_summary),
        "one_file_read": [f.get("spark_read") for f in one_summary["files"]],
        "many_files_java_peak": _java_peak(many),
        "one_file_java_peak": _java_peak(single),
    }


def run_big_one_file(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """``--big-one-file`` rows generated as ONE file, one ``sales-etl run`` on ``local[2]``; the
    JVM's memory over the run (the sum of its processes' PSS, sampled every 0.1 s)."""
    data = _generate(_spec(args, args.big_one_file, 1), work / "big-one-file-data")
    measured, summary, _ = run_pipeline(data, work / "big-one-file", extra_env=LOCAL_2)
    if summary["rows_total"] != args.big_one_file:
        raise SystemExit(f"the big run read {summary['rows_total']} rows, not {args.big_one_file}")
    timeline = measured.java_timeline
    quarters = {}
    for share in (0.25, 0.5, 0.75, 1.0):  # the highest sample up to each point of the run
        until = [java for seconds, java in timeline if seconds <= share * measured.seconds]
        quarters[f"{share:.0%}"] = max(until, default=0)
    return {
        "rows": summary["rows_total"],
        "csv_bytes": sum(p.stat().st_size for p in _sales_files(data)),
        "seconds": round(measured.seconds, 3),
        "scan_seconds": _scan_seconds(summary),
        "read": [f.get("spark_read") for f in summary["files"]],
        "java_peak": _java_peak(measured),
        "java_peak_until": quarters,
        "samples": len(timeline),
    }


def report_one_file(one: dict[str, Any] | None, big: dict[str, Any] | None) -> None:
    """Print issue 16's section 1: the one-file ratio, and the big single-file run's memory."""
    if one:
        print(f"issue 16, section 1 (one big file on every core), local[2], {one['rows']:,} rows:")
        for label, key in ((f"{one['files']} files", "many_files"), ("1 file", "one_file")):
            print(
                f"  {label:10}{one[f'{key}_seconds']:>9.1f} s   scan csv, classify "
                f"{one[f'{key}_scan_seconds']:>7.1f} s   JVM peak {_gib(one[f'{key}_java_peak'])}"
            )
        print(
            f"  1 file / {one['files']} files: {one['ratio']:.2f}x (goal <= {ONE_FILE_GOAL}x); "
            f"the one file was read {', '.join(map(str, one['one_file_read']))}"
        )
    if big:
        print(
            f"  1 file of {big['rows']:,} rows ({big['csv_bytes'] / 2**20:,.0f} MiB of CSV, "
            f"read {', '.join(map(str, big['read']))}): {big['seconds']:.1f} s, scan csv, "
            f"classify {big['scan_seconds']:.1f} s, JVM peak {_gib(big['java_peak'])}"
        )
        print(
            "  JVM peak up to each quarter of that run: "
            + ", ".join(f"{k} {_gib(v)}" for k, v in big["java_peak_until"].items())
        )
    if one or big:
        print()


#: The stage of a run that recomputes the months it touched (sales_etl/flows/sales_flow.py).
REPORTING_STAGE = "reporting tables (spark + db)"


def _clone_workspace(source: Path, target: Path) -> None:
    """``target``: a copy of the finished workspace ``source``. Landing and mart files are
    hard links (the product never rewrites a file in place: it moves, writes new, deletes);
    the SQLite database is copied through the backup API."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for folder in ("landing", "marts"):
        shutil.copytree(source / folder, target / folder, copy_function=os.link)
    with (
        sqlite3.connect(source / "sales_etl.db") as src,
        sqlite3.connect(target / "sales_etl.db") as dst,
    ):
        src.backup(dst)


def run_month_scale(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Issue 16 section 2: a ``--batch-rows`` batch into a month already holding ``--rows``
    rows (the same month) against the same batch size into an empty month, both from copies
    of one workspace (medians of ``--repeat`` runs each, interleaved).

    The month is filled by one untimed run of ``--rows`` rows in ``--files`` files, all in
    2024-01; the batches are one file each (other seeds, so never a duplicate), in 2024-01
    and in 2024-02. Returns the seconds of both runs and of their reporting stage, the ratios
    (same month / empty month) and the months each run recomputed.
    """
    month = _generate({**_spec(args, args.rows, args.files), "months": 1}, work / "month-data")
    batches = {
        "same": _generate(
            {**_spec(args, args.batch_rows, 1), "months": 1, "seed": args.seed + 1},
            work / "batch-same-month",
        ),
        "empty": _generate(
            {
                **_spec(args, args.batch_rows, 1),
                "months": 1,
                "seed": args.seed + 2,
                "start": "2024-02-01",
            },
            work / "batch-empty-month",
        ),
    }
    base = work / "month-base"
    _, filled, _ = run_pipeline(month, base)
    runs: dict[str, list[tuple[Measured, dict[str, Any]]]] = {"same": [], "empty": []}
    for _ in range(max(1, args.repeat)):
        for target, data in batches.items():
            ws = work / f"month-{target}"
            _clone_workspace(base, ws)
            for path in _sales_files(data):
                os.link(path, ws / "landing" / "to_process" / path.name)
            runs[target].append(timed_run(ws))
    result: dict[str, Any] = {
        "month_rows": filled["rows_loaded"],
        "batch_rows": args.batch_rows,
        "repeat": max(1, args.repeat),
    }
    for target, measured in runs.items():
        run, summary = sorted(measured, key=lambda r: r[0].seconds)[len(measured) // 2]
        result[f"{target}_month"] = {
            "run_seconds": round(run.seconds, 3),
            "reporting_seconds": round(summary["stage_seconds"][REPORTING_STAGE], 3),
            "reporting_details": summary.get("stage_details", {}).get(REPORTING_STAGE, {}),
            "rows_loaded": summary["rows_loaded"],
            "months_recomputed": summary["months_recomputed"],
        }
    same, empty = result["same_month"], result["empty_month"]
    result["reporting_ratio"] = round(same["reporting_seconds"] / empty["reporting_seconds"], 3)
    result["run_ratio"] = round(same["run_seconds"] / empty["run_seconds"], 3)
    return result


def report_month_scale(month: dict[str, Any]) -> None:
    """Print issue 16's section 2 (:func:`run_month_scale`)."""
    print(
        f"issue 16, section 2 (monthly tables in proportion to the batch), "
        f"medians of {month['repeat']} run(s):"
    )
    for target, label in (
        ("same", f"into a month holding {month['month_rows']:,} rows"),
        ("empty", "into an empty month"),
    ):
        figures = month[f"{target}_month"]
        print(
            f"  {month['batch_rows']:,} rows {label:38}"
            f"{figures['run_seconds']:>8.2f} s run, "
            f"{figures['reporting_seconds']:>6.2f} s reporting tables"
        )
        for part, seconds in figures["reporting_details"].items():
            print(f"    {part:50}{seconds:>8.2f}")
    print(
        f"  same month / empty month: reporting tables {month['reporting_ratio']:.2f}x, "
        f"whole run {month['run_ratio']:.2f}x (goal: about 1x)"
    )
    print()


def report_scale(scale: dict[str, Any]) -> None:
    """Print issue 16's sections 2-3 (section 1: :func:`report_one_file`)."""
    report_month_scale(scale["month_scale"])
    n = scale["repeat"]
    print(f"issue 16, section 3 (small batches), medians of {max(3, n)} / {n} runs:")
    label = 'python -c "import prefect"'
    print(f"  {label:44}{scale['import_prefect_seconds']:>8.2f} s")
    print(
        f"  {'sales-etl run, nothing waiting':44}{scale['idle_run_seconds']:>8.2f} s"
        f" = {scale['idle_ratio']:.2f}x import prefect (goal <= {IDLE_GOAL}x)"
    )
    print(
        f"  {'Spark start + one tiny job + stop':44}{scale['spark_start_stop_seconds']:>8.2f} s"
        + "  ("
        + ", ".join(f"{k} {v:.1f}" for k, v in scale["spark_start_stop_phases"].items())
        + ")"
    )
    label = f"sales-etl run, {scale['small_rows']:,} rows"
    print(
        f"  {label:44}{scale['small_run_seconds']:>8.2f} s"
        f" = {scale['small_ratio']:.2f}x Spark start + stop (goal <= {SMALL_GOAL}x)"
    )
    stages = scale["small_stages"]
    for name, seconds in stages.items():
        print(f"    {name:42}{seconds:>8.2f}")
        for part, part_seconds in scale["small_stage_details"].get(name, {}).items():
            print(f"      {part:40}{part_seconds:>8.2f}")
    outside = scale["small_run_seconds"] - sum(stages.values())
    print(f"    {'process start, Prefect start/stop':42}{outside:>8.2f}")
    print()


def pipeline_facts(summary: dict[str, Any], ws: Path) -> dict[str, Any]:
    """The pipeline's counts and totals, read from its summary and its SQLite database."""
    with sqlite3.connect(ws / "sales_etl.db") as conn:
        totals = [r[0] for r in conn.execute("SELECT monthly_total FROM customer_monthly_purchase")]
    # Each stored amount is a cent value; summing its decimal text form is exact.
    exact_total = sum((Decimal(str(t)) for t in totals), Decimal(0))
    return {
        "rows_total": summary["rows_total"],
        "rows_loaded": summary["rows_loaded"],
        "rows_quarantined": summary["rows_quarantined"],
        "months": summary["months_recomputed"],
        "customer_month_rows": len(totals),
        "customer_month_total": exact_total,
        "top_sellers": {
            f"{t['year']}-{t['month']:02d}": t["sales_person_id"] for t in summary["top_performers"]
        },
    }


def compare(pipeline: dict[str, Any], reference: dict[str, Any]) -> list[str]:
    """Differences between what the two sides computed (empty when they agree)."""
    problems = []
    for key in ("rows_total", "rows_loaded", "rows_quarantined", "months", "customer_month_rows"):
        if pipeline[key] != reference[key]:
            problems.append(f"{key}: pipeline {pipeline[key]} != reference {reference[key]}")
    if pipeline["customer_month_total"] != Decimal(reference["customer_month_total"]):
        problems.append(
            f"customer_month_total: pipeline {pipeline['customer_month_total']} != "
            f"reference {reference['customer_month_total']}"
        )
    ref_top = {m: t["sales_person_id"] for m, t in reference["top_sellers"].items()}
    if pipeline["top_sellers"] != ref_top:
        problems.append(f"top sellers: pipeline {pipeline['top_sellers']} != reference {ref_top}")
    return problems


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def machine() -> str:
    """One line describing where the numbers were taken."""
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    import duckdb
    import pyspark

    return (
        f"{psutil.cpu_count(logical=True)} cores ({platform.processor() or platform.machine()}), "
        f"{_gib(psutil.virtual_memory().total)} RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, {java[0] if java else 'java ?'}, "
        f"pyspark {pyspark.__version__}, duckdb {duckdb.__version__}"
    )


def report(
    args: argparse.Namespace,
    data: Path,
    pipeline: Measured,
    summary: dict[str, Any],
    reference: tuple[Measured, dict[str, Any]] | None,
    problems: list[str],
    floor: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Print the comparison; return it as a dict (for --json)."""
    size = sum(p.stat().st_size for p in _sales_files(data))
    rows = summary["rows_total"]
    print(f"machine:  {machine()}")
    print(
        f"input:    {rows:,} rows in {args.files} files ({size / 2**20:,.0f} MiB of CSV), "
        f"{args.customers:,} customers, {args.stores} stores, {args.months} months, "
        f"{summary['rows_quarantined']:,} rows quarantined"
    )
    print()
    print(f"{'':28}{'seconds':>10}{'rows/s':>14}{'peak RSS (tree)':>18}")
    print(
        f"{'sales-etl run (pipeline)':28}{pipeline.seconds:>10.1f}{rows / pipeline.seconds:>14,.0f}"
        f"{_gib(pipeline.peak_rss):>18}"
    )
    result: dict[str, Any] = {
        "rows": rows,
        "csv_bytes": size,
        "pipeline_seconds": round(pipeline.seconds, 2),
        "pipeline_peak_rss": pipeline.peak_rss,
        "pipeline_stages": summary.get("stage_seconds", {}),
        "pipeline_stage_details": summary.get("stage_details", {}),
    }
    print(
        f"{'':28}peak by process: "
        + ", ".join(f"{kind} {_gib(rss)}" for kind, rss in sorted(pipeline.peak_by_process.items()))
    )
    result["pipeline_peak_by_process"] = pipeline.peak_by_process
    if reference:
        ref, _ = reference
        ratio = pipeline.seconds / ref.seconds
        print(
            f"{'DuckDB reference':28}{ref.seconds:>10.1f}{rows / ref.seconds:>14,.0f}"
            f"{_gib(ref.peak_rss):>18}"
        )
        print()
        print(f"ratio pipeline / reference: {ratio:.2f}x (issue 16 goal <= 3.0x)")
        print("results agree:" + (" yes" if not problems else " NO"))
        for problem in problems:
            print(f"  - {problem}")
        result.update(
            reference_seconds=round(ref.seconds, 2),
            reference_peak_rss=ref.peak_rss,
            reference_stages=reference[1]["stages"],
            ratio=round(ratio, 3),
            results_agree=not problems,
        )
    if floor:
        print()
        print(
            f"Spark floor (csv scan + the two mart writes, nothing else): "
            f"{floor['floor_seconds']:.1f} s"
            + (
                f" = {floor['floor_seconds'] / reference[0].seconds:.2f}x the reference"
                if reference
                else ""
            )
        )
        print(f"ratio pipeline / Spark floor: {pipeline.seconds / floor['floor_seconds']:.2f}x")
        for name, seconds in floor["stages"].items():
            print(f"  {name:40}{seconds:>8.1f}")
        result.update(floor_seconds=floor["floor_seconds"], floor_stages=floor["stages"])
    print()
    print("pipeline stages (seconds):")
    stages = summary.get("stage_seconds", {})
    accounted = sum(stages.values())
    details = summary.get("stage_details", {})
    for name, seconds in stages.items():
        print(f"  {name:40}{seconds:>8.1f}")
        for part, part_seconds in details.get(name, {}).items():
            print(f"    {part:38}{part_seconds:>8.1f}")
    print(f"  {'process start, Prefect start/stop':40}{pipeline.seconds - accounted:>8.1f}")
    if reference:
        print("reference stages (seconds):")
        for name, seconds in reference[1]["stages"].items():
            print(f"  {name:40}{seconds:>8.1f}")
    return result


def main(argv: list[str] | None = None) -> int:
    """Generate, run both sides, compare, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--stores", type=int, default=20)
    parser.add_argument("--months", type=int, default=3)
    parser.add_argument("--bad-row-fraction", type=float, default=0.001)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", default=str(REPO / "bench" / ".work"), help="scratch folder")
    parser.add_argument("--skip-reference", action="store_true", help="pipeline only")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also time Spark's floor: csv scan + the two mart writes alone (spark_floor.py)",
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help="issue 16 in one invocation: the small-batch figures (import prefect, an idle run, "
        "Spark start + stop, a --small-rows run), a --batch-rows batch into a month holding "
        "--rows rows and into an empty month, the --rows rows in --files files against the "
        "same rows in one file (local[2]), then the --rows run against the DuckDB reference "
        "and Spark's floor (implies --floor)",
    )
    parser.add_argument(
        "--small-rows", type=int, default=1000, help="rows of the small run (--scale; 1000)"
    )
    parser.add_argument(
        "--batch-rows",
        type=int,
        default=10_000,
        help="--scale: rows of the batch sent into a month holding --rows rows and into an "
        "empty month (issue 16 section 2; 10000)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="--scale: runs of the Spark start + stop and of the small run, the median is "
        "shown (import prefect and the idle run: at least 3)",
    )
    parser.add_argument(
        "--big-one-file",
        type=int,
        default=0,
        metavar="ROWS",
        help="issue 16 section 1: also one run of ROWS rows in ONE file (local[2]), reporting "
        "the JVM's memory over the run (e.g. 100000000; default: not run)",
    )
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args(argv)
    args.floor = args.floor or args.scale
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    scale = run_small_scale(args, work) if args.scale else None
    if scale:
        scale["month_scale"] = run_month_scale(args, work)
    data = _generate(_spec(args, args.rows, args.files), work / "data")
    one_file = run_one_file_scale(args, data, work) if args.scale else None
    big = run_big_one_file(args, work) if args.big_one_file else None
    reference = None if args.skip_reference else run_reference(data, work)
    pipeline, summary, ws = run_pipeline(data, work / "pipeline")
    problems = compare(pipeline_facts(summary, ws), reference[1]) if reference else []
    floor = run_floor(data, work, ws / "marts")[1] if args.floor else None
    report_one_file(one_file, big)
    if scale:
        report_scale(scale)
    result = report(args, data, pipeline, summary, reference, problems, floor)
    if scale:
        result["scale"] = scale
    if one_file:
        result["one_file"] = one_file
    if big:
        result["big_one_file"] = big
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
