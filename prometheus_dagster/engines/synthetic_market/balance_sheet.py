"""How an issuer's latent state maps to balance-sheet ratios.

Shared by the price simulation (book value drives the value premium) and the fundamentals
statements, so that what is reported is what was priced. ``health`` is the issuer's latent
financial health (about N(0, 1) across issuers); ``progress`` in [0, 1] is how far a
deterioration phase has gone (0 outside one).
"""

from __future__ import annotations

import numpy as np

from prometheus_dagster.engines.synthetic_market.universe import Universe


def debt_ratio(u: Universe, health: np.ndarray, progress: np.ndarray) -> np.ndarray:
    """Financial debt / total assets: rises as health falls and during deterioration."""
    return np.clip(u.debt_ratio - 0.05 * health + 0.18 * progress, 0.0,
                   0.97 - u.other_liabilities)


def equity_ratio(u: Universe, health: np.ndarray, progress: np.ndarray) -> np.ndarray:
    """Book equity / total assets."""
    return 1.0 - debt_ratio(u, health, progress) - u.other_liabilities


def ebitda_margin(u: Universe, health: np.ndarray, progress: np.ndarray) -> np.ndarray:
    return np.clip(u.margin + 0.035 * health - 0.12 * progress, -0.4, 0.65)


def opening_assets(u: Universe) -> np.ndarray:
    """Total assets at the start, chosen so that book / market cap equals the issuer's
    starting book-to-price."""
    zero = np.zeros(u.n)
    return u.book_to_price0 * np.exp(u.log_cap0) / equity_ratio(u, u.health0, zero)


def opening_log_revenue(u: Universe) -> np.ndarray:
    """Log quarterly revenue at the start (assets * annual turnover / 4)."""
    return np.log(opening_assets(u) * u.asset_turnover / 4.0)
