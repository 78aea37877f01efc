"""HTML and PNG of a brief. The PNG holds the plots (index per market with regime shading when
regimes exist, regime confidence, the weakest profiles); the HTML embeds it and adds tables."""

from __future__ import annotations

import base64
import html
import io

import pandas as pd

from prometheus_dagster.engines.brief.collect import BriefData

_CSS = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 24px;
       color: #1d2330; max-width: 1200px; }
h1 { font-size: 22px; margin-bottom: 2px; } h2 { font-size: 17px; margin-top: 28px;
     border-bottom: 1px solid #d8dde6; padding-bottom: 4px; }
.sub { color: #5b6477; margin-top: 0; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 12px; }
th, td { border: 1px solid #d8dde6; padding: 3px 8px; text-align: right; }
th { background: #f1f4f9; } td:first-child, th:first-child { text-align: left; }
.bad { color: #b3261e; font-weight: 600; } .ok { color: #1e7b34; }
.note { color: #8a5a00; } img { max-width: 100%; border: 1px solid #d8dde6; }
"""


def render_figure(data: BriefData) -> bytes:
    """The brief's plots as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 1 + (data.regimes is not None) + (data.weakest is not None) \
        + (data.stability is not None)
    fig, axes = plt.subplots(panels, 1, figsize=(11, 3.4 * panels), squeeze=False)
    ax = axes[0][0]
    if len(data.index_history):
        for m, g in data.index_history.groupby("market_id"):
            ax.plot(pd.to_datetime(g["date"]), g["level"], label=m)
        _shade_regimes(ax, data)
        ax.legend(loc="upper left")
    else:
        ax.text(0.5, 0.5, "no market internals up to this date", ha="center",
                transform=ax.transAxes)
    ax.set_title(f"Market index (rebased to 100) up to {data.date.date()}")
    k = 1
    if data.regimes is not None:
        ax = axes[k][0]
        k += 1
        reg = data.regimes
        conf_col = "confidence" if "confidence" in reg.columns else None
        region_col = _region_col(reg)
        if conf_col and region_col:
            for region, g in reg.sort_values("as_of_date").groupby(region_col):
                ax.plot(pd.to_datetime(g["as_of_date"]), g[conf_col], label=str(region))
            ax.set_ylim(0, 1.02)
            ax.legend(loc="lower left", ncol=4)
        ax.set_title("Regime confidence per region")
    if data.stability is not None:
        ax = axes[k][0]
        k += 1
        st = data.stability.sort_values("as_of_date")
        for m, g in st.groupby("market_id"):
            ax.plot(pd.to_datetime(g["as_of_date"]), g["stability_score"], label=str(m))
        glob = global_stability(st)
        ax.plot(pd.to_datetime(glob.index), glob.to_numpy(), color="black", lw=2,
                label="global index")
        ax.set_ylim(0, 1.02)
        ax.legend(loc="lower left", ncol=4)
        ax.set_title("Market stability (1 = most stable) and the global stability index")
    if data.weakest is not None:
        ax = axes[k][0]
        w = data.weakest.iloc[::-1]
        ax.barh([f"{r.issuer_id} ({r.market_id})" for r in w.itertuples()],
                w["profile_weakness"], color="#b3261e")
        ax.set_xlim(0, 1)
        ax.set_title("Weakest issuer profiles (profile_weakness)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def global_stability(market_stability: pd.DataFrame) -> pd.Series:
    """The global stability index per date: the mean over markets of each market's latest
    stability score on or before the date (a market closed that day keeps its last value)."""
    wide = market_stability.pivot_table(index="as_of_date", columns="market_id",
                                        values="stability_score").sort_index().ffill()
    return wide.mean(axis=1)


def _region_col(frame: pd.DataFrame) -> str | None:
    return next((c for c in ("region", "market_id") if c in frame.columns), None)


def _label_col(frame: pd.DataFrame) -> str | None:
    return next((c for c in ("regime_label", "label") if c in frame.columns), None)


def _shade_regimes(ax, data: BriefData) -> None:
    reg = data.regimes
    if reg is None or _label_col(reg) is None or _region_col(reg) is None:
        return
    regions = reg[_region_col(reg)]
    region = "GLOBAL" if (regions == "GLOBAL").any() else regions.iloc[0]
    g = reg[regions == region].sort_values("as_of_date")
    colours = {"RISK_OFF_PANIC": "#f4b6b2", "RISK_OFF_GRINDING": "#f9d8b8",
               "TRANSITION": "#eeeeee", "RISK_ON_HIGH_VOL": "#fff2b3",
               "RECOVERY": "#cfe8d5", "RISK_ON_LOW_VOL": "#ffffff"}
    dates = pd.to_datetime(g["as_of_date"]).to_list()
    labels = g[_label_col(reg)].to_list()
    for i, (d, lab) in enumerate(zip(dates, labels, strict=True)):
        end = dates[i + 1] if i + 1 < len(dates) else d + pd.Timedelta(days=1)
        ax.axvspan(d, end, color=colours.get(str(lab), "#ffffff"), alpha=0.6, lw=0)


def _table(frame: pd.DataFrame | None, floats: str = "{:.3f}") -> str:
    if frame is None or frame.empty:
        return "<p class='sub'>none</p>"
    return frame.to_html(index=False, border=0, na_rep="",
                         float_format=lambda v: floats.format(v), escape=True)


def render_brief(data: BriefData, png: bytes | None = None) -> str:
    """The brief as one self-contained HTML page (the PNG embedded)."""
    png = png if png is not None else render_figure(data)
    img = base64.b64encode(png).decode()
    failed = data.pipeline[data.pipeline["ingestion"] == "FAILED"] if len(data.pipeline) else []
    status = (f"<span class='bad'>{len(failed)} failed ingestion unit(s)</span>" if len(failed)
              else "<span class='ok'>no failed ingestion units</span>")
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Prometheus daily brief {data.date.date()}</title><style>{_CSS}</style></head>",
        "<body>",
        f"<h1>Prometheus daily brief — {data.date.date()}</h1>",
        f"<p class='sub'>Markets: {html.escape(', '.join(data.markets))}. "
        "Only data dated on or before this date. Pipeline: " + status + "</p>",
        *(f"<p class='note'>{html.escape(n)}</p>" for n in data.notes),
        f"<img alt='brief plots' src='data:image/png;base64,{img}'>",
    ]
    if data.regimes is not None:
        reg = data.regimes
        latest = reg[reg["as_of_date"] == reg["as_of_date"].max()]
        cols = [c for c in (_region_col(reg), "as_of_date", _label_col(reg), "confidence",
                            "alert_level", "warning_count")
                if c and c in reg.columns]
        parts += ["<h2>Regime per region</h2>", _table(latest[cols])]
    if data.stability is not None:
        st = data.stability
        today = st.sort_values("as_of_date").groupby("market_id").tail(1)
        parts += [f"<h2>Stability (global index {global_stability(st).iloc[-1]:.3f})</h2>",
                  _table(today)]
    parts += ["<h2>Soft targets and watchlist</h2>", _table(data.soft_targets),
              "<h2>Highest SoftTargetScores (fragility alpha, longest horizon)</h2>",
              _table(data.fragility)]
    parts += ["<h2>Top and bottom assessment scores (longest horizon)</h2>",
              _table(data.scores, "{:.4f}"),
              "<h2>Universe changes since the previous session</h2>",
              _table(data.universe_changes),
              "<h2>Target portfolios: largest weights</h2>", _table(data.portfolios, "{:.4f}"),
              "<h2>Portfolio risk (annualised vol; 1-day 95% VaR; 95% scenario ES)</h2>",
              _table(data.portfolio_risk, "{:.4f}"),
              "<h2>Paper books (equity, return since the previous session, exposure, "
              "the session's fills)</h2>", _table(data.paper, "{:,.4f}")]
    parts += ["<h2>Market internals</h2>", _table(data.internals, "{:.4f}")]
    parts += ["<h2>Weakest issuer profiles</h2>",
              _table(data.weakest.round(3) if data.weakest is not None else None),
              "<h2>Issuers newly above the weakness threshold</h2>",
              _table(data.new_weak.round(3) if data.new_weak is not None else None)]
    parts += ["<h2>Models in use (trained strictly before this date)</h2>",
              _table(data.models)]
    if len(data.pipeline):
        wide = data.pipeline.pivot_table(index="table", columns="market_id", values="rows",
                                         aggfunc="sum", sort=False).reset_index()
        wide.columns.name = None
        parts += ["<h2>Pipeline status: rows written for this date</h2>", _table(wide, "{:,.0f}")]
        if len(failed):
            parts += ["<h3>Failed ingestion</h3>", _table(failed)]
    parts.append("</body></html>")
    return "\n".join(parts)
