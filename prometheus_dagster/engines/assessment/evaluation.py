"""Walk-forward out-of-sample predictions and their validation metrics
(``docs/engines/assessment.md``: score deciles monotone in forward returns, rank IC, IC by
regime)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from prometheus_dagster.engines.assessment.config import AssessmentConfig
from prometheus_dagster.engines.assessment.labels import return_scale
from prometheus_dagster.engines.assessment.training import (
    AssessmentTrainingError,
    check_size,
    labelled_rows,
    load_booster,
    matrix,
    session_grid,
    train_booster,
    training_cut,
)

PREDICTION_COLUMNS = ["instrument_id", "as_of_date", "horizon_days", "fold", "train_cut",
                      "prediction", "excess_return", "forward_return", "label_end_date",
                      "regime_label"]
MIN_NAMES_PER_DATE = 5  # the default of walk_forward.min_names_per_date


def walk_forward_predictions(features: pd.DataFrame, labels: pd.DataFrame,
                             cfg: AssessmentConfig, horizon: int, *,
                             sessions: Sequence[object] | None = None) -> pd.DataFrame:
    """Out-of-sample predictions over expanding windows. The labelled dates are cut into
    ``n_folds + 1`` contiguous blocks; block k (k >= 1) is predicted by a model trained on the
    rows whose label ended before the session ``embargo_sessions`` before the block's first
    date (so no training label overlaps the test period). Folds whose training rows fall short
    of ``refit.min_training_*`` are skipped. Columns: ``PREDICTION_COLUMNS`` (``train_cut``:
    training labels ended strictly before it)."""
    names = list(cfg.feature_names)
    rows = labelled_rows(features, labels, horizon, names)
    if rows.empty:
        return pd.DataFrame(columns=PREDICTION_COLUMNS)
    grid = session_grid(features, labels, sessions)
    dates = np.sort(rows["as_of_date"].unique())
    blocks = np.array_split(dates, cfg.walk_forward.n_folds + 1)
    out = []
    for fold, block in enumerate(blocks[1:], start=1):
        if not len(block):
            continue
        cut = training_cut(grid, block[0], cfg.walk_forward.embargo_sessions)
        train = rows[rows["label_end_date"] < cut]
        try:
            check_size(train, cfg, f"walk-forward fold {fold}")
        except AssessmentTrainingError:
            continue
        booster = load_booster(train_booster(train, names, cfg))
        test = rows[rows["as_of_date"].isin(block)]
        pred = return_scale(train, cfg.labels) * booster.predict(matrix(test, names),
                                                                 num_threads=1)
        out.append(test.assign(horizon_days=horizon, fold=fold, train_cut=cut,
                               prediction=np.asarray(pred, dtype=float)))
    if not out:
        return pd.DataFrame(columns=PREDICTION_COLUMNS)
    res = pd.concat(out, ignore_index=True)
    if "regime_label" not in res.columns:
        res["regime_label"] = None
    return res[PREDICTION_COLUMNS]


def _rank_ic(frame: pd.DataFrame, column: str,
             min_names: int = MIN_NAMES_PER_DATE) -> pd.Series:
    """Spearman correlation of ``column`` with the excess return, per date (dates with at
    least ``min_names`` names)."""
    g = frame.groupby("as_of_date")
    size = g["excess_return"].transform("size")
    f = frame[size >= min_names]
    if f.empty:
        return pd.Series(dtype=float)
    ranks = pd.DataFrame({"p": f.groupby("as_of_date")[column].rank(),
                          "y": f.groupby("as_of_date")["excess_return"].rank(),
                          "d": f["as_of_date"]})
    ranks["p"] -= ranks.groupby("d")["p"].transform("mean")
    ranks["y"] -= ranks.groupby("d")["y"].transform("mean")
    gg = ranks.assign(py=ranks["p"] * ranks["y"], pp=ranks["p"] ** 2, yy=ranks["y"] ** 2) \
        .groupby("d")[["py", "pp", "yy"]].sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        ic = gg["py"] / np.sqrt(gg["pp"] * gg["yy"])
    return ic.dropna()


def decile_means(frame: pd.DataFrame, column: str = "prediction") -> np.ndarray:
    """Mean excess return per decile of ``column`` (decile 1 = lowest), averaged over dates
    (each date's names split into ten groups by rank)."""
    f = frame.dropna(subset=[column, "excess_return"])
    if f.empty:
        return np.full(10, np.nan)
    g = f.groupby("as_of_date")[column]
    r = g.rank(method="first").to_numpy()
    n = g.transform("size").to_numpy()
    dec = np.minimum((10 * (r - 1) / n).astype(int), 9)
    per_date = pd.DataFrame({"d": f["as_of_date"].to_numpy(), "dec": dec,
                             "y": f["excess_return"].to_numpy(dtype=float)}) \
        .groupby(["d", "dec"])["y"].mean()
    return per_date.groupby(level="dec").mean().reindex(range(10)).to_numpy(dtype=float)


def evaluate_predictions(preds: pd.DataFrame, regimes: pd.DataFrame | pd.Series | None = None,
                         column: str = "prediction",
                         min_names: int = MIN_NAMES_PER_DATE) -> dict[str, Any]:
    """Validation metrics of out-of-sample predictions (``walk_forward_predictions`` rows):

    * ``mean_rank_ic``, ``ic_std``, ``ic_t_stat`` (mean / sd x sqrt(dates); overlapping horizons
      make it optimistic), ``ic_positive_share``: daily Spearman rank IC of the prediction
      with the realised excess return;
    * ``hit_rate``: share of rows whose prediction, relative to its date's mean, has the sign
      of the excess return;
    * ``decile_means`` (10 values, lowest decile first) and ``decile_spearman`` (Spearman of
      decile number vs its mean excess return: 1 = monotone);
    * ``ic_by_regime``: label -> {mean_rank_ic, dates}, from ``regimes`` (as_of_date, regime_label
      rows or a date-indexed Series) or the predictions' own regime_label.

    Rank ICs count the dates with at least ``min_names`` names."""
    ic = _rank_ic(preds, column, min_names) if len(preds) else pd.Series(dtype=float)
    n = len(ic)
    out: dict[str, Any] = {"n_dates": int(n), "n_rows": int(len(preds))}
    out["mean_rank_ic"] = float(ic.mean()) if n else float("nan")
    out["ic_std"] = float(ic.std(ddof=1)) if n > 1 else float("nan")
    out["ic_t_stat"] = (float(out["mean_rank_ic"] / out["ic_std"] * np.sqrt(n))
                       if n > 1 and out["ic_std"] > 0 else float("nan"))
    out["ic_positive_share"] = float((ic > 0).mean()) if n else float("nan")
    if len(preds):
        rel = preds[column] - preds.groupby("as_of_date")[column].transform("mean")
        ok = rel.notna() & preds["excess_return"].notna() & (rel != 0) \
            & (preds["excess_return"] != 0)
        out["hit_rate"] = float((np.sign(rel[ok]) == np.sign(preds["excess_return"][ok]))
                                .mean()) if ok.any() else float("nan")
    else:
        out["hit_rate"] = float("nan")
    dm = decile_means(preds, column) if len(preds) else np.full(10, np.nan)
    out["decile_means"] = [float(v) for v in dm]
    ok = ~np.isnan(dm)
    out["decile_spearman"] = (float(pd.Series(np.arange(10)[ok]).corr(pd.Series(dm[ok]),
                                                                      method="spearman"))
                              if ok.sum() >= 3 else float("nan"))
    out["ic_by_regime"] = _ic_by_regime(ic, preds, regimes)
    return out


def _ic_by_regime(ic: pd.Series, preds: pd.DataFrame,
                  regimes: pd.DataFrame | pd.Series | None) -> dict[str, dict[str, float]]:
    if regimes is None:
        if "regime_label" not in preds.columns:
            return {}
        labels = preds.dropna(subset=["regime_label"]).groupby("as_of_date")["regime_label"] \
            .first()
    elif isinstance(regimes, pd.Series):
        labels = regimes
    else:
        labels = regimes.set_index("as_of_date")["regime_label"]
    if labels.empty or ic.empty:
        return {}
    labels.index = pd.to_datetime(labels.index)
    lab = pd.Series(pd.to_datetime(ic.index), index=ic.index).map(labels)
    out = {}
    for label, g in ic.groupby(lab.to_numpy()):
        out[str(label)] = {"mean_rank_ic": float(g.mean()), "dates": int(len(g))}
    return out
