"""Figures a person looks at: the index with regime shading, confidence, alert level."""

from __future__ import annotations

import numpy as np
import pandas as pd

LABEL_COLOURS = {"RISK_ON_LOW_VOL": "#d7ecd9", "RISK_ON_HIGH_VOL": "#fff2b3",
                 "TRANSITION": "#e6e6e6", "RISK_OFF_GRINDING": "#f9cf9f",
                 "RISK_OFF_PANIC": "#f08a84", "RECOVERY": "#b9d7f0"}
ALERT_COLOURS = {"GREEN": "#2e7d32", "YELLOW": "#f9a825", "ORANGE": "#ef6c00", "RED": "#c62828"}


def shade_labels(ax, dates: pd.DatetimeIndex, labels: list) -> None:
    """Background spans per run of equal labels."""
    if len(dates) == 0:
        return
    start = 0
    for i in range(1, len(dates) + 1):
        if i == len(dates) or labels[i] != labels[start]:
            end = dates[i] if i < len(dates) else dates[-1] + pd.Timedelta(days=1)
            ax.axvspan(dates[start], end, color=LABEL_COLOURS.get(str(labels[start]), "#ffffff"),
                       lw=0, alpha=0.9)
            start = i


def regime_figure(region: str, regimes: pd.DataFrame, index_returns: pd.Series,
                  truth: pd.Series | None = None):
    """Three panels over the rows of ``regimes``: the index (rebased to 100) on regime
    shading (with the true path as a strip when given), confidence, alert level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    reg = regimes.sort_values("as_of_date")
    dates = pd.DatetimeIndex(pd.to_datetime(reg["as_of_date"]))
    rets = index_returns.reindex(dates).fillna(0.0)
    level = 100 * np.exp(np.cumsum(np.log1p(rets.to_numpy())))
    fig, axes = plt.subplots(3, 1, figsize=(11, 7.5), sharex=True,
                             gridspec_kw={"height_ratios": [3, 1.2, 0.8]})
    ax = axes[0]
    shade_labels(ax, dates, list(reg["regime_label"]))
    ax.plot(dates, level, color="black", lw=1.1)
    if truth is not None and len(truth):
        t = truth.reindex(dates)
        lo, hi = ax.get_ylim()
        band = lo + (hi - lo) * 0.04
        for lab, colour in (("GRINDING", LABEL_COLOURS["RISK_OFF_GRINDING"]),
                            ("CRASH", LABEL_COLOURS["RISK_OFF_PANIC"])):
            mask = (t == lab).to_numpy()
            ax.fill_between(dates, lo, band, where=mask, color=colour, step="post",
                            edgecolor="black", lw=0.3)
        ax.set_ylim(lo, hi)
        ax.text(0.005, 0.06, "true risk-off (strip)", transform=ax.transAxes, fontsize=7)
    ax.set_title(f"{region}: index (rebased to 100) on regime shading")
    handles = [Patch(color=c, label=k) for k, c in LABEL_COLOURS.items()
               if k in set(reg["regime_label"])]
    ax.legend(handles=handles, loc="upper left", fontsize=7, ncol=3)
    axes[1].plot(dates, reg["confidence"], color="#1565c0", lw=1)
    axes[1].set_ylim(0, 1.02)
    axes[1].set_ylabel("confidence")
    colours = [ALERT_COLOURS.get(str(a), "#999999") for a in reg["alert_level"]]
    axes[2].bar(dates, reg["warning_count"].astype(float), color=colours, width=1.0)
    axes[2].set_ylabel("warnings")
    axes[2].set_title("early warnings (bar colour = alert level)", fontsize=9)
    fig.tight_layout()
    return fig
