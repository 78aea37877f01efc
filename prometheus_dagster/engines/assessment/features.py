"""Point-in-time alpha features per instrument and date.

The row for (instrument, D) exists when the instrument is an EQUITY with a close on session D
and uses only input rows dated <= D: statements reported on or before D (the latest period
among them, if at most ``max_statement_age_days`` old), and profile, stability, fragility and
regime rows dated on or before D (at most ``max_context_age_days`` old).

``raw_features`` gives the characteristics in their own units (``config.FEATURES`` says what
each is); ``assessment_features`` turns the model's features into per-date cross-sectional
normal scores (or winsorised z-scores) over that date's names, so the model sees comparable
values across time. Date-level context (regime) is left as is. Missing stays NaN; ``notes``
says which inputs a row lacked.

Trailing returns compound ``ret_1d`` over sessions of the grid (dates present in the price
and return rows), so they are split and dividend adjusted. Market cap is the close times the
statement's shares outstanding: after a split and before the next statement it is off by the
split ratio (the inputs carry no split history)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy.special import ndtri

from prometheus_dagster.engines.assessment.config import (
    FEATURES,
    MARKET_LEVEL_FEATURES,
    AssessmentConfig,
    embedding_features,
)
from prometheus_dagster.engines.assessment.inputs import (
    AssessmentInputs,
    clean_inputs,
    required,
)
from prometheus_dagster.engines.assessment.panel import (
    on_sessions,
    wide,
    window_count,
    window_return,
    window_sum,
)

KEYS = ["instrument_id", "issuer_id", "as_of_date"]
YEAR, HALF, MONTH = 252, 126, 21
ANNUALISE = 4.0  # statements are quarterly


def session_grid(tables: dict[str, pd.DataFrame | None]) -> pd.DatetimeIndex:
    dates = np.concatenate([required(tables, t)["date"].to_numpy()
                            for t in ("prices", "returns")])
    return pd.DatetimeIndex(np.unique(dates))


def raw_features(inputs: AssessmentInputs, dates: Iterable[object],
                 config: AssessmentConfig | None = None) -> pd.DataFrame:
    """One row per scored (instrument, date) with every characteristic of ``FEATURES`` (and
    the profile embedding components) in its own units, plus ``fragility_measure``
    (soft_target_score x tail_probability), ``regime_label`` and ``notes``. Rows are sorted by
    date and instrument."""
    cfg = config or AssessmentConfig()
    fs = cfg.features
    t = clean_inputs(inputs)
    sessions = session_grid(t)
    inst = required(t, "instruments")
    equity = inst[inst["asset_class"].astype(str).str.upper() == "EQUITY"]
    names = pd.Index(sorted(equity["instrument_id"]), name="instrument_id")
    issuer_of = equity.set_index("instrument_id")["issuer_id"]
    wanted = pd.DatetimeIndex(sorted({pd.Timestamp(d).normalize() for d in dates}))
    t_idx = sessions.get_indexer(wanted)
    t_idx = t_idx[t_idx >= 0]
    if not len(t_idx) or not len(names):
        return _empty(cfg)

    close_all = wide(t["prices"], "close", sessions, names)
    close_all[~(close_all > 0)] = np.nan
    ret_all = wide(t["returns"], "ret_1d", sessions, names)
    close = close_all[t_idx]
    grid: dict[str, np.ndarray] = {
        "mom_12_1": window_return(ret_all, t_idx, YEAR, MONTH, fs.min_window_coverage),
        "mom_6m": window_return(ret_all, t_idx, HALF, MONTH, fs.min_window_coverage),
        "rev_1m": -window_return(ret_all, t_idx, MONTH, 0, fs.min_window_coverage),
    }
    divs = on_sessions(t["dividends"], "value", sessions, names)
    paid = window_sum(divs, t_idx, YEAR)
    priced = window_count(~np.isnan(close_all), t_idx, YEAR)
    paid[priced < fs.min_window_coverage * YEAR] = np.nan
    grid["dividend_yield"] = paid / close
    vol = t["volatility"]
    grid["neg_vol_63d"] = -wide(vol, "vol_63d", sessions, names)[t_idx]
    grid["drawdown"] = wide(vol, "drawdown", sessions, names)[t_idx]
    expo = t["exposures"]
    if expo is not None:
        expo = expo[expo["factor_id"].astype(str) == "MARKET"]
    grid["neg_market_beta"] = -wide(expo, "exposure", sessions, names)[t_idx]
    adv = wide(t["liquidity"], "adv_21d", sessions, names)[t_idx]
    grid["log_adv_21d"] = np.log(np.where(adv > 0, adv, np.nan))

    live = ~np.isnan(close)
    di, ni = np.nonzero(live)  # date-major: rows come out sorted by date, then instrument
    out = pd.DataFrame({"instrument_id": names.to_numpy()[ni],
                        "as_of_date": sessions[t_idx].to_numpy()[di]})
    out["issuer_id"] = out["instrument_id"].map(issuer_of).to_numpy()
    out["close"] = close[di, ni]
    for k, v in grid.items():
        out[k] = v[di, ni]
    notes: list[tuple[np.ndarray, str]] = [
        (np.isnan(out["neg_vol_63d"].to_numpy()), "no volatility"),
        (np.isnan(out["neg_market_beta"].to_numpy()), "no market beta"),
        (np.isnan(out["log_adv_21d"].to_numpy()), "no liquidity"),
    ]
    has = _statement_features(out, t["fundamentals"], fs.max_statement_age_days)
    notes.append((~has, "no statement"))
    has = _profile_features(out, t["profiles"], fs.max_context_age_days,
                            fs.embedding_components)
    notes.append((~has, "no profile"))
    has = _asof(out, t["stability"], ["stability_score"], fs.max_context_age_days)
    notes.append((~has, "no stability"))
    frag = t["fragility"]
    if frag is not None:
        frag = frag[frag["horizon_days"] == fs.fragility_horizon_days]
    has = _asof(out, frag, ["soft_target_score", "tail_probability", "high_fragility"],
                fs.max_context_age_days)
    notes.append((~has, "no fragility"))
    has = _regime_features(out, t["regimes"], fs.max_context_age_days, fs.regime_stress)
    notes.append((~has, "no regime"))
    out["fragility_measure"] = out["soft_target_score"] * out["tail_probability"]
    out["notes"] = _notes(notes, len(out))
    cols = _raw_columns(cfg)
    return out[cols].reset_index(drop=True)


def _raw_columns(cfg: AssessmentConfig) -> list[str]:
    return [*KEYS, *FEATURES, *embedding_features(cfg.features.embedding_components),
            "fragility_measure", "regime_label", "notes"]


def _empty(cfg: AssessmentConfig) -> pd.DataFrame:
    cols = _raw_columns(cfg)
    out = pd.DataFrame({c: pd.Series([], dtype=float) for c in cols})
    for c in ("instrument_id", "issuer_id", "regime_label", "notes"):
        out[c] = pd.Series([], dtype=object)
    out["as_of_date"] = pd.Series([], dtype="datetime64[ns]")
    return out


def _notes(parts: list[tuple[np.ndarray, str]], n: int) -> np.ndarray:
    text = np.full(n, "", dtype=object)
    for mask, label in parts:
        text[mask] = text[mask] + label + "; "
    return np.array([s[:-2] if s else None for s in text], dtype=object)


def _asof(out: pd.DataFrame, table: pd.DataFrame | None, columns: list[str],
          max_age_days: int) -> np.ndarray:
    """Adds ``columns`` from each row's latest issuer row (entity_id) dated <= its date and at
    most max_age_days old; returns whether one was found."""
    if table is None or table.empty:
        for c in columns:
            out[c] = np.nan
        return np.zeros(len(out), dtype=bool)
    right = table.rename(columns={"entity_id": "issuer_id", "as_of_date": "_known"})
    return _merge_backward(out, right[["issuer_id", "_known", *columns]], columns,
                           max_age_days)


def _merge_backward(out: pd.DataFrame, right: pd.DataFrame, columns: list[str],
                    max_age_days: int, by: str | None = "issuer_id") -> np.ndarray:
    """Adds ``columns`` of the latest ``right`` row (by ``_known`` date, per ``by``) on or
    before each row's date, at most max_age_days old; returns whether one was found."""
    keys = ["as_of_date"] + ([by] if by else [])
    left = out[keys].assign(_row=np.arange(len(out))).sort_values("as_of_date", kind="stable")
    if by is not None:
        left[by] = left[by].astype(object).where(left[by].notna(), "")
    right = right.sort_values("_known", kind="stable")
    merged = pd.merge_asof(left, right, left_on="as_of_date", right_on="_known", by=by,
                           direction="backward", tolerance=pd.Timedelta(days=max_age_days))
    order = np.argsort(merged["_row"].to_numpy(), kind="stable")
    for c in columns:
        out[c] = merged[c].to_numpy()[order]
    return merged["_known"].notna().to_numpy()[order]


def latest_statements(fundamentals: pd.DataFrame) -> pd.DataFrame:
    """Statements that were the latest period of their issuer when reported: a statement
    reported after one for a later period (a late restatement) never replaces it."""
    f = fundamentals.sort_values(["issuer_id", "report_date", "period_end"], kind="stable")
    prev_max = f.groupby("issuer_id")["period_end"].transform(
        lambda s: s.cummax().shift(1))
    f = f[prev_max.isna() | (f["period_end"] > prev_max)]
    return f.drop_duplicates(["issuer_id", "report_date"], keep="last")


_STATEMENT_ITEMS = ["equity", "net_income", "free_cash_flow", "total_assets", "ebitda",
                    "shares_outstanding"]


def _statement_features(out: pd.DataFrame, fundamentals: pd.DataFrame | None,
                        max_age_days: int) -> np.ndarray:
    if fundamentals is None or fundamentals.empty:
        st = {c: np.full(len(out), np.nan) for c in _STATEMENT_ITEMS}
        has = np.zeros(len(out), dtype=bool)
    else:
        right = latest_statements(fundamentals).rename(columns={"report_date": "_known"})
        tmp = out[["as_of_date", "issuer_id"]].copy()
        has = _merge_backward(tmp, right[["issuer_id", "_known", *_STATEMENT_ITEMS]],
                              _STATEMENT_ITEMS, max_age_days)
        st = {c: tmp[c].to_numpy(dtype=float) for c in _STATEMENT_ITEMS}
    with np.errstate(divide="ignore", invalid="ignore"):
        cap = out["close"].to_numpy() * st["shares_outstanding"]
        cap = np.where(cap > 0, cap, np.nan)
        equity = st["equity"]
        assets = np.where(st["total_assets"] > 0, st["total_assets"], np.nan)
        income = ANNUALISE * st["net_income"]
        out["book_to_price"] = equity / cap
        out["earnings_yield"] = income / cap
        out["fcf_yield"] = ANNUALISE * st["free_cash_flow"] / cap
        out["roe"] = np.where(equity > 0, income / np.where(equity > 0, equity, np.nan), np.nan)
        out["roa"] = income / assets
        out["gross_profitability"] = ANNUALISE * st["ebitda"] / assets
        out["log_market_cap"] = np.log(cap)
    return has


def _profile_features(out: pd.DataFrame, profiles: pd.DataFrame | None, max_age_days: int,
                      n_embedding: int) -> np.ndarray:
    emb_cols = list(embedding_features(n_embedding))
    cols = ["earnings_quality_score", "leverage_score", "profile_weakness"]
    if profiles is None or profiles.empty:
        tmp = pd.DataFrame({c: np.full(len(out), np.nan) for c in cols + emb_cols})
        has = np.zeros(len(out), dtype=bool)
    else:
        right = profiles.rename(columns={"as_of_date": "_known"})
        for i, c in enumerate(emb_cols):
            right[c] = right["profile_embedding"].map(
                lambda v, i=i: float(v[i]) if v is not None and len(v) > i else np.nan)
        tmp = out[["as_of_date", "issuer_id"]].copy()
        has = _merge_backward(tmp, right[["issuer_id", "_known", *cols, *emb_cols]],
                              cols + emb_cols, max_age_days)
    out["earnings_quality"] = 1.0 - tmp["earnings_quality_score"].to_numpy(dtype=float)
    out["balance_sheet_strength"] = 1.0 - tmp["leverage_score"].to_numpy(dtype=float)
    for c in ["profile_weakness", *emb_cols]:
        out[c] = tmp[c].to_numpy(dtype=float)
    return has


def _regime_features(out: pd.DataFrame, regimes: pd.DataFrame | None,
                     max_age_days: int, stress: dict[str, float]) -> np.ndarray:
    if regimes is None or regimes.empty:
        out["regime_label"] = None
        out["regime_confidence"] = np.nan
        out["regime_stress"] = np.nan
        return np.zeros(len(out), dtype=bool)
    right = regimes.rename(columns={"as_of_date": "_known", "confidence": "regime_confidence"})
    has = _merge_backward(out, right[["_known", "regime_label", "regime_confidence"]],
                          ["regime_label", "regime_confidence"], max_age_days, by=None)
    out["regime_confidence"] = out["regime_confidence"].astype(float)
    out["regime_stress"] = out["regime_label"].map(stress).astype(float)
    return has


def standardise(frame: pd.DataFrame, columns: Iterable[str],
                config: AssessmentConfig | None = None) -> pd.DataFrame:
    """Per-date cross-sectional transform of ``columns`` over the date's non-missing values:
    normal scores of the average ranks, ndtri((rank - 0.5) / n) (``rank_gauss``), or z-scores
    (population sd) clipped at +- winsor_z (``zscore``). A date with one value gives 0."""
    fs = (config or AssessmentConfig()).features
    out = frame.copy()
    by = frame["as_of_date"]
    for c in columns:
        x = frame[c].astype(float)
        g = x.groupby(by)
        n = g.transform("count").to_numpy(dtype=float)
        if fs.standardise == "rank_gauss":
            r = g.rank(method="average").to_numpy(dtype=float)
            with np.errstate(invalid="ignore", divide="ignore"):
                z = ndtri((r - 0.5) / n)
        else:
            mu = g.transform("mean").to_numpy(dtype=float)
            sd = g.transform(lambda s: s.std(ddof=0)).to_numpy(dtype=float)
            with np.errstate(invalid="ignore", divide="ignore"):
                z = np.clip((x.to_numpy() - mu) / sd, -fs.winsor_z, fs.winsor_z)
            z = np.where(sd > 0, z, 0.0)
        z = np.where(n == 1, 0.0, z)
        out[c] = np.where(np.isnan(x.to_numpy()), np.nan, z)
    return out


def assessment_features(inputs: AssessmentInputs, dates: Iterable[object],
                        config: AssessmentConfig | None = None) -> pd.DataFrame:
    """The model's input rows: keys, the configured family features (standardised per date;
    regime context as is), ``fragility_measure`` (raw, for the long penalty),
    ``regime_label`` and ``notes``."""
    cfg = config or AssessmentConfig()
    raw = raw_features(inputs, dates, cfg)
    names = list(cfg.feature_names)
    scaled = [c for c in names if c not in MARKET_LEVEL_FEATURES]
    out = standardise(raw, scaled, cfg)
    return out[[*KEYS, *names, "fragility_measure", "regime_label", "notes"]]

