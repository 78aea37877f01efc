"""Performance metrics of a backtest's daily equity.

The input is one row per session: ``date``, ``equity`` and, when the backtest records them,
``benchmark_equity``, ``gross_exposure``, ``net_exposure`` (fractions of equity), ``turnover``
(traded value / equity), ``costs`` (account currency), ``regime_label``, ``stability_bucket``.

Conventions: the first row is the starting point, so daily returns are ``equity_t /
equity_{t-1} - 1`` from the second row on, and a return belongs to the session it is realised
in (its row's regime label and stability bucket). Annualisation uses 252 sessions and a zero
risk-free rate. Drawdowns are ``equity / running peak - 1`` (<= 0). A statistic with no data,
or a ratio whose denominator is zero (constant series, no losing day), is NaN, never an error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from prometheus_dagster.core.errors import DataSchemaError

__all__ = ["SLICE_COLUMNS", "SLICE_METRIC_COLUMNS", "TRADING_DAYS", "backtest_metrics",
           "daily_returns", "drawdown", "drawdown_stats", "metrics_by_slice",
           "rolling_sharpe", "sliced_metrics", "with_returns_and_drawdown"]

TRADING_DAYS = 252
SLICE_COLUMNS = ("regime_label", "stability_bucket")
SLICE_METRIC_COLUMNS = ("days", "ann_return", "ann_vol", "sharpe", "hit_rate",
                        "compounded_return", "max_drawdown")
_TINY = 1e-12  # a standard deviation below this (relative to 1) is a constant series


def _sorted(frame: pd.DataFrame, need: tuple[str, ...] = ("date", "equity")) -> pd.DataFrame:
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise DataSchemaError(f"daily equity frame lacks column(s) {', '.join(missing)} "
                              f"(columns: {', '.join(map(str, frame.columns))})")
    out = frame.copy()
    out["date"] = pd.to_datetime(out["date"])
    return out.sort_values("date", kind="stable").reset_index(drop=True)


def daily_returns(equity: pd.Series) -> pd.Series:
    """``equity_t / equity_{t-1} - 1`` (NaN on the first row), in the order given."""
    eq = pd.to_numeric(equity, errors="coerce").astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return eq / eq.shift(1) - 1.0


def drawdown(equity: pd.Series) -> pd.Series:
    """``equity / running peak - 1`` (<= 0; NaN where equity is missing)."""
    eq = pd.to_numeric(equity, errors="coerce").astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return eq / eq.cummax() - 1.0


def drawdown_stats(equity: Any) -> tuple[float, int, bool]:
    """(max drawdown <= 0, its duration in sessions, whether it recovered) of an equity path.

    The duration runs from the peak before the deepest trough to the first session back at that
    peak, or to the last session when it never got back. No data: (NaN, 0, False); no drawdown:
    (0.0, 0, True)."""
    eq = np.asarray(equity, dtype=float)
    eq = eq[~np.isnan(eq)]
    if eq.size == 0:
        return float("nan"), 0, False
    peak = np.maximum.accumulate(eq)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, eq / peak - 1.0, np.nan)
    if np.all(np.isnan(dd)):
        return float("nan"), 0, False
    trough = int(np.nanargmin(dd))
    worst = float(dd[trough])
    if worst >= 0:
        return 0.0, 0, True
    top = peak[trough]
    start = int(np.flatnonzero(eq[: trough + 1] == top)[-1])
    back = np.flatnonzero(eq[trough + 1:] >= top)
    if back.size:
        return worst, int(trough + 1 + back[0] - start), True
    return worst, int(eq.size - 1 - start), False


def _std(r: np.ndarray) -> float:
    """Sample standard deviation (NaN below two values)."""
    return float(np.std(r, ddof=1)) if r.size >= 2 else float("nan")


def _ratio(mean: float, sd: float) -> float:
    """Annualised mean / sd; NaN when sd is missing or the series is constant."""
    if not sd == sd or sd <= _TINY * max(1.0, abs(mean)):
        return float("nan")
    return mean / sd * float(np.sqrt(TRADING_DAYS))


def _return_stats(r: np.ndarray) -> dict[str, float]:
    """Annualised mean, vol, Sharpe and Sortino, and the hit rate of daily returns."""
    r = r[~np.isnan(r)]
    if r.size == 0:
        nan = float("nan")
        return {"ann_return": nan, "ann_vol": nan, "sharpe": nan, "sortino": nan,
                "hit_rate": nan}
    mean = float(np.mean(r))
    sd = _std(r)
    downside = float(np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)))
    root = np.sqrt(TRADING_DAYS)
    return {
        "ann_return": mean * TRADING_DAYS,
        "ann_vol": sd * root,
        "sharpe": _ratio(mean, sd),
        "sortino": mean / downside * root if downside > _TINY else float("nan"),
        "hit_rate": float(np.mean(r > 0)),
    }


def _growth(equity: pd.Series) -> tuple[float, int]:
    """(last / first equity, number of return periods) of the non-missing values."""
    eq = pd.to_numeric(equity, errors="coerce").astype(float).dropna()
    if len(eq) < 2 or eq.iloc[0] <= 0:
        return float("nan"), max(len(eq) - 1, 0)
    return float(eq.iloc[-1] / eq.iloc[0]), len(eq) - 1


def _cagr(growth: float, periods: int) -> float:
    if periods <= 0 or growth != growth:
        return float("nan")
    if growth <= 0:
        return -1.0
    return float(growth ** (TRADING_DAYS / periods) - 1.0)


def _mean(frame: pd.DataFrame, column: str) -> float:
    if column not in frame.columns:
        return float("nan")
    s = pd.to_numeric(frame[column], errors="coerce").dropna()
    return float(s.mean()) if len(s) else float("nan")


def backtest_metrics(frame: pd.DataFrame) -> dict[str, Any]:
    """Whole-period metrics of a daily equity frame (see the module docstring).

    Keys: sessions, return_days, start_date, end_date, total_return, cagr, ann_vol, sharpe,
    sortino, max_drawdown, max_drawdown_duration (sessions), max_drawdown_recovered, calmar,
    avg_turnover, hit_rate, avg_gross_exposure, avg_net_exposure, total_costs, costs_bps (of
    average equity), and versus the benchmark (NaN without one): benchmark_total_return,
    benchmark_cagr, benchmark_sharpe, benchmark_max_drawdown, tracking_error,
    information_ratio."""
    df = _sorted(frame)
    eq = pd.to_numeric(df["equity"], errors="coerce").astype(float)
    r = daily_returns(eq).to_numpy()[1:]
    stats = _return_stats(r)
    growth, periods = _growth(eq)
    cagr = _cagr(growth, periods)
    mdd, duration, recovered = drawdown_stats(eq)
    costs = pd.to_numeric(df["costs"], errors="coerce") if "costs" in df.columns else None
    total_costs = float(costs.sum()) if costs is not None else float("nan")
    avg_equity = float(eq.mean()) if eq.notna().any() else float("nan")
    out: dict[str, Any] = {
        "sessions": len(df),
        "return_days": int(np.sum(~np.isnan(r))),
        "start_date": str(df["date"].iloc[0].date()) if len(df) else None,
        "end_date": str(df["date"].iloc[-1].date()) if len(df) else None,
        "total_return": growth - 1.0,
        "cagr": cagr,
        "ann_vol": stats["ann_vol"],
        "sharpe": stats["sharpe"],
        "sortino": stats["sortino"],
        "max_drawdown": mdd,
        "max_drawdown_duration": duration,
        "max_drawdown_recovered": recovered,
        "calmar": cagr / -mdd if mdd == mdd and mdd < 0 else float("nan"),
        "avg_turnover": _mean(df, "turnover"),
        "hit_rate": stats["hit_rate"],
        "avg_gross_exposure": _mean(df, "gross_exposure"),
        "avg_net_exposure": _mean(df, "net_exposure"),
        "total_costs": total_costs,
        "costs_bps": total_costs / avg_equity * 1e4 if avg_equity > 0 else float("nan"),
    }
    out.update(_benchmark(df, r))
    return {k: _plain(v) for k, v in out.items()}


def _plain(value: Any) -> Any:
    """numpy scalars as Python ones (JSON- and MLflow-friendly)."""
    return value.item() if isinstance(value, np.generic) else value


def _benchmark(df: pd.DataFrame, r: np.ndarray) -> dict[str, float]:
    nan = float("nan")
    keys = ("benchmark_total_return", "benchmark_cagr", "benchmark_sharpe",
            "benchmark_max_drawdown", "tracking_error", "information_ratio")
    if "benchmark_equity" not in df.columns or df["benchmark_equity"].notna().sum() < 2:
        return dict.fromkeys(keys, nan)
    bench = pd.to_numeric(df["benchmark_equity"], errors="coerce").astype(float)
    rb = daily_returns(bench).to_numpy()[1:]
    growth, periods = _growth(bench)
    active = r - rb
    active = active[~np.isnan(active)]
    sd = _std(active)
    root = np.sqrt(TRADING_DAYS)
    return {
        "benchmark_total_return": growth - 1.0,
        "benchmark_cagr": _cagr(growth, periods),
        "benchmark_sharpe": _return_stats(rb)["sharpe"],
        "benchmark_max_drawdown": drawdown_stats(bench)[0],
        "tracking_error": sd * root,
        "information_ratio": _ratio(float(np.mean(active)), sd) if active.size else nan,
    }


def metrics_by_slice(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Metrics per value of ``column`` (``regime_label``, ``stability_bucket``): each slice's
    return days, annualised mean daily return, vol, Sharpe, hit rate, the compounded return and
    the max drawdown of its days chained together in date order. Days whose label is missing,
    and the first row (no return), belong to no slice. One row per label, sorted by label."""
    out_cols = [column, *SLICE_METRIC_COLUMNS]
    if column not in frame.columns or frame.empty:
        return pd.DataFrame(columns=out_cols)
    df = _sorted(frame, ("date", "equity", column))
    df["_ret"] = daily_returns(df["equity"])
    df = df.iloc[1:]
    df = df[df[column].notna() & df["_ret"].notna()]
    rows = []
    for label, g in df.groupby(column, sort=True):
        r = g["_ret"].to_numpy(dtype=float)
        stats = _return_stats(r)
        path = np.concatenate([[1.0], np.cumprod(1.0 + r)])
        rows.append({column: label, "days": len(r), "ann_return": stats["ann_return"],
                     "ann_vol": stats["ann_vol"], "sharpe": stats["sharpe"],
                     "hit_rate": stats["hit_rate"], "compounded_return": float(path[-1] - 1.0),
                     "max_drawdown": drawdown_stats(path)[0]})
    return pd.DataFrame(rows, columns=out_cols)


def sliced_metrics(frame: pd.DataFrame,
                   columns: tuple[str, ...] = SLICE_COLUMNS) -> dict[str, pd.DataFrame]:
    """:func:`metrics_by_slice` for each of ``columns`` present in ``frame``."""
    return {c: metrics_by_slice(frame, c) for c in columns if c in frame.columns}


def rolling_sharpe(frame: pd.DataFrame, window: int = 63) -> pd.Series:
    """Annualised Sharpe of the trailing ``window`` daily returns, indexed by date (NaN until a
    full window, and where the window's returns are constant)."""
    df = _sorted(frame)
    r = daily_returns(df["equity"])
    mean = r.rolling(window, min_periods=window).mean()
    sd = r.rolling(window, min_periods=window).std(ddof=1)
    sd = sd.where(sd > _TINY * np.maximum(1.0, mean.abs()))
    return pd.Series((mean / sd * np.sqrt(TRADING_DAYS)).to_numpy(),
                     index=pd.DatetimeIndex(df["date"]), name="rolling_sharpe")


def with_returns_and_drawdown(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` sorted by date with ``daily_return`` and ``drawdown`` (re)computed from
    ``equity``, as ``backtest_daily_equity`` stores them."""
    df = _sorted(frame)
    df["daily_return"] = daily_returns(df["equity"])
    df["drawdown"] = drawdown(df["equity"])
    return df
