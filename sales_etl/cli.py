"""The ``sales-etl`` command line (README "Command line").

Heavy imports (Prefect, Spark, pandas) happen inside the commands, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from sales_etl.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    return Settings().with_overrides(
        landing=getattr(args, "landing", None),
        marts=getattr(args, "marts", None),
        database_url=getattr(args, "database_url", None),
        spark_master=getattr(args, "spark_master", None),
        incentive_scope=getattr(args, "incentive_scope", None),
        max_bad_row_fraction=getattr(args, "max_bad_row_fraction", None),
    )


def _add_common(parser: argparse.ArgumentParser, *, storage: bool = True) -> None:
    parser.add_argument("--database-url", help="SQLAlchemy URL (env SALES_ETL_DATABASE_URL)")
    if storage:
        parser.add_argument("--landing", help="landing zone: path or s3://bucket/prefix")
        parser.add_argument("--marts", help="marts root: path or s3://bucket/prefix")
        parser.add_argument("--spark-master", help="Spark master URL (default local[*])")
        parser.add_argument("--incentive-scope", choices=["company", "store"])
        parser.add_argument(
            "--max-bad-row-fraction",
            type=float,
            help="hold a file whole in error_files/too_many_bad_rows/ when more than this share "
            "of its rows is bad (env SALES_ETL_MAX_BAD_ROW_FRACTION, default 0.5; 1.0 = off)",
        )


def cmd_init_db(args: argparse.Namespace) -> int:
    """Create every table the product uses if missing."""
    from sales_etl.db.engine import init_db, make_engine
    from sales_etl.secrets import redact_url

    settings = _settings(args)
    engine = make_engine(settings.database_url)
    outcomes = init_db(engine)
    print(f"database {redact_url(settings.database_url)}:")
    for table, outcome in outcomes.items():  # existing tables (e.g. the tutorial's) are kept
        print(f"  {table}: {outcome}")
    return 0


def cmd_load_dimensions(args: argparse.Namespace) -> int:
    """Load customer/store/sales_team/product CSVs (insert or update by primary key)."""
    from sales_etl.db.dimensions import load_dimensions
    from sales_etl.db.engine import init_db, make_engine

    settings = _settings(args)
    engine = make_engine(settings.database_url)
    init_db(engine)
    counts = load_dimensions(engine, args.directory)
    for table, count in counts.items():
        print(f"{table}: {count} row(s) loaded")
    return 0


def run_flow(settings: Settings) -> dict[str, Any]:
    """Run the Prefect flow once in this process (ephemeral Prefect when no server is set).

    Settings reach the flow through ``SALES_ETL_*`` variables of this process, not as flow
    parameters: parameters are stored by the Prefect server and shown in its UI, and the
    database URL may hold a password.
    """
    from sales_etl.flows.sales_flow import sales_etl_flow
    from sales_etl.layout import TO_PROCESS
    from sales_etl.spark import start_spark_in_background
    from sales_etl.storage import open_store

    for name, value in settings.model_dump().items():
        if value is not None:
            os.environ[f"SALES_ETL_{name.upper()}"] = str(value)
    if open_store(settings.landing).list(TO_PROCESS + "/"):
        # Work is waiting: let the JVM start while Prefect starts its temporary server.
        start_spark_in_background(settings)
    return sales_etl_flow()


def cmd_run(args: argparse.Namespace) -> int:
    """One run of the flow; exit 0 when it completed (rejections are a normal outcome)."""
    from sales_etl.summary import format_summary

    settings = _settings(args)
    try:
        summary = run_flow(settings)
    except Exception as exc:  # the flow already logged the traceback
        print(f"sales-etl run FAILED: {type(exc).__name__}: {str(exc)[:500]}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(format_summary(summary))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """Write synthetic dimension CSVs and sales files."""
    from sales_etl.generate import generate_dataset

    result = generate_dataset(
        args.out,
        rows=args.rows,
        files=args.files,
        customers=args.customers,
        stores=args.stores,
        products=args.products,
        start=args.start,
        months=args.months,
        seed=args.seed,
        bad_row_fraction=args.bad_row_fraction,
        extra_columns=args.extra_columns,
        bad_files=args.bad_files,
    )
    print(f"dimensions: {result['dimensions_dir']}")
    print(
        f"sales files: {result['sales_dir']} ({len(result['sales_files'])} files, {result['counts']['rows']} rows)"
    )
    if result["bad_files"]:
        print(f"bad files: {', '.join(Path(p).name for p in result['bad_files'])}")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    """List the validator plugins a run would load: name, order, where from, hooks."""
    from sales_etl.validators.listing import format_plugin_report, plugin_report
    from sales_etl.validators.manager import describe_exception, get_plugin_manager

    settings = Settings().with_overrides(
        plugins_dir=args.plugins_dir, disable_plugins=args.disable_plugins
    )
    try:
        pm = get_plugin_manager(settings)
    except Exception as exc:  # a broken plugin: say which, without a traceback
        print(
            f"sales-etl plugins: cannot load the validator plugins: {describe_exception(exc)}",
            file=sys.stderr,
        )
        return 1
    report = plugin_report(pm, settings)
    print(json.dumps(report, indent=2) if args.json else format_plugin_report(report))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Sample data + SQLite + one run of the flow, on the configured (default: local) settings."""
    from sales_etl.db.dimensions import load_dimensions
    from sales_etl.db.engine import init_db, make_engine
    from sales_etl.generate import generate_dataset
    from sales_etl.secrets import redact_url
    from sales_etl.summary import format_summary

    settings = _settings(args)
    if settings.landing.startswith("s3://"):
        print(
            "demo copies sample files into a local landing folder; use a local --landing",
            file=sys.stderr,
        )
        return 2
    landing = Path(settings.landing).resolve()
    samples = landing.parent / "samples"
    data = generate_dataset(
        samples,
        rows=args.rows,
        files=4,
        customers=200,
        stores=4,
        products=30,
        start="2024-03-01",
        months=2,
        seed=args.seed,
        bad_row_fraction=0.02,
        extra_columns=False,
        bad_files=True,
    )
    engine = make_engine(settings.database_url)
    init_db(engine)
    load_dimensions(engine, data["dimensions_dir"])
    inbox = landing / "to_process"
    inbox.mkdir(parents=True, exist_ok=True)
    for path in [*data["sales_files"], *data["bad_files"]]:
        shutil.copyfile(path, inbox / Path(path).name)
    print(f"demo data: {len(data['sales_files']) + len(data['bad_files'])} files in {inbox}")
    summary = run_flow(settings)
    print()
    print(format_summary(summary))
    print()
    print(f"marts:    {settings.marts}")
    print(
        f"database: {redact_url(settings.database_url)} (customer_monthly_purchase, sales_team_incentive)"
    )
    print(f"archive:  {landing / 'processed'}   rejects: {landing / 'error_files'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="sales-etl", description="Sales CSV files -> data marts and reporting tables."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="sample data + SQLite + one run of the flow, under ./data")
    _add_common(demo)
    demo.add_argument("--rows", type=int, default=2000)
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(func=cmd_demo)

    init = sub.add_parser("init-db", help="create every table if missing")
    _add_common(init, storage=False)
    init.set_defaults(func=cmd_init_db)

    dims = sub.add_parser("load-dimensions", help="load customer/store/sales_team/product CSVs")
    dims.add_argument("directory")
    _add_common(dims, storage=False)
    dims.set_defaults(func=cmd_load_dimensions)

    run = sub.add_parser("run", help="one run of the flow with the configured settings")
    _add_common(run)
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    run.set_defaults(func=cmd_run)

    plugins = sub.add_parser("plugins", help="list the validator plugins a run would load")
    plugins.add_argument(
        "--plugins-dir", help="folder of plugin .py files (env SALES_ETL_PLUGINS_DIR)"
    )
    plugins.add_argument(
        "--disable-plugins", help="comma-separated plugin names (env SALES_ETL_DISABLE_PLUGINS)"
    )
    plugins.add_argument("--json", action="store_true", help="print the report as JSON")
    plugins.set_defaults(func=cmd_plugins)

    gen = sub.add_parser("generate", help="synthetic dimension CSVs and sales files")
    gen.add_argument("--out", default="./data/generated")
    gen.add_argument("--rows", type=int, default=10_000)
    gen.add_argument("--files", type=int, default=4)
    gen.add_argument("--customers", type=int, default=1000)
    gen.add_argument("--stores", type=int, default=5)
    gen.add_argument("--products", type=int, default=50)
    gen.add_argument("--start", default="2024-01-01", help="first sales date (ISO)")
    gen.add_argument("--months", type=int, default=1)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--bad-row-fraction", type=float, default=0.0)
    gen.add_argument("--extra-columns", action="store_true")
    gen.add_argument("--bad-files", action="store_true")
    gen.set_defaults(func=cmd_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sales-etl`` console script."""
    # The temporary Prefect server's telemetry write races its own SQLite file at start-up.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Without PREFECT_API_URL each run starts a temporary Prefect server; on a busy host its
    # default start-up budget is too short and the run fails before it begins.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
