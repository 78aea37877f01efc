"""Quarterly statements from the issuers' latent state at each period end.

Revenue follows the latent log revenue; the EBITDA margin, debt ratio, short-term share of debt
and cash ratio follow latent health and deterioration progress (``balance_sheet``), so a
deteriorating issuer reports rising leverage, falling coverage and margins, and a cash squeeze.
Interest is the market's 10y rate plus a health-dependent credit spread. A statement is
published on its report date (a session ``report_lag_days`` after the period end) and never
after the issuer was delisted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from prometheus_dagster.core.schemas import get_schema
from prometheus_dagster.engines.synthetic_market import balance_sheet as bs
from prometheus_dagster.engines.synthetic_market.equities import DEFAULT, EquityHistory
from prometheus_dagster.engines.synthetic_market.rng import generator

FUNDAMENTAL_COLUMNS = get_schema("fundamentals").column_names


def fundamentals_frames(seed: int, hist: EquityHistory, currency: str,
                        base_rate: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(statements in the ``fundamentals`` schema, per-statement facts for news: name index,
    surprise, revenue growth, margin). ``base_rate`` is a percent rate per business day."""
    u = hist.universe
    plan, snap = hist.plan, hist.snapshots
    delisted = np.full(u.n, np.datetime64("NaT"), dtype="datetime64[ns]")
    for e in hist.events:
        if e.kind == DEFAULT:
            delisted[e.name] = hist.days.values[e.event_day]
    last_day = hist.days.values[-1]
    assets0 = bs.opening_assets(u)
    lr0 = bs.opening_log_revenue(u)
    stmts, facts = [], []
    for q, period_end in enumerate(plan.period_end):
        rep = plan.report_date[q]
        ok = ~np.isnat(rep) & (rep <= last_day)
        ok &= np.isnat(delisted) | (rep < delisted)
        if not ok.any():
            continue
        h, lr = snap["health"][q], snap["log_revenue"][q]
        prog = snap["progress"][q]
        noise = generator(seed, f"fundamentals:{u.market_id}", q).standard_normal((4, u.n))
        rate_day = max(int(plan.snapshot_day[q]), 0)
        rate = base_rate[rate_day] / 100.0 + 0.01 * np.exp(-0.6 * h) + 0.04 * prog

        revenue = np.exp(lr + 0.02 * noise[0])
        margin = bs.ebitda_margin(u, h, prog) + 0.01 * noise[1]
        ebitda = revenue * margin
        assets = assets0 * np.exp(lr - lr0)
        debt = assets * bs.debt_ratio(u, h, prog)
        st_share = np.clip(u.short_term_share + 0.3 * prog + 0.03 * np.maximum(-h, 0), 0.05,
                           0.85)
        short_debt = debt * st_share
        liabilities = debt + assets * u.other_liabilities
        interest = debt * rate / 4.0
        pretax = ebitda - 0.05 * revenue - interest
        tax = 0.25 * np.maximum(pretax, 0.0)
        ocf = ebitda - interest - tax + revenue * (0.02 * noise[2] - 0.06 * prog)
        cash = assets * np.clip(u.cash_ratio + 0.015 * h - 0.07 * prog + 0.005 * noise[3],
                                0.005, 0.5)
        cols = {
            "total_assets": assets, "total_liabilities": liabilities,
            "equity": assets - liabilities, "revenue": revenue, "ebitda": ebitda,
            "net_income": pretax - tax, "operating_cash_flow": ocf,
            "free_cash_flow": ocf - u.capex_ratio * revenue, "interest_expense": interest,
            "cash": cash, "short_term_debt": short_debt, "long_term_debt": debt - short_debt,
            "shares_outstanding": snap["shares"][q],
        }
        idx = np.nonzero(ok)[0]
        stmts.append(pd.DataFrame({
            "market_id": u.market_id, "issuer_id": u.issuer_ids[idx],
            "period_end": period_end, "report_date": rep[idx],
            **{k: np.round(v[idx], 0) for k, v in cols.items()}, "currency": currency,
        }))
        prev_rev = np.exp(snap["log_revenue"][q - 4]) if q >= 4 else np.full(u.n, np.nan)
        facts.append(pd.DataFrame({
            "name": idx, "quarter": q, "report_date": rep[idx],
            "period_end": period_end, "surprise": hist.surprise[q, idx],
            "revenue": revenue[idx], "revenue_growth_yoy": revenue[idx] / prev_rev[idx] - 1,
            "ebitda_margin": margin[idx], "net_income": (pretax - tax)[idx],
            "coverage": (ebitda / np.maximum(interest, 1e-9))[idx],
        }))
    if not stmts:
        empty = pd.DataFrame({c: [] for c in FUNDAMENTAL_COLUMNS})
        return empty, pd.DataFrame(columns=["name", "quarter", "report_date", "surprise"])
    out = pd.concat(stmts, ignore_index=True)
    out["period_end"] = pd.to_datetime(out["period_end"])
    out = out.sort_values(["report_date", "issuer_id"], kind="mergesort", ignore_index=True)
    return out[FUNDAMENTAL_COLUMNS], pd.concat(facts, ignore_index=True)
