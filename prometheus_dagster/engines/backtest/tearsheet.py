"""The tear sheet of a backtest: one figure (equity vs benchmark on regime shading, drawdown,
rolling Sharpe, exposures) and a self-contained HTML page (the figure inlined, metric tables).

Figures are drawn on the Agg canvas directly (no pyplot, no global backend state), so this runs
headless and in parallel steps.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from prometheus_dagster.engines.backtest.metrics import drawdown, rolling_sharpe
from prometheus_dagster.engines.regime.plots import LABEL_COLOURS

__all__ = ["ROLLING_WINDOW", "tear_sheet_figure", "tear_sheet_html", "tear_sheet_png"]

ROLLING_WINDOW = 63
_EXTRA_COLOURS = ("#e3d7f0", "#d0ece7", "#f5e0c8", "#dfe7c4", "#f2d0dc", "#d9dde6")
_PERCENT = {"total_return", "cagr", "ann_vol", "max_drawdown", "hit_rate", "avg_turnover",
            "avg_gross_exposure", "avg_net_exposure", "benchmark_total_return",
            "benchmark_cagr", "benchmark_max_drawdown", "tracking_error", "ann_return",
            "compounded_return"}

_CSS = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 24px;
       color: #1d2330; max-width: 1200px; }
h1 { font-size: 22px; margin-bottom: 2px; } h2 { font-size: 17px; margin-top: 28px;
     border-bottom: 1px solid #d8dde6; padding-bottom: 4px; }
.sub { color: #5b6477; margin-top: 0; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 12px; }
th, td { border: 1px solid #d8dde6; padding: 3px 8px; text-align: right; }
th { background: #f1f4f9; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #d8dde6; }
"""


def _label_colours(labels: list[str]) -> dict[str, str]:
    colours: dict[str, str] = {}
    extra = iter(_EXTRA_COLOURS * (1 + len(labels) // len(_EXTRA_COLOURS)))
    for lab in labels:
        if lab not in colours:
            colours[lab] = LABEL_COLOURS.get(lab) or next(extra)
    return colours


def _shade(ax: Any, dates: pd.DatetimeIndex, labels: pd.Series) -> None:
    """Background spans per run of equal regime labels, with a legend of the labels seen."""
    present = labels.notna().to_numpy()
    if not present.any():
        return
    names = [str(v) for v in labels[present]]
    colours = _label_colours(names)
    values = [str(v) if ok else None for v, ok in zip(labels, present, strict=True)]
    start = 0
    for i in range(1, len(dates) + 1):
        if i == len(dates) or values[i] != values[start]:
            label = values[start]
            if label is not None:
                end = dates[i] if i < len(dates) else dates[-1] + pd.Timedelta(days=1)
                ax.axvspan(dates[start], end, color=colours[label], lw=0, alpha=0.7, zorder=0)
            start = i
    handles = [Patch(color=c, label=k) for k, c in colours.items()]
    legend = ax.legend(handles=handles, loc="lower left", fontsize=7, ncol=3, title="regime",
                       title_fontsize=7)
    ax.add_artist(legend)


def tear_sheet_figure(daily_equity: pd.DataFrame, title: str, *,
                      log_scale: bool = False) -> Figure:
    """Four panels over the sessions of ``daily_equity``: equity vs benchmark (rebased to the
    starting equity; log scale when asked and possible) on regime shading, drawdown, 63-session
    rolling Sharpe, gross and net exposure."""
    fig = Figure(figsize=(11, 9.5))
    FigureCanvasAgg(fig)
    axes = fig.subplots(4, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.2, 1.2, 1.2]})
    fig.suptitle(title)
    if daily_equity.empty:
        axes[0].text(0.5, 0.5, "no sessions", ha="center", transform=axes[0].transAxes)
        return fig
    df = daily_equity.assign(date=pd.to_datetime(daily_equity["date"])) \
        .sort_values("date", kind="stable").reset_index(drop=True)
    dates = pd.DatetimeIndex(df["date"])
    eq = pd.to_numeric(df["equity"], errors="coerce").astype(float)
    ax = axes[0]
    if "regime_label" in df.columns:
        _shade(ax, dates, df["regime_label"])
    ax.plot(dates, eq, color="black", lw=1.2, label="strategy")
    if "benchmark_equity" in df.columns and df["benchmark_equity"].notna().any():
        bench = pd.to_numeric(df["benchmark_equity"], errors="coerce").astype(float)
        first = bench.dropna().iloc[0]
        base = eq.dropna().iloc[0] if eq.notna().any() else first
        if first > 0:
            ax.plot(dates, bench * base / first, color="#1565c0", lw=1.0, label="benchmark")
    if log_scale and (eq.dropna() > 0).all():
        ax.set_yscale("log")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_ylabel("equity")
    ax.set_title("Equity vs benchmark (benchmark rebased to the starting equity)", fontsize=10)
    dd = drawdown(eq)
    axes[1].fill_between(dates, dd.to_numpy() * 100, 0, color="#c62828", alpha=0.5, lw=0)
    axes[1].set_ylabel("drawdown %")
    rs = rolling_sharpe(df, ROLLING_WINDOW)
    axes[2].plot(dates, rs.to_numpy(), color="#6a1b9a", lw=1)
    axes[2].axhline(0, color="#777777", lw=0.6)
    axes[2].set_ylabel(f"Sharpe ({ROLLING_WINDOW}d)")
    for col, colour in (("gross_exposure", "#ef6c00"), ("net_exposure", "#2e7d32")):
        if col in df.columns:
            axes[3].plot(dates, pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float),
                         color=colour, lw=1, label=col.replace("_", " "))
    axes[3].axhline(0, color="#777777", lw=0.6)
    axes[3].set_ylabel("exposure")
    if axes[3].get_legend_handles_labels()[0]:
        axes[3].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def tear_sheet_png(fig: Figure, dpi: int = 90) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return "n/a"
        return f"{value * 100:.2f}%" if key in _PERCENT else f"{value:,.3f}"
    return html.escape(str(value))


def _metrics_table(metrics: Mapping[str, Any]) -> str:
    rows = "".join(f"<tr><td>{html.escape(k.replace('_', ' '))}</td><td>{_fmt(k, v)}</td></tr>"
                   for k, v in metrics.items())
    return f"<table><tr><th>metric</th><th>value</th></tr>{rows}</table>"


def _frame_table(frame: pd.DataFrame) -> str:
    if frame is None or frame.empty:
        return "<p class='sub'>none</p>"
    head = "".join(f"<th>{html.escape(str(c).replace('_', ' '))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(str(c), v)}</td>" for c, v in row.items()) + "</tr>"
        for _, row in frame.iterrows()
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _yearly(daily_equity: pd.DataFrame) -> pd.DataFrame:
    """Calendar-year returns of the strategy (and benchmark), each year from the previous
    year's last equity (the first year from the first row)."""
    df = daily_equity.assign(date=pd.to_datetime(daily_equity["date"])).sort_values("date")
    cols = ["equity"] + (["benchmark_equity"] if "benchmark_equity" in df.columns else [])
    levels = df.set_index("date")[cols].apply(pd.to_numeric, errors="coerce")
    ends = levels.groupby(levels.index.year).last()
    starts = ends.shift(1)
    starts.iloc[0] = levels.iloc[0]
    out = (ends / starts - 1.0).rename(columns={"equity": "return",
                                                "benchmark_equity": "benchmark_return"})
    out.index.name = "year"
    out = out.reset_index()
    out["year"] = out["year"].astype(str)
    return out


def tear_sheet_html(daily_equity: pd.DataFrame, metrics: Mapping[str, Any],
                    sliced: Mapping[str, pd.DataFrame], png_bytes: bytes, title: str) -> str:
    """One self-contained HTML page: the tear-sheet PNG inlined as base64, the whole-period
    metrics, calendar-year returns and the metrics per slice (``sliced``: column -> frame of
    :func:`~prometheus_dagster.engines.backtest.metrics.metrics_by_slice`)."""
    img = base64.b64encode(png_bytes).decode("ascii")
    period = ""
    if not daily_equity.empty:
        d = pd.to_datetime(daily_equity["date"])
        period = f"{d.min().date()} to {d.max().date()}, {len(daily_equity)} sessions"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='sub'>{html.escape(period)}</p>",
        f"<img alt='tear sheet' src='data:image/png;base64,{img}'>",
        "<h2>Metrics</h2>", _metrics_table(metrics),
    ]
    if not daily_equity.empty:
        parts += ["<h2>Calendar-year returns</h2>", _frame_table(_yearly(daily_equity))]
    for column, frame in sliced.items():
        parts += [f"<h2>By {html.escape(column.replace('_', ' '))}</h2>", _frame_table(frame)]
    parts.append("</body></html>")
    return "\n".join(parts)
