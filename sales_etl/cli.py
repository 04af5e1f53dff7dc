"""The ``sales-etl`` command line (README "Command line").

Heavy imports (Prefect, Spark, pandas) happen inside the commands, so ``--help`` is instant.

Errors: a :class:`~sales_etl.errors.UserError` (a setting, path, database, table or input file
the user must fix) is printed as ``sales-etl <command>: <message>`` plus ``hint: ...`` on
stderr, exit 2; anything else as one line, exit 1. ``--debug`` (or ``SALES_ETL_DEBUG=1``) adds
the traceback.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from sales_etl.errors import InputError, UserError, one_line
from sales_etl.settings import CLI_FLAGS, ENV_PREFIX, DebugSettings, Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

#: Environment variable that turns ``--debug`` on (tracebacks on errors).
DEBUG_ENV = "SALES_ETL_DEBUG"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line plus a hint (not the whole usage text)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\nhint: see {self.prog} --help\n")


def _settings(args: argparse.Namespace) -> Settings:
    """Settings with the command's flags applied (the flags are those of ``CLI_FLAGS``)."""
    return Settings().with_overrides(**{name: getattr(args, name, None) for name in CLI_FLAGS})


def _setting_help(name: str, what: str | None = None) -> str:
    """Help text of a settings flag: what it does, its variable and its default (one source)."""
    field = Settings.model_fields[name]
    text = f"{what or field.description} (env {ENV_PREFIX}{name.upper()}; default {field.default})"
    return text.replace("%", "%%")  # argparse formats help with %


def _add_common(parser: argparse.ArgumentParser, *, storage: bool = True) -> None:
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help=_setting_help(
            "database_url",
            "SQLAlchemy URL of the database; a relative sqlite:/// path is relative to the "
            "working directory",
        ),
    )
    if storage:
        parser.add_argument("--landing", metavar="PATH_OR_S3_URL", help=_setting_help("landing"))
        parser.add_argument("--marts", metavar="PATH_OR_S3_URL", help=_setting_help("marts"))
        parser.add_argument("--spark-master", metavar="URL", help=_setting_help("spark_master"))
        parser.add_argument(
            "--incentive-scope",
            choices=["company", "store"],
            help=_setting_help("incentive_scope"),
        )
        parser.add_argument(
            "--max-bad-row-fraction",
            type=_fraction,
            metavar="FRACTION",
            help=_setting_help("max_bad_row_fraction"),
        )


def _count(minimum: int) -> Callable[[str], int]:
    """argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value

    return parse


def _fraction(text: str) -> float:
    """argparse type: a number between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text!r}")
    return value


def _iso_date(text: str) -> str:
    """argparse type: a real date written YYYY-MM-DD."""
    try:
        if len(text) != 10:
            raise ValueError
        dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None
    return text


def _print_locations(settings: Settings, *, storage: bool = True) -> None:
    """What the command works on: absolute local paths, the database with its password masked."""
    for name, value in _locations(settings, storage=storage).items():
        print(f"{name + ':':<10}{value}")


def _locations(settings: Settings, *, storage: bool = True) -> dict[str, str]:
    from sales_etl.db.engine import database_location

    shown: dict[str, str] = {}
    if storage:
        for name in ("landing", "marts"):
            url: str = getattr(settings, name)
            shown[name] = url if "://" in url else str(Path(url).expanduser().resolve())
    shown["database"] = database_location(settings.database_url)
    return shown


def cmd_init_db(args: argparse.Namespace) -> int:
    """Create every table the product uses if missing."""
    from sales_etl.db.engine import init_db, make_engine
    from sales_etl.preflight import DATABASE_CHECKS, run_preflight

    settings = _settings(args)
    _print_locations(settings, storage=False)
    run_preflight(settings, DATABASE_CHECKS, sqlite_must_exist=False)
    engine = make_engine(settings.database_url)
    try:
        outcomes = init_db(engine)
    finally:
        engine.dispose()
    for table, outcome in outcomes.items():  # existing tables (e.g. the tutorial's) are kept
        print(f"  {table}: {outcome}")
    return 0


def cmd_load_dimensions(args: argparse.Namespace) -> int:
    """Load customer/store/sales_team/product CSVs (insert or update by primary key)."""
    from sales_etl.db.dimensions import DimensionLoadError, load_dimensions
    from sales_etl.db.engine import init_db, make_engine
    from sales_etl.preflight import DATABASE_CHECKS, run_preflight

    folder = Path(args.directory).expanduser().resolve()
    if not folder.is_dir():
        raise InputError(
            f"dimension folder {folder} "
            + ("is not a folder" if folder.exists() else "does not exist"),
            hint="give the folder holding customer.csv, store.csv, sales_team.csv, product.csv",
        )
    settings = _settings(args)
    _print_locations(settings, storage=False)
    run_preflight(settings, DATABASE_CHECKS, sqlite_must_exist=False)
    engine = make_engine(settings.database_url)
    try:
        init_db(engine)
        counts = load_dimensions(engine, folder)
    except DimensionLoadError as exc:
        if isinstance(exc, UserError):
            raise
        raise InputError(
            f"{folder}: {exc}", hint="fix the file and run load-dimensions again"
        ) from exc
    finally:
        engine.dispose()
    for table, count in counts.items():
        print(f"{table}: {count} row(s) loaded")
    return 0


def run_flow(settings: Settings, *, skip_when_idle: bool = False) -> dict[str, Any]:
    """Run the Prefect flow once in this process (ephemeral Prefect when no server is set).

    Settings reach the flow through ``SALES_ETL_*`` variables of this process, not as flow
    parameters: parameters are stored by the Prefect server and shown in its UI, and the
    database URL may hold a password.

    ``skip_when_idle``: when nothing waits in ``to_process/``, no interrupted run needs recovery
    and the lock is free, return the idle summary without importing Prefect or Spark
    (:mod:`sales_etl.idle`; no Prefect flow run is recorded for it).
    """
    from sales_etl.preflight import run_preflight

    # Here first, before Prefect and Spark are even imported (seconds on a busy host) and before
    # Prefect's temporary server and the JVM start. The flow checks again as its first task.
    run_preflight(settings)
    if skip_when_idle:
        from sales_etl.idle import idle_summary, refuse_when_run_in_progress

        refuse_when_run_in_progress(settings)

        summary = idle_summary(settings)
        if summary is not None:
            from sales_etl.journal import stray_files_warning
            from sales_etl.storage import open_store

            stray = stray_files_warning(open_store(settings.landing))
            if stray:
                print(f"warning: {stray}", file=sys.stderr)
            return summary

    from sales_etl.flows.sales_flow import sales_etl_flow
    from sales_etl.journal import incoming_files
    from sales_etl.spark import start_spark_in_background
    from sales_etl.storage import open_store

    _export_settings(settings)
    waiting = incoming_files(open_store(settings.landing))
    if waiting:
        # Work is waiting: let the JVM start while Prefect starts its temporary server (for
        # a small batch, also warm it: sales_etl.warm_up).
        start_spark_in_background(settings, input_bytes=sum(obj.size for obj in waiting))
    return sales_etl_flow()


def _export_settings(settings: Settings) -> None:
    """Pass ``settings`` to a flow run in this process as ``SALES_ETL_*`` variables."""
    os.environ.update(settings.as_environment())


def cmd_replay(args: argparse.Namespace) -> int:
    """Load the quarantined rows that pass today's dimensions and rules, exactly once.

    Exit 0 when the replay completed (or the dry run reported); ``--json`` prints the summary
    of :func:`sales_etl.flows.replay_flow.sales_etl_replay_flow` as a JSON object.
    """
    from sales_etl.preflight import run_preflight
    from sales_etl.summary import format_replay_summary
    from sales_etl.tasks.replay import ReplaySelection, refuse_unknown_batch

    reasons = tuple(r.strip() for r in (args.reason or "").split(",") if r.strip())
    selection = ReplaySelection(reasons, args.source_file, args.batch)
    selection.check()
    settings = _settings(args)
    if not args.json:
        _print_locations(settings)
    run_preflight(settings)
    from sales_etl.idle import refuse_when_run_in_progress

    refuse_when_run_in_progress(settings)  # before Prefect and Spark start (a dry run too)
    refuse_unknown_batch(settings, selection)  # here, not only in the flow: no Prefect traceback
    _export_settings(settings)
    from sales_etl.flows.replay_flow import sales_etl_replay_flow

    summary = sales_etl_replay_flow(
        reason=list(reasons), source_file=args.source_file, batch=args.batch, dry_run=args.dry_run
    )
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(format_replay_summary(summary))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """One run of the flow; exit 0 when it completed (rejections are a normal outcome).

    An idle run (nothing waiting, nothing to recover, lock free) is answered before Prefect
    and Spark are imported, with the flow's idle summary (:mod:`sales_etl.idle`).

    A failure is raised to :func:`main` (one or two lines on stderr); with ``--json`` a JSON
    object ``{"status": "failed", "error", "hint", "exit_code", "batch_id", "rolled_back",
    "outcome", "landing", "marts", "database"}`` is printed on stdout first.
    """
    from sales_etl.summary import format_summary

    settings: Settings | None = None
    try:
        settings = _settings(args)
        if not args.json:
            _print_locations(settings)
        summary = run_flow(settings, skip_when_idle=True)
    except Exception as exc:
        if args.json:
            print(json.dumps(_failure_json(exc, settings), indent=2))
        raise
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(format_summary(summary))
    return 0


def _failure_json(exc: Exception, settings: Settings | None) -> dict[str, Any]:
    """``run --json`` on failure: what went wrong and what happened to the batch."""
    # The flow notes the batch's fate on its exception (flows/sales_flow.py, FAILURE_ATTRIBUTE).
    fate = getattr(exc, "sales_etl_failure", None) or {}
    user = isinstance(exc, UserError)
    if user and not fate:  # refused before the flow started (settings, preflight)
        fate = {"batch_id": None, "rolled_back": None, "outcome": "nothing was moved"}
    return {
        "status": "failed",
        "error": exc.message if isinstance(exc, UserError) else _one_line(exc, settings),
        "hint": exc.hint if isinstance(exc, UserError) else None,
        "exit_code": exc.exit_code if isinstance(exc, UserError) else 1,
        "batch_id": fate.get("batch_id"),
        "rolled_back": fate.get("rolled_back"),
        "outcome": fate.get("outcome"),
        **(_locations(settings) if settings is not None else {}),
    }


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
    from sales_etl.preflight import check_plugins_dir
    from sales_etl.validators.listing import format_plugin_report, plugin_report
    from sales_etl.validators.manager import describe_exception, get_plugin_manager

    settings = _settings(args)
    # A missing folder is a setting to fix (exit 2), not a broken plugin.
    check_plugins_dir(settings)
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
    """Sample data + SQLite + one run of the flow, on the configured (default: local) settings.

    Refused (ConfigError, nothing written) when the database already holds customers other than
    the demo's: a workspace with real data is never mixed with samples.
    """
    from sales_etl.db.dimensions import load_dimensions
    from sales_etl.db.engine import init_db, make_engine
    from sales_etl.errors import ConfigError
    from sales_etl.generate import generate_dataset
    from sales_etl.settings import setting_label
    from sales_etl.summary import format_summary

    settings = _settings(args)
    if settings.landing.startswith(("s3://", "s3a://")):
        raise ConfigError(
            f"{setting_label('landing')}: demo copies sample files into a local landing folder, "
            f"not {settings.landing}",
            hint="use a local --landing (sales-etl run works on S3)",
        )
    landing = Path(settings.landing).resolve()
    samples = landing.parent / "samples"
    engine = make_engine(settings.database_url)
    with tempfile.TemporaryDirectory(prefix="sales-etl-demo-") as scratch:
        data = generate_dataset(
            scratch,
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
        # Before anything is written: the demo loads its own dimensions (replacing rows by id)
        # and sales, so a workspace holding other data would be silently mixed with samples.
        _refuse_a_workspace_with_other_data(engine, Path(data["dimensions_dir"]), settings)
        shutil.copytree(scratch, samples, dirs_exist_ok=True)

        def kept(path: str | Path) -> Path:  # a generated file's copy under samples/
            return samples / Path(path).relative_to(scratch)

        dimensions = kept(data["dimensions_dir"])
        sent = [kept(p) for p in [*data["sales_files"], *data["bad_files"]]]
    init_db(engine)
    load_dimensions(engine, dimensions)
    inbox = landing / "to_process"
    inbox.mkdir(parents=True, exist_ok=True)
    for path in sent:
        shutil.copyfile(path, inbox / path.name)
    print(f"demo data: {len(sent)} files in {inbox} (copies of {samples})")
    summary = run_flow(settings)
    print()
    print(format_summary(summary))
    print()
    shown = _locations(settings)
    print(f"marts:    {shown['marts']}")
    print(f"database: {shown['database']} (customer_monthly_purchase, sales_team_incentive)")
    print(f"archive:  {landing / 'processed'}   rejects: {landing / 'error_files'}")
    return 0


def _refuse_a_workspace_with_other_data(
    engine: Engine, demo_dimensions: Path, settings: Settings
) -> None:
    """Refuse the demo when the database's ``customer`` table holds rows other than the demo's
    own (a workspace with real data: the demo would replace dimension rows by id and add
    sample sales to its marts and tables). An empty or missing table, or the demo's own rows
    (a second demo), pass.

    Raises:
        ConfigError: the table holds other customers (names how many, and where).
    """
    from sqlalchemy import inspect, select

    from sales_etl.db.schema import customer
    from sales_etl.errors import ConfigError

    if customer.name not in inspect(engine).get_table_names():
        return
    with engine.connect() as conn:
        stored = {
            (int(i), f or "", last or "")
            for i, f, last in conn.execute(
                select(customer.c.customer_id, customer.c.first_name, customer.c.last_name)
            )
        }
    if not stored:
        return
    with (demo_dimensions / "customer.csv").open(newline="", encoding="utf-8") as handle:
        demo = {
            (int(r["customer_id"]), r["first_name"], r["last_name"]) for r in csv.DictReader(handle)
        }
    if stored != demo:
        raise ConfigError(
            f"demo: the database {_locations(settings)['database']} already holds "
            f"{len(stored)} customer row(s) that are not the demo's; the demo would replace "
            "dimension rows and add sample sales to this workspace",
            hint="run the demo in an empty folder with SALES_ETL_LANDING, SALES_ETL_MARTS and "
            "SALES_ETL_DATABASE_URL unset (it uses ./data), or point them at new locations",
        )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sales-etl")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = _Parser(
        prog="sales-etl",
        description="Sales CSV files -> data marts and reporting tables.",
        epilog="Exit codes: 0 done, 1 the run failed, 2 a setting, path, database, table or "
        f"input file must be fixed. --debug or {DEBUG_ENV}=1 shows tracebacks.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument(
        "--debug",
        action="store_true",
        default=None,  # absent: SALES_ETL_DEBUG decides (sales_etl.settings.DebugSettings)
        help=f"show the traceback of an error (env {DEBUG_ENV}=1; default off)",
    )
    # Also accepted after the command (sales-etl run --debug); SUPPRESS keeps the global value.
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, func: Callable[[argparse.Namespace], int]):
        cmd = sub.add_parser(name, help=help_text, description=help_text, parents=[debug])
        cmd.set_defaults(func=func)
        return cmd

    demo = command("demo", "sample data + SQLite + one run of the flow, under ./data", cmd_demo)
    _add_common(demo)
    demo.add_argument(
        "--rows", type=_count(1), default=2000, help="sales rows to generate (default 2000)"
    )
    demo.add_argument(
        "--seed", type=int, default=7, help="random seed of the sample data (default 7)"
    )

    init = command("init-db", "create every table if missing", cmd_init_db)
    _add_common(init, storage=False)

    dims = command(
        "load-dimensions",
        "load customer/store/sales_team/product CSVs (insert or update by primary key)",
        cmd_load_dimensions,
    )
    dims.add_argument(
        "directory", help="folder holding customer.csv, store.csv, sales_team.csv, product.csv"
    )
    _add_common(dims, storage=False)

    run = command("run", "one run of the flow with the configured settings", cmd_run)
    _add_common(run)
    run.add_argument(
        "--json",
        action="store_true",
        help="print the summary (or, on failure, the error) as a JSON object (default: text)",
    )

    replay = command(
        "replay",
        "load the quarantined rows that pass today's dimension tables and row rules, once",
        cmd_replay,
    )
    _add_common(replay)
    replay.add_argument(
        "--reason",
        metavar="R[,R...]",
        help="only rows whose current reason names one of these codes, e.g. "
        "unknown_customer_id (default: every quarantined row)",
    )
    replay.add_argument(
        "--source-file",
        metavar="GLOB",
        help="only rows of files whose landing key or name matches this glob (default: all)",
    )
    replay.add_argument(
        "--batch",
        metavar="ID",
        help="only rows quarantined by this batch, YYYYMMDD_HHMMSS (default: every batch)",
    )
    replay.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would load (rows per reason, months, totals, top performers) and "
        "change nothing (default: replay)",
    )
    replay.add_argument(
        "--json", action="store_true", help="print the summary as a JSON object (default: text)"
    )

    plugins = command("plugins", "list the validator plugins a run would load", cmd_plugins)
    plugins.add_argument("--plugins-dir", metavar="DIR", help=_setting_help("plugins_dir"))
    plugins.add_argument(
        "--disable-plugins", metavar="NAMES", help=_setting_help("disable_plugins")
    )
    plugins.add_argument(
        "--json", action="store_true", help="print the report as JSON (default: a table)"
    )

    gen = command("generate", "synthetic dimension CSVs and sales files", cmd_generate)
    gen.add_argument(
        "--out",
        default="./data/generated",
        help="output folder: dimensions/ and sales/ are made in it (default ./data/generated)",
    )
    gen.add_argument(
        "--rows", type=_count(0), default=10_000, help="sales rows in all (default 10000)"
    )
    gen.add_argument("--files", type=_count(1), default=4, help="sales files to write (default 4)")
    gen.add_argument(
        "--customers", type=_count(1), default=1000, help="rows of customer.csv (default 1000)"
    )
    gen.add_argument(
        "--stores",
        type=_count(1),
        default=5,
        help="rows of store.csv; 4 sales people per store (default 5)",
    )
    gen.add_argument(
        "--products", type=_count(1), default=50, help="rows of product.csv (default 50)"
    )
    gen.add_argument(
        "--start",
        type=_iso_date,
        default="2024-01-01",
        help="first sales date, YYYY-MM-DD (default 2024-01-01)",
    )
    gen.add_argument(
        "--months", type=_count(1), default=1, help="calendar months of sales (default 1)"
    )
    gen.add_argument(
        "--seed", type=int, default=0, help="random seed of the generated data (default 0)"
    )
    gen.add_argument(
        "--bad-row-fraction",
        type=_fraction,
        default=0.0,
        help="share of rows corrupted on purpose, 0 to 1 (default 0)",
    )
    gen.add_argument(
        "--extra-columns",
        action="store_true",
        help="add extra columns to the sales files (default: none)",
    )
    gen.add_argument(
        "--bad-files",
        action="store_true",
        help="also write files that must be rejected (default: none)",
    )
    return parser


def _one_line(exc: BaseException, settings: Settings | None = None) -> str:
    """``Type: message`` on one line, credentials scrubbed, at most 500 characters."""
    from sales_etl.secrets import scrub

    return one_line(scrub(f"{type(exc).__name__}: {exc}", settings))


def _report_error(command: str, exc: BaseException, *, debug: bool) -> int:
    """Print ``exc`` for a user (stderr); returns the exit code."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    prefix = f"sales-etl {command}"
    if isinstance(exc, UserError):
        print(f"{prefix}: {one_line(exc.message, 2000)}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {one_line(exc.hint, 2000)}", file=sys.stderr)
        return exc.exit_code
    try:
        settings: Settings | None = Settings()
    except Exception:  # invalid settings: scrub what can be scrubbed without them
        settings = None
    more = "" if debug else f" (--debug or {DEBUG_ENV}=1 shows the traceback)"
    print(f"{prefix}: failed: {_one_line(exc, settings)}{more}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sales-etl`` console script; returns the exit code (0, 1 or 2)."""
    # The temporary Prefect server's telemetry write races its own SQLite file at start-up.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Without PREFECT_API_URL each run starts a temporary Prefect server; on a busy host its
    # default start-up budget is too short and the run fails before it begins.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    args = build_parser().parse_args(argv)
    debug = bool(args.debug)
    try:
        # Read alone, before the command: an invalid SALES_ETL_DEBUG is refused by every
        # command, and an invalid other setting is still reported with its traceback.
        debug = DebugSettings().debug or debug
        return int(args.func(args))
    except KeyboardInterrupt:
        print(f"sales-etl {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        return _report_error(args.command, exc, debug=debug)


if __name__ == "__main__":
    sys.exit(main())
