"""Risk flags: deterministic functions of the structured fields, each in [0, 1], 1 = riskiest.

Every flag is a combination of linear ramps (``Ramp``: 0 at ``low``, 1 at ``high``) that is
monotone in the measures it reads, so that, for example, more debt never lowers the leverage
score. Inputs may be scalars or arrays; NaN inputs give NaN components, ignored when another
component is known.
"""

from __future__ import annotations

import warnings

import numpy as np

from prometheus_dagster.engines.profiles.config import ProfilesConfig, Ramp


def ramp(x: np.ndarray | float, r: Ramp) -> np.ndarray:
    """0 at ``r.low`` and below, 1 at ``r.high`` and above, linear between; NaN stays NaN."""
    return np.clip((np.asarray(x, dtype=float) - r.low) / (r.high - r.low), 0.0, 1.0)


def _nanmax(*parts: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmax(np.stack(np.broadcast_arrays(*parts)), axis=0)


def leverage_score(total_debt, ebitda, equity, total_liabilities, total_assets,
                   config: ProfilesConfig) -> np.ndarray:
    """Largest of: ramp(debt / annualised EBITDA), ramp(debt / equity), ramp(liabilities /
    assets). Non-positive EBITDA or equity with debt outstanding scores 1 on that component
    (leverage is unbounded), with no debt 0."""
    debt, e, eq = (np.asarray(v, dtype=float) for v in (total_debt, ebitda, equity))
    liab, assets = np.asarray(total_liabilities, float), np.asarray(total_assets, float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        d_ebitda = np.where(e > 0, ramp(debt / (4.0 * e), config.debt_to_ebitda),
                            np.where(debt > 0, 1.0, np.where(debt <= 0, 0.0, np.nan)))
        d_equity = np.where(eq > 0, ramp(debt / eq, config.debt_to_equity),
                            np.where(debt > 0, 1.0, np.where(debt <= 0, 0.0, np.nan)))
        l_assets = np.where(assets > 0, ramp(liab / assets, config.liabilities_to_assets),
                            np.nan)
    d_ebitda = np.where(np.isnan(e) | np.isnan(debt), np.nan, d_ebitda)
    d_equity = np.where(np.isnan(eq) | np.isnan(debt), np.nan, d_equity)
    return _nanmax(d_ebitda, d_equity, l_assets)


def earnings_quality_score(net_income, operating_cash_flow, total_assets, revenue,
                           config: ProfilesConfig) -> np.ndarray:
    """w_accruals x ramp(accruals / assets) + w_cash_burn x (operating cash flow < 0) + w_loss x
    ramp(loss margin) (``earnings_quality_weights``, by default 0.5, 0.25, 0.25); NaN when the
    statement lacks net income or cash flow."""
    ni, ocf = np.asarray(net_income, float), np.asarray(operating_cash_flow, float)
    assets, rev = np.asarray(total_assets, float), np.asarray(revenue, float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        accruals = np.where(assets > 0, (ni - ocf) / assets, np.nan)
        loss_margin = np.where(rev > 0, -ni / rev, np.where(ni < 0, np.inf, 0.0))
    acc = ramp(accruals, config.accruals_ratio)
    burn = np.where(np.isnan(ocf), np.nan, (ocf < 0).astype(float))
    loss = ramp(loss_margin, config.loss_margin)
    w = config.earnings_quality_weights
    score = (w.accruals * np.nan_to_num(acc) + w.cash_burn * np.nan_to_num(burn)
             + w.loss * np.nan_to_num(loss))
    return np.where(np.isnan(ni) | np.isnan(ocf), np.nan, score)


def liquidity_risk(cash, short_term_debt, ebitda, interest_expense,
                   config: ProfilesConfig) -> np.ndarray:
    """Largest of: 1 - ramp(cash / short-term debt) and 1 - ramp(EBITDA / interest). No
    short-term debt or no interest expense is no risk on that component."""
    cash, std = np.asarray(cash, float), np.asarray(short_term_debt, float)
    e, interest = np.asarray(ebitda, float), np.asarray(interest_expense, float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        cash_part = np.where(std > 0, 1.0 - ramp(cash / std, config.cash_to_st_debt),
                             np.where(std <= 0, 0.0, np.nan))
        cover_part = np.where(interest > 0, 1.0 - ramp(e / interest, config.interest_coverage),
                              np.where(interest <= 0, 0.0, np.nan))
    cash_part = np.where(np.isnan(cash) & (std > 0), np.nan, cash_part)
    cover_part = np.where(np.isnan(e) & (interest > 0), np.nan, cover_part)
    return _nanmax(cash_part, cover_part)


def governance_risk_score(max_anchor_similarity, config: ProfilesConfig) -> np.ndarray:
    """ramp(the largest cosine similarity of recent news to the governance/distress anchor
    themes); NaN without recent news."""
    return ramp(max_anchor_similarity, config.governance_similarity)


def profile_weakness(flags: dict[str, np.ndarray], config: ProfilesConfig) -> np.ndarray:
    """Weighted mean of the available flags (weights renormalised over those present)."""
    weights = config.flag_weights.model_dump()
    num = den = 0.0
    for name, values in flags.items():
        v = np.asarray(values, float)
        w = weights[name] * ~np.isnan(v)
        num = num + w * np.nan_to_num(v)
        den = den + w
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.asarray(den) > 0, num / den, np.nan)
