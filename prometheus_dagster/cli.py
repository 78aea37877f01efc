"""Command line: ``python -m prometheus_dagster.cli {setup-home,demo,research,brief,ui,sql,failed,
stop,check-data}``.

``setup-home`` prepares $PROMETHEUS_HOME and $DAGSTER_HOME (writes the instance's dagster.yaml:
the research instance on PostgreSQL, or SQLite with ``PROMETHEUS_INSTANCE=sqlite``); ``demo``
runs the main job on the embedded market and prints where to look; ``research`` runs (or with
``--plan`` prints) the whole plan over any range and investment markets; ``ui`` starts the
Dagster and MLflow web UIs on the loopback interface; ``sql`` queries the warehouse (read-only,
on a short-lived connection that takes turns with the pipeline); ``failed`` lists the asset
partitions whose latest run failed; ``stop`` stops the project home's embedded PostgreSQL server;
``check-data DIR`` checks a folder of files (layout, quality rules, history start) and prints
every problem and the coverage per table, writing nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from prometheus_dagster.core.paths import REPO_ROOT, prometheus_home


def dagster_home() -> Path:
    home = Path(os.environ.get("DAGSTER_HOME", prometheus_home() / "dagster_home")).resolve()
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def setup_home() -> tuple[Path, Path]:
    """Create the data directories and install the instance config for
    ``$PROMETHEUS_INSTANCE`` (``core.instance``; a dagster.yaml edited by hand is kept)."""
    from prometheus_dagster.core.instance import install_instance_config

    home = prometheus_home()
    dhome = dagster_home()
    dhome.mkdir(parents=True, exist_ok=True)
    install_instance_config(dhome)
    os.environ.setdefault("MPLCONFIGDIR", str(home / "matplotlib"))
    return home, dhome


def _cmd_setup_home(_: argparse.Namespace) -> int:
    from prometheus_dagster.core.instance import install_instance_config

    home, dhome = setup_home()
    print(f"PROMETHEUS_HOME={home}\nDAGSTER_HOME={dhome}\n"
          f"instance={install_instance_config(dhome)}")
    return 0


def stop_home_services() -> bool:
    """Stop the project home's embedded PostgreSQL server if it runs (processes still using
    it lose their connection); True if it was running."""
    from prometheus_dagster.core.instance import stop_embedded_postgres

    return stop_embedded_postgres()


def _cmd_stop(_: argparse.Namespace) -> int:
    print("embedded PostgreSQL stopped" if stop_home_services() else "nothing was running")
    return 0


def _cmd_failed(args: argparse.Namespace) -> int:
    """Print the partitions whose latest run failed, as ranges per asset and run."""
    from dagster import DagsterInstance

    from prometheus_dagster.sensors.failed_ranges import failed_ranges, format_failed_ranges

    setup_home()
    with DagsterInstance.get() as instance:
        ranges = failed_ranges(instance, prefix=args.prefix or None)
    print(format_failed_ranges(ranges))
    return 1 if ranges else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    setup_home()
    from prometheus_dagster.demo import run_demo

    return run_demo(quick=args.quick)


def _cmd_research(args: argparse.Namespace) -> int:
    import pandas as pd

    from prometheus_dagster.research import ResearchRequest, run_research

    def dates(*values: str) -> list[pd.Timestamp]:
        out = []
        for flag, value in zip(("--start", "--end"), values, strict=True):
            try:
                out.append(pd.Timestamp(value).normalize())
            except ValueError:
                raise ValueError(f"{flag} {value!r} is not a date (use YYYY-MM-DD)") from None
        return out

    def names(value: str) -> tuple[str, ...] | None:
        return tuple(v.strip() for v in value.split(",") if v.strip()) or None

    if not args.plan:
        setup_home()
    try:
        start, end = dates(args.start, args.end)
        request = ResearchRequest(start=start, end=end, markets=names(args.markets),
                                  strategies=names(args.strategies), source=args.source,
                                  files_root=args.files_root, tier=args.tier,
                                  data_only=args.data_only)
        return run_research(request, plan_only=args.plan)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _declare_engine_tables() -> None:
    """Import every engine, so the schemas of the tables the brief reads are declared (the
    Dagster code location does this when it loads its assets)."""
    import importlib
    import pkgutil

    import prometheus_dagster.engines as engines

    for module in pkgutil.iter_modules(engines.__path__):
        if module.ispkg:
            importlib.import_module(f"{engines.__name__}.{module.name}")


def _cmd_brief(args: argparse.Namespace) -> int:
    """Render the daily brief for a past date straight from the warehouse (no Dagster run)."""
    import pandas as pd

    from prometheus_dagster.assets.brief import brief_directory
    from prometheus_dagster.core.errors import PrometheusError
    from prometheus_dagster.core.ingestion_config import ingestion_config
    from prometheus_dagster.engines.brief import write_brief
    from prometheus_dagster.resources.warehouse import Warehouse

    _declare_engine_tables()
    try:
        date = pd.Timestamp(args.date)
    except ValueError:
        print(f"error: --date {args.date!r} is not a date (use YYYY-MM-DD)", file=sys.stderr)
        return 2
    markets = args.markets.split(",") if args.markets else list(ingestion_config().markets)
    try:
        html_path, png_path, _ = write_brief(Warehouse.default(), date, markets,
                                             Path(args.out) if args.out else brief_directory())
    except PrometheusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"brief {date.date()}: {html_path}\nplots: {png_path}")
    return 0


def _cmd_ui(args: argparse.Namespace) -> int:
    """Start the Dagster and MLflow UIs; SIGINT (Ctrl-C), SIGTERM or SIGHUP stops both and every
    process they started."""
    home, dhome = setup_home()
    from prometheus_dagster.core.paths import mlflow_artifact_root, mlflow_tracking_uri
    from prometheus_dagster.resources.mlflow_store import prepare_store
    from prometheus_dagster.services import ServiceGroup, StopRequested, stop_signals_raise

    # the MLflow server would otherwise create a new home's store unguarded, racing a first run
    prepare_store(mlflow_tracking_uri())
    bin_dir = Path(sys.executable).parent
    services = ServiceGroup()
    reason = ""
    with stop_signals_raise():
        try:
            services.start(
                [str(bin_dir / "dagster"), "dev", "-w", str(REPO_ROOT / "workspace.yaml"),
                 "-h", "127.0.0.1", "-p", str(args.dagster_port)],
                cwd=REPO_ROOT,
            )
            services.start(
                [str(bin_dir / "mlflow"), "server", "--backend-store-uri", mlflow_tracking_uri(),
                 "--artifacts-destination", str(mlflow_artifact_root()), "--host", "127.0.0.1",
                 "--port", str(args.mlflow_port), "--workers", "1"],
                cwd=home,
            )
            print(f"Dagster UI: http://127.0.0.1:{args.dagster_port}")
            print(f"MLflow UI:  http://127.0.0.1:{args.mlflow_port}")
            print("Ctrl-C (or SIGTERM) stops both.", flush=True)
            reason = services.wait()
        except StopRequested as stop:
            reason = f"received {stop}"
        finally:
            print(f"stopping the UIs ({reason or 'launcher error'})...", flush=True)
            started = time.monotonic()
            killed = services.stop()
            note = f"; {len(killed)} process(es) needed SIGKILL" if killed else ""
            print(f"UIs stopped in {time.monotonic() - started:.1f}s{note}.", flush=True)
    return 0


def _cmd_sql(args: argparse.Namespace) -> int:
    """Run read-only SQL on the warehouse and print the result; safe while the pipeline runs."""
    import pandas as pd

    from prometheus_dagster.core.errors import PrometheusError
    from prometheus_dagster.resources.warehouse import sql

    query = sys.stdin.read() if args.query == "-" else args.query
    if not query.strip():
        print("error: no SQL given", file=sys.stderr)
        return 2
    try:
        result = sql(query)
    except PrometheusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.csv:
        result.to_csv(sys.stdout, index=False)
        return 0
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(result.head(args.max_rows).to_string(index=False))
    if len(result) > args.max_rows:
        print(f"({len(result)} rows; --max-rows or --csv shows more)")
    return 0


def _cmd_check_data(args: argparse.Namespace) -> int:
    """Check a folder of files against the file-source layout and the quality rules; exit 1 on
    problems (warnings alone pass). Writes nothing: no warehouse, no Dagster run."""
    from prometheus_dagster.core import disk_cache
    from prometheus_dagster.core.errors import PrometheusError
    from prometheus_dagster.engines.ingestion.check_data import check_folder

    disk_cache.disable_writes()
    try:
        check = check_folder(args.folder, market=args.market or None)
    except PrometheusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(check.report())
    return 1 if check.errors else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="prometheus")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("setup-home", help="create PROMETHEUS_HOME and DAGSTER_HOME").set_defaults(
        func=_cmd_setup_home
    )
    demo = sub.add_parser("demo", help="run the main job on the embedded market")
    demo.add_argument("--quick", action="store_true", help="a short window (smoke test)")
    demo.set_defaults(func=_cmd_demo)
    research = sub.add_parser(
        "research", help="backfill the whole chain over a range (--plan: print the plan only)")
    research.add_argument("--markets", default="",
                          help="investment markets, comma-separated (default: all)")
    research.add_argument("--start", required=True, help="first date, YYYY-MM-DD")
    research.add_argument("--end", required=True, help="last date, YYYY-MM-DD")
    research.add_argument("--source", choices=("embedded", "files"), default=None,
                          help="ingestion source (default: configs/engines/ingestion.yaml)")
    research.add_argument("--files-root", default=None, help="the folder of --source files")
    research.add_argument("--strategies", default="",
                          help="strategies to backtest, comma-separated (default: all)")
    research.add_argument("--plan", action="store_true",
                          help="print stages, runs, partitions and estimated times; run nothing")
    research.add_argument("--data-only", action="store_true",
                          help="reference data, ingestion and features only (no engines)")
    research.add_argument("--tier", default="3", help="priority tier of the runs (default 3)")
    research.set_defaults(func=_cmd_research)
    brief = sub.add_parser("brief", help="render the daily brief (HTML + PNG) for a date")
    brief.add_argument("--date", required=True, help="YYYY-MM-DD; any past date")
    brief.add_argument("--markets", default="", help="comma-separated (default: data markets)")
    brief.add_argument("--out", default="", help="folder (default: $PROMETHEUS_HOME/briefs)")
    brief.set_defaults(func=_cmd_brief)
    ui = sub.add_parser("ui", help="start the Dagster and MLflow UIs")
    ui.add_argument("--dagster-port", type=int, default=3000)
    ui.add_argument("--mlflow-port", type=int, default=5000)
    ui.set_defaults(func=_cmd_ui)
    query = sub.add_parser(
        "sql", help="run read-only SQL on the warehouse (safe while the pipeline runs)")
    query.add_argument("query", help='SQL such as "select * from prices_daily limit 5" '
                                     '(- reads it from stdin)')
    query.add_argument("--csv", action="store_true", help="print every row as CSV")
    query.add_argument("--max-rows", type=int, default=40, help="rows shown in the table (40)")
    query.set_defaults(func=_cmd_sql)
    failed = sub.add_parser("failed", help="asset partitions whose latest run failed")
    failed.add_argument("--prefix", default="", help="asset key prefix, e.g. US_EQ")
    failed.set_defaults(func=_cmd_failed)
    sub.add_parser("stop", help="stop the project home's embedded PostgreSQL").set_defaults(
        func=_cmd_stop)
    check = sub.add_parser("check-data", help="check a folder of files before ingesting it "
                                              "(writes nothing)")
    check.add_argument("folder", help="the folder, in the layout of docs/bring_your_own_data.md")
    check.add_argument("--market", default="", help="check only this market (and GLOBAL)")
    check.set_defaults(func=_cmd_check_data)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
