"""Scoring a label path against a known regime path (the embedded market's truth)."""

from __future__ import annotations

import pandas as pd

from prometheus_dagster.engines.regime.config import RISK_OFF_LABELS

TRUTH_RISK_OFF = ("GRINDING", "CRASH")
TRUTH_CALM = ("CALM",)


def risk_off_balanced_accuracy(predicted: pd.Series, truth: pd.Series) -> dict[str, float]:
    """On sessions whose true regime is calm or risk-off (GRINDING, CRASH): risk-off recall
    (predicted RISK_OFF_GRINDING or RISK_OFF_PANIC), calm recall two ways, and the balanced
    accuracies. ``balanced_accuracy`` counts a calm session right when it is not called
    risk-off; ``strict_balanced_accuracy`` only when it is called RISK_ON_LOW_VOL."""
    both = pd.concat({"pred": predicted, "truth": truth}, axis=1, join="inner").dropna()
    off = both["truth"].isin(TRUTH_RISK_OFF)
    calm = both["truth"].isin(TRUTH_CALM)
    if not off.any() or not calm.any():
        raise ValueError("the truth path needs both calm and risk-off sessions to score")
    called_off = both["pred"].isin(RISK_OFF_LABELS)
    recall_off = float(called_off[off].mean())
    calm_not_off = float((~called_off[calm]).mean())
    calm_low_vol = float((both["pred"][calm] == "RISK_ON_LOW_VOL").mean())
    return {"balanced_accuracy": (recall_off + calm_not_off) / 2,
            "strict_balanced_accuracy": (recall_off + calm_low_vol) / 2,
            "risk_off_recall": recall_off, "calm_not_risk_off": calm_not_off,
            "calm_low_vol": calm_low_vol, "risk_off_sessions": float(off.sum()),
            "calm_sessions": float(calm.sum())}


def label_agreement(a: pd.Series, b: pd.Series) -> float:
    """Share of common sessions on which two label paths agree."""
    both = pd.concat({"a": a, "b": b}, axis=1, join="inner").dropna()
    return float((both["a"] == both["b"]).mean()) if len(both) else float("nan")
