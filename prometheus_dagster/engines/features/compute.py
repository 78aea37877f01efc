"""The feature tables: pure functions of a history panel, vectorised across instruments and
dates.

Every ``compute_*`` function takes the whole history up to the last requested date (a
:class:`FeatureInputs`) and the list of ``output_dates``, and returns rows for those dates
only. History before the first output date is warm-up (see ``config.warmup_sessions`` for how
much each table needs). A row dated D depends only on data dated <= D, so computing with the
inputs truncated at D (``FeatureInputs.truncated(D)``) gives the same rows for D, and, once the
warm-up is covered, so does computing with a longer history.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from prometheus_dagster.core.config import make_config_id
from prometheus_dagster.engines.features.config import FeaturesConfig
from prometheus_dagster.engines.features.panel import (
    DateLike,
    FeatureInputs,
    MarketPanel,
    build_panels,
    padded_window_source,
    rolling_drawdowns,
    rolling_mean,
    row_sum,
    window_slices,
)
from prometheus_dagster.engines.features.schemas import (
    CORRELATION_WINDOW,
    DRAWDOWN_WINDOW,
    FEATURE_TABLES,
    LIQUIDITY_WINDOW,
    VOL_WINDOWS,
)

_CHUNK_ELEMENTS = 1 << 22


def _resolve(config: FeaturesConfig | None, config_id: str | None) -> tuple[FeaturesConfig, str]:
    cfg = config or FeaturesConfig()
    return cfg, config_id or make_config_id(cfg)[0]


def _empty(table: str) -> pd.DataFrame:
    schema = FEATURE_TABLES[table]
    kinds = {"str": object, "date": "datetime64[ns]", "float": float, "int": np.int64}
    return pd.DataFrame({c.name: pd.Series([], dtype=kinds[c.dtype]) for c in schema.columns})


def _frame(table: str, parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    if not parts:
        return _empty(table)
    out = pd.concat(parts, ignore_index=True)
    return out[FEATURE_TABLES[table].column_names]


def _long(panel: MarketPanel, rows: np.ndarray, mask: np.ndarray,
          values: dict[str, np.ndarray], config_id: str) -> pd.DataFrame:
    """Rows (date, instrument) where ``mask`` (len(rows) x instruments) is set."""
    ri, ni = np.nonzero(mask)
    out = {
        "market_id": np.full(len(ri), panel.market_id, dtype=object),
        "instrument_id": panel.ids[ni],
        "date": panel.dates.to_numpy()[rows[ri]],
    }
    for name, v in values.items():
        out[name] = v[ri, ni]
    out["config_id"] = np.full(len(ri), config_id, dtype=object)
    return pd.DataFrame(out)


# --- returns, volatility, liquidity ----------------------------------------------------------
def _returns(panel: MarketPanel, rows: np.ndarray, cid: str) -> pd.DataFrame:
    r1 = panel.ret[rows]
    r5 = panel.compounded(5, rows)
    r21 = panel.compounded(21, rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        vals = {"ret_1d": r1, "ret_5d": r5, "ret_21d": r21,
                "logret_1d": np.log1p(r1), "logret_5d": np.log1p(r5),
                "logret_21d": np.log1p(r21)}
    return _long(panel, rows, panel.observed[rows], vals, cid)


def _volatility(panel: MarketPanel, rows: np.ndarray, cid: str) -> pd.DataFrame:
    short, long_ = VOL_WINDOWS
    vals = {f"vol_{short}d": panel.vol(short, rows), f"vol_{long_}d": panel.vol(long_, rows)}
    g = np.where(panel.observed & ~np.isnan(panel.ret), 1.0 + panel.ret, 1.0)
    vals["drawdown"], vals[f"max_drawdown_{DRAWDOWN_WINDOW}d"] = rolling_drawdowns(
        g, DRAWDOWN_WINDOW, rows)
    return _long(panel, rows, panel.observed[rows], vals, cid)


def _liquidity(panel: MarketPanel, rows: np.ndarray, cid: str) -> pd.DataFrame:
    w = LIQUIDITY_WINDOW
    need = panel.config.min_obs(w)
    tv = panel.traded_value
    with np.errstate(invalid="ignore", divide="ignore"):
        illiq = np.where(panel.observed & (tv > 0), np.abs(panel.ret) / tv, np.nan)
        shares = panel.statements["shares_outstanding"]
        turn = np.where(panel.observed & (shares > 0), panel.volume / shares, np.nan)
    vals = {
        f"adv_{w}d": panel.adv(w, rows),
        f"turnover_{w}d": rolling_mean(turn, w, rows, need),
        f"amihud_{w}d": rolling_mean(illiq, w, rows, need),
    }
    return _long(panel, rows, panel.observed[rows], vals, cid)


# --- factor returns ----------------------------------------------------------------------
def _characteristics(panel: MarketPanel, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Sort characteristics at the close of ``rows`` (higher = long side), NaN where a name is
    not eligible (outside the factor universe, or no price row that day)."""
    cfg = panel.config
    want = set(cfg.factors)
    elig = panel.observed[rows] & panel.in_factor_universe[None, :]
    out: dict[str, np.ndarray] = {}
    st = {k: v[rows] for k, v in panel.statements.items()}
    cap = panel.market_cap[rows]
    with np.errstate(invalid="ignore", divide="ignore"):
        if "SIZE" in want:
            adv = panel.adv(LIQUIDITY_WINDOW, rows)
            has_cap = elig & (cap > 0)
            has_adv = elig & (adv > 0)
            coverage = has_cap.sum(1) / np.maximum(has_adv.sum(1), 1)
            use_cap = (has_cap.sum(1) > 0) & (coverage >= cfg.size_proxy_min_coverage)
            # small minus big: the long side holds the smallest names
            size = np.where(use_cap[:, None], -np.log(cap), -np.log(adv))
            out["SIZE"] = np.where(elig, size, np.nan)
        if "VALUE" in want:
            if cfg.value_measure == "book_to_price":
                value = st["equity"] / cap
            else:
                value = st["net_income"] * 4.0 / cap
            out["VALUE"] = np.where(elig, value, np.nan)
        if "MOMENTUM" in want:
            mom = panel.compounded(cfg.momentum_lookback - cfg.momentum_skip, rows,
                                   skip=cfg.momentum_skip)
            out["MOMENTUM"] = np.where(elig, mom, np.nan)
        if "LOW_VOL" in want:
            out["LOW_VOL"] = np.where(elig, -panel.vol(VOL_WINDOWS[1], rows), np.nan)
        if "QUALITY" in want:
            if cfg.quality_measure == "roe":
                q = np.where(st["equity"] > 0, st["net_income"] * 4.0 / st["equity"], np.nan)
            else:
                q = np.where(st["total_assets"] > 0, st["ebitda"] * 4.0 / st["total_assets"],
                             np.nan)
            out["QUALITY"] = np.where(elig, q, np.nan)
    for k, v in out.items():
        out[k] = np.where(np.isfinite(v), v, np.nan)
    return out


def _market_return(panel: MarketPanel, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index return on ``rows`` (>= 1) and the number of names in it: previous-close cap
    weighted over universe names with a one-day return (equal weighted when no name has a
    market cap, or when the config says so)."""
    r = panel.ret[rows]
    ok = panel.one_day[rows] & panel.in_universe[None, :]
    n = ok.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ew = row_sum(r, ok) / n
        if panel.config.market_weighting == "equal":
            return np.where(n > 0, ew, np.nan), n
        w = panel.market_cap[rows - 1]
        capped = ok & (w > 0)
        cw = row_sum(r * w, capped) / row_sum(w, capped)
        nc = capped.sum(1)
    value = np.where(nc > 0, cw, np.where(n > 0, ew, np.nan))
    return value, np.where(nc > 0, nc, n)


def _factor_matrix(panel: MarketPanel, rows: np.ndarray
                   ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], np.ndarray]:
    """factor_id -> (value, n_long, n_short) on the returned rows (``rows`` from 1 on, as a
    factor return needs the previous close); value NaN where undefined."""
    cfg = panel.config
    rows = rows[rows >= 1]
    out: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    if len(rows) == 0:
        return out, rows
    if "MARKET" in cfg.factors:
        v, n = _market_return(panel, rows)
        out["MARKET"] = (v, n, np.zeros_like(n))
    chars = _characteristics(panel, rows - 1)
    ret = panel.ret[rows]
    today = panel.one_day[rows]
    q = cfg.quantiles
    for fid in cfg.factors:
        if fid == "MARKET" or fid not in chars:
            continue
        c = chars[fid]
        ok = today & ~np.isnan(c)
        n = ok.sum(1)
        # ordinal ranks, ties broken by instrument id
        rank = pd.DataFrame(np.where(ok, c, np.nan)).rank(axis=1, method="first").to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            bucket = np.floor((rank - 1.0) * q / n[:, None])
            top = ok & (bucket == q - 1)
            bottom = ok & (bucket == 0)
            nt, nb = top.sum(1), bottom.sum(1)
            value = row_sum(ret, top) / nt - row_sum(ret, bottom) / nb
        defined = (n >= q * cfg.min_names_per_bucket) & (nt > 0) & (nb > 0)
        out[fid] = (np.where(defined, value, np.nan), nt, nb)
    return out, rows


def ensure_factor_returns(panel: MarketPanel, rows: np.ndarray) -> None:
    """Compute the factor returns of ``rows`` not computed yet into the panel's cache
    (``panel.factor_values`` / ``factor_n_long`` / ``factor_n_short``: sessions x factors, in
    ``config.factors`` order). Each session's values depend on that session's inputs only, so
    the cache never changes a result."""
    t = panel.shape[0]
    k = len(panel.config.factors)
    if not hasattr(panel, "factor_values"):
        panel.factor_values = np.full((t, k), np.nan)
        panel.factor_n_long = np.zeros((t, k), dtype=np.int64)
        panel.factor_n_short = np.zeros((t, k), dtype=np.int64)
        panel.factor_done = np.zeros(t, dtype=bool)
    todo = np.unique(rows)
    todo = todo[~panel.factor_done[todo]]
    if len(todo) == 0:
        return
    mats, frows = _factor_matrix(panel, todo)
    for j, fid in enumerate(panel.config.factors):
        if fid in mats:
            v, nl, ns = mats[fid]
            panel.factor_values[frows, j] = v
            panel.factor_n_long[frows, j] = nl
            panel.factor_n_short[frows, j] = ns
    panel.factor_done[todo] = True


def _factors(panel: MarketPanel, rows: np.ndarray, cid: str) -> pd.DataFrame:
    ensure_factor_returns(panel, rows)
    v = panel.factor_values[rows]
    ri, ki = np.nonzero(~np.isnan(v))
    return pd.DataFrame({
        "market_id": np.full(len(ri), panel.market_id, dtype=object),
        "factor_id": np.asarray(panel.config.factors, dtype=object)[ki],
        "date": panel.dates.to_numpy()[rows[ri]],
        "value": v[ri, ki],
        "n_long": panel.factor_n_long[rows[ri], ki],
        "n_short": panel.factor_n_short[rows[ri], ki],
        "config_id": np.full(len(ri), cid, dtype=object),
    })


def factor_returns_wide(panel: MarketPanel, rows: np.ndarray) -> np.ndarray:
    """(sessions x factors) factor returns of ``panel`` on ``rows`` (NaN elsewhere), factors in
    ``config.factors`` order."""
    ensure_factor_returns(panel, rows)
    out = np.full_like(panel.factor_values, np.nan)
    out[rows] = panel.factor_values[rows]
    return out


# --- rolling betas ---------------------------------------------------------------------------
def _window_rows(rows: np.ndarray, window: int, t: int) -> np.ndarray:
    span = (rows[:, None] - np.arange(window)[None, :]).ravel()
    return np.unique(span[(span >= 0) & (span < t)])


def rolling_ols_betas(y: np.ndarray, x: np.ndarray, rows: np.ndarray, window: int,
                      min_obs: int) -> np.ndarray:
    """Multivariate OLS slopes (with intercept) of each column of ``y`` (sessions x names, NaN =
    no observation) on the regressors ``x`` (sessions x k, NaN = undefined) over the trailing
    ``window`` sessions ending at each of ``rows``. A regressor is used in a window when it has
    at least ``min_obs`` values there (unused ones get NaN slopes); a day enters when the name
    and every used regressor have a value; a name needs ``min_obs`` such days (else NaN).
    Returns (len(rows), names, k)."""
    t, n = y.shape
    kf = x.shape[1]
    w = window
    rows = np.asarray(rows, dtype=np.int64)
    beta = np.full((len(rows), n, kf), np.nan)
    if len(rows) == 0 or n == 0 or kf == 0:
        return beta
    fpad = padded_window_source(x, w, np.nan)
    # names x sessions, so that a window gathers contiguous memory and feeds BLAS directly
    y_t = np.ascontiguousarray(padded_window_source(np.nan_to_num(y, nan=0.0), w, 0.0).T)
    m_t = np.ascontiguousarray(padded_window_source((~np.isnan(y)).astype(float), w, 0.0).T)
    offsets = np.arange(w)[None, :]
    k1 = kf + 1
    step = max(1, _CHUNK_ELEMENTS // (n * w))
    eye = np.eye(k1)
    for i in range(0, len(rows), step):
        rr = rows[i:i + step]
        c = len(rr)
        idx = rr[:, None] + offsets  # (c, w) rows of the padded arrays
        fw = fpad[idx]  # (c, w, k)
        valid = ~np.isnan(fw)
        inc = valid.sum(axis=1) >= min_obs  # (c, k): regressors defined often enough
        day_ok = np.all(valid | ~inc[:, None, :], axis=2)  # (c, w)
        xw = np.concatenate([np.ones((c, w, 1)), np.where(valid & inc[:, None, :], fw, 0.0)],
                            axis=2)  # (c, w, k1): intercept first
        xw *= day_ok[..., None]  # days a used regressor lacks drop out of every sum
        yw = y_t[:, idx].transpose(1, 0, 2)  # (c, n, w)
        mw = m_t[:, idx].transpose(1, 0, 2)
        # einsum, not matmul: BLAS kernels sum a name's window in an order that depends on how
        # many names share the call, so a name listed later would change earlier names' betas
        # in the last bits; einsum's loops give every (date, name) the same order
        nobs = np.einsum("cnw,cw->cn", mw, day_ok.astype(float), optimize=False)
        outer = (xw[..., :, None] * xw[..., None, :]).reshape(c, w, k1 * k1)
        xtx = np.einsum("cnw,cwk->cnk", mw, outer, optimize=False).reshape(c, n, k1, k1)
        xty = np.einsum("cnw,cwk->cnk", yw, xw, optimize=False)  # (c, n, k1)
        # unused regressors and thin samples get an identity block so every system solves
        off = np.concatenate([np.zeros((c, 1), dtype=bool), ~inc], axis=1)  # (c, k1)
        xtx = xtx + off[:, None, :, None] * eye[None, None]
        thin = nobs < max(min_obs, k1)
        xtx[thin] = eye
        xty[thin] = 0.0
        scale = np.maximum(np.trace(xtx, axis1=2, axis2=3), 1e-300)
        xtx = xtx + (1e-12 * scale)[..., None, None] * eye
        try:
            b = np.linalg.solve(xtx, xty[..., None])[..., 0]
        except np.linalg.LinAlgError:
            b = np.einsum("cnij,cnj->cni", np.linalg.pinv(xtx), xty)
        b = b[..., 1:]
        b[thin] = np.nan
        b[np.broadcast_to(~inc[:, None, :], b.shape)] = np.nan
        beta[i:i + step] = b
    return beta


def _betas(panel: MarketPanel, rows: np.ndarray, cid: str) -> pd.DataFrame:
    cfg = panel.config
    t, n = panel.shape
    fids = list(cfg.factors)
    if len(rows) == 0 or n == 0 or not fids:
        return _empty("instrument_factors_daily")
    factors = factor_returns_wide(panel, _window_rows(rows, cfg.beta_window, t))
    y = np.where(panel.one_day, panel.ret, np.nan)
    if cfg.regression_return_clip is not None:
        y = np.clip(y, -cfg.regression_return_clip, cfg.regression_return_clip)
    beta = rolling_ols_betas(y, factors, rows, cfg.beta_window, cfg.beta_min_obs)
    obs = panel.observed[rows][..., None] & ~np.isnan(beta)
    ri, ni, ki = np.nonzero(obs)
    return pd.DataFrame({
        "market_id": np.full(len(ri), panel.market_id, dtype=object),
        "instrument_id": panel.ids[ni],
        "date": panel.dates.to_numpy()[rows[ri]],
        "factor_id": np.asarray(fids, dtype=object)[ki],
        "exposure": beta[ri, ni, ki],
        "config_id": np.full(len(ri), cid, dtype=object),
    })


# --- market internals --------------------------------------------------------------------------
def _avg_corr(y: np.ndarray, window: int, rows: np.ndarray) -> np.ndarray:
    """Average pairwise correlation over the trailing windows ending at ``rows`` of the names
    with a value on every session of the window, from Var(sum_i z_i) = sum_ij corr_ij for
    series z-scored within the window (ddof=1); the sum over names runs in name order."""
    n = y.shape[1]
    out = np.full(len(rows), np.nan)
    if n == 0:
        return out
    padded = padded_window_source(y, window, np.nan)
    step = max(1, (1 << 20) // n)
    with np.errstate(invalid="ignore", divide="ignore"):
        for i in range(0, len(rows), step):
            rr = rows[i:i + step]
            total = np.zeros((len(rr), n))
            for x in window_slices(padded, window, rr):
                total += x  # NaN marks an incomplete window
            complete = ~np.isnan(total)
            mean = np.where(complete, total / window, 0.0)
            ss = np.zeros((len(rr), n))
            for x in window_slices(padded, window, rr):
                d = np.where(complete, x - mean, 0.0)
                ss += d * d
            sd = np.sqrt(ss / (window - 1))
            use = complete & (sd > 0)
            inv = np.where(use, 1.0 / np.where(use, sd, 1.0), 0.0)
            s2 = np.zeros(len(rr))
            for x in window_slices(padded, window, rr):
                z = np.where(use, (x - mean) * inv, 0.0)
                s = np.cumsum(z, axis=1)[:, -1]
                s2 += s * s
            nn = use.sum(axis=1)
            var_s = s2 / (window - 1)
            out[i:i + len(rr)] = np.where(nn >= 2, (var_s / nn - 1.0) / (nn - 1.0), np.nan)
    return out


def _correlation(panel: MarketPanel, rows: np.ndarray, cid: str) -> pd.DataFrame:
    if len(rows) == 0:
        return _empty("market_correlation_daily")
    uni = panel.one_day & panel.in_universe[None, :]
    y = np.where(uni, panel.ret, np.nan)
    w = CORRELATION_WINDOW
    corr = _avg_corr(y, w, rows)
    r = panel.ret[rows]
    ok = uni[rows]
    nn = ok.sum(1)
    up = (ok & (r > 0)).sum(1)
    down = (ok & (r < 0)).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = row_sum(r, ok) / nn
        disp = np.sqrt(row_sum((r - mean[:, None]) ** 2, ok) / (nn - 1))
        breadth = up / nn
        ad = (up - down) / nn
    idx = np.full(len(rows), np.nan)
    pos = rows >= 1
    if pos.any():
        idx[pos] = _market_return(panel, rows[pos])[0]
    return pd.DataFrame({
        "market_id": np.full(len(rows), panel.market_id, dtype=object),
        "date": panel.dates.to_numpy()[rows],
        f"avg_pairwise_corr_{w}d": corr,
        "dispersion_1d": np.where(nn >= 2, disp, np.nan),
        "breadth_1d": np.where(nn > 0, breadth, np.nan),
        "advance_decline": np.where(nn > 0, ad, np.nan),
        "index_ret_1d": idx,
        "n_names": nn.astype(np.int64),
        "config_id": np.full(len(rows), cid, dtype=object),
    })


# --- public API ------------------------------------------------------------------------------
_BUILDERS = {
    "returns_daily": _returns,
    "volatility_daily": _volatility,
    "liquidity_daily": _liquidity,
    "factors_daily": _factors,
    "instrument_factors_daily": _betas,
    "market_correlation_daily": _correlation,
}


def compute_features(inputs: FeatureInputs, output_dates: Iterable[DateLike],
                     config: FeaturesConfig | None = None, *, config_id: str | None = None,
                     tables: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """All (or the named) feature tables for ``output_dates``, sharing the per-market panels
    and the factor returns between tables. Keys are table names (``FEATURE_TABLES``)."""
    cfg, cid = _resolve(config, config_id)
    names = list(tables) if tables is not None else list(_BUILDERS)
    unknown = [t for t in names if t not in _BUILDERS]
    if unknown:
        raise KeyError(f"unknown feature table(s) {unknown}; known: {list(_BUILDERS)}")
    dates = list(output_dates)
    panels = build_panels(inputs, cfg)
    parts: dict[str, list[pd.DataFrame]] = {t: [] for t in names}
    for panel in panels.values():
        rows = panel.rows_for(dates)
        if len(rows) == 0:
            continue
        for t in names:
            parts[t].append(_BUILDERS[t](panel, rows, cid))
    return {t: _frame(t, parts[t]) for t in names}


def _one(table: str, inputs: FeatureInputs, output_dates: Iterable[DateLike],
         config: FeaturesConfig | None, config_id: str | None) -> pd.DataFrame:
    return compute_features(inputs, output_dates, config, config_id=config_id,
                            tables=[table])[table]


def compute_returns(inputs: FeatureInputs, output_dates: Iterable[DateLike],
                    config: FeaturesConfig | None = None, *, config_id: str | None = None,
                    ) -> pd.DataFrame:
    """``returns_daily`` rows for ``output_dates``: one row per price row, with 1/5/21-session
    simple and log total returns (see ``adjusted_returns`` for the conventions). A k-session
    return compounds the returns of the rows in the last k sessions (a name's first row in
    the window may span back further when rows are missing) and is NaN when the window reaches
    the instrument's first row or the start of the history."""
    return _one("returns_daily", inputs, output_dates, config, config_id)


def compute_volatility(inputs: FeatureInputs, output_dates: Iterable[DateLike],
                       config: FeaturesConfig | None = None, *, config_id: str | None = None,
                       ) -> pd.DataFrame:
    """``volatility_daily`` rows: ``vol_21d``/``vol_63d`` = std (ddof=1) of the daily returns in
    the last 21/63 sessions * sqrt(annualisation_days), needing ceil(min_obs_fraction * window)
    returns; ``drawdown`` = total-return level / its maximum over the last 252 sessions - 1;
    ``max_drawdown_252d`` = the worst peak-to-trough loss of the level within those sessions
    (<= 0). Levels at sessions without a price row are carried forward."""
    return _one("volatility_daily", inputs, output_dates, config, config_id)


def compute_liquidity(inputs: FeatureInputs, output_dates: Iterable[DateLike],
                      config: FeaturesConfig | None = None, *, config_id: str | None = None,
                      ) -> pd.DataFrame:
    """``liquidity_daily`` rows over the last 21 sessions: ``adv_21d`` = mean close * volume,
    ``turnover_21d`` = mean volume / shares outstanding (latest statement, split adjusted; null
    when unknown), ``amihud_21d`` = mean |ret_1d| / (close * volume) over days with trading."""
    return _one("liquidity_daily", inputs, output_dates, config, config_id)


def compute_factor_returns(inputs: FeatureInputs, output_dates: Iterable[DateLike],
                           config: FeaturesConfig | None = None, *,
                           config_id: str | None = None) -> pd.DataFrame:
    """``factors_daily`` rows: per market and date t, MARKET = index return (previous-close cap
    or equal weighted), and for SIZE (small minus big: -log market cap, or -log ADV when too
    few names have a cap), VALUE (book-to-price or earnings yield), MOMENTUM (compounded return
    from ``momentum_lookback`` to ``momentum_skip`` sessions back), LOW_VOL (-vol_63d) and
    QUALITY (annualised ROE = 4 * quarterly net income / equity, or EBITDA / assets) the
    equal-weighted top-quantile minus bottom-quantile return on t of names ranked on the
    characteristic at the close of t-1. Only names with a one-day return on t enter; a factor
    with fewer than ``quantiles * min_names_per_bucket`` eligible names has no row."""
    return _one("factors_daily", inputs, output_dates, config, config_id)


def compute_factor_exposures(inputs: FeatureInputs, output_dates: Iterable[DateLike],
                             config: FeaturesConfig | None = None, *,
                             config_id: str | None = None) -> pd.DataFrame:
    """``instrument_factors_daily`` rows: per instrument and date t, the multivariate OLS
    slopes (with intercept) of its one-day returns (clipped at +/- regression_return_clip) on
    the market's factor returns over the ``beta_window`` sessions ending at t, on days where
    the name and every used factor have a value; a factor is used when it has at least
    ``beta_min_obs`` values in the window, and a name needs ``beta_min_obs`` days."""
    return _one("instrument_factors_daily", inputs, output_dates, config, config_id)


def compute_market_correlation(inputs: FeatureInputs, output_dates: Iterable[DateLike],
                               config: FeaturesConfig | None = None, *,
                               config_id: str | None = None) -> pd.DataFrame:
    """``market_correlation_daily`` rows per market and session: average pairwise correlation
    of one-day returns over the last 63 sessions (names with a return on every one of them),
    cross-sectional dispersion (std, ddof=1), breadth (share of names up), advance-decline
    ((up - down) / names) and the index return (the MARKET factor)."""
    return _one("market_correlation_daily", inputs, output_dates, config, config_id)
