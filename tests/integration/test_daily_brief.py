"""The daily brief renders HTML + PNG for a past date through Dagster, shows only what was known
on that date, and displays in a real browser (headless Chromium)."""

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetKey, materialize

from prometheus_dagster.assets.brief import daily_brief_asset
from prometheus_dagster.assets.ingestion import MARKET_TABLES
from prometheus_dagster.engines.brief import collect_brief, render_brief
from prometheus_dagster.engines.features import FEATURE_TABLES
from tests.integration.file_market import load_file_market, span

M = "US_EQ"
DAY = "2024-03-14"
BRIEF = AssetKey(["GLOBAL", "daily_brief"])


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    brief = daily_brief_asset([M], [AssetKey([M, "market_correlation_daily"])])
    return load_file_market(tmp_path_factory.mktemp("brief"), M, [brief], "2024-01-02", DAY)


def test_brief_renders_html_and_png_for_a_past_date(env):
    wh, resources, assets = env
    result = materialize(assets, resources=resources, selection=[BRIEF], partition_key=DAY)
    assert result.success
    row = wh.read("daily_briefs").iloc[0]
    html = Path(row["html_path"]).read_text()
    png = Path(row["png_path"]).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    for text in (f"Prometheus daily brief — {DAY}", "Market internals", "Pipeline status",
                 "prices_daily", M, "data:image/png;base64,"):
        assert text in html
    assert row["mlflow_run_id"]
    run = resources["mlflow"].client().get_run(row["mlflow_run_id"])
    assert run.data.metrics["brief_pipeline_rows"] > 0


def test_brief_shows_only_what_was_known_on_its_date(env):
    wh, resources, assets = env
    before = collect_brief(wh, pd.Timestamp(DAY), [M])
    html_before = render_brief(before, png=b"")
    assert pd.to_datetime(before.index_history["date"]).max() == pd.Timestamp(DAY)
    later = span("2024-03-15", "2024-03-28")
    assert materialize(assets, resources=resources,
                       selection=[AssetKey([M, t]) for t in MARKET_TABLES], tags=later).success
    assert materialize(assets, resources=resources,
                       selection=[AssetKey([M, t]) for t in FEATURE_TABLES], tags=later).success
    after = collect_brief(wh, pd.Timestamp(DAY), [M])
    assert render_brief(after, png=b"") == html_before


def test_brief_displays_in_a_browser(env, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("headless Chromium is needed: apt-get install chromium (.ci/run installs it)")
    wh, _, _ = env
    from prometheus_dagster.engines.brief import write_brief

    html_path, _, _ = write_brief(wh, DAY, [M], tmp_path)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", html_path.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert "Prometheus daily brief" in dom.stdout and "<img" in dom.stdout
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, *flags, "--window-size=1280,1600", f"--screenshot={shot}",
                    html_path.as_uri()], capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 20_000  # text, tables and the plot drawn


def test_cli_renders_a_past_brief_with_the_engine_tables(env, tmp_path):
    """The CLI runs outside Dagster: it still knows the feature tables, so the brief it renders
    shows the market internals."""
    import os
    import sys

    wh, _, _ = env
    out = subprocess.run(
        [sys.executable, "-m", "prometheus_dagster.cli", "brief", "--date", DAY, "--markets", M,
         "--out", str(tmp_path)],
        env={**os.environ, "PROMETHEUS_WAREHOUSE_URL": f"duckdb:///{wh.path}"},
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    html = (tmp_path / DAY / "brief.html").read_text()
    assert "no market internals" not in html
    assert "avg_pairwise_corr_63d" in html


def test_cli_declares_every_table_the_brief_reads():
    """A fresh process, as the CLI is: the investment chain's tables (scores, universes,
    portfolios, risk reports, the paper book) are declared too, so their sections show."""
    import sys

    code = ("from prometheus_dagster.cli import _declare_engine_tables as d; d(); "
            "from prometheus_dagster.core.schemas import TABLES; "
            "print(sorted(TABLES))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    for table in ("instrument_scores", "universes", "target_portfolios",
                  "portfolio_risk_reports", "positions_snapshots", "fills", "risk_specific",
                  "stability_vectors", "regimes"):
        assert f"'{table}'" in out.stdout, table
