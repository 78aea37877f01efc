"""The hidden regime process and the regional market factors it drives.

Global chain. A Markov chain over REGIMES on the business-day grid: in regime *s* a day ends the
regime with probability ``1 / mean_duration_days[s]``; the next regime is drawn from the
configured transition weights. The chain starts in CALM.

Regional deviations. Each equity market follows the global regime, except that it may escalate
one notch on its own (CALM/RECOVERY -> HIGH_VOL, HIGH_VOL -> GRINDING) for a few weeks.

Market factor. The regional market factor's log return on day *t* is
``drift[r]/252 - var/2 + sigma_t * e_t + J_t``: ``e_t`` is a unit-variance Student-t shock that
mixes the global shock (weight ``global_loading``) with a regional one, ``sigma_t`` is the
regime's vol times a GARCH(1,1) multiplier (volatility clustering), and ``J_t`` a global jump
(frequent in crashes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from prometheus_dagster.engines.synthetic_market.config import (
    REGIMES,
    EquityMarketConfig,
    SyntheticMarketConfig,
)
from prometheus_dagster.engines.synthetic_market.rng import DayDraws

TRADING_DAYS = 252.0
CALM, HIGH_VOL, GRINDING, CRASH, RECOVERY = range(len(REGIMES))
# one notch worse, for regional escalations
ESCALATE = np.array([HIGH_VOL, GRINDING, GRINDING, CRASH, HIGH_VOL])


def regime_param(config: SyntheticMarketConfig, name: str) -> np.ndarray:
    """One regime parameter as an array indexed by regime code."""
    return np.array([getattr(config.regimes[r], name) for r in REGIMES], dtype=float)


def transition_matrix(config: SyntheticMarketConfig) -> np.ndarray:
    """Daily transition probabilities P[from, to]."""
    k = len(REGIMES)
    p = np.zeros((k, k))
    for i, src in enumerate(REGIMES):
        stay = 1.0 - 1.0 / config.regimes[src].mean_duration_days
        weights = config.regime_transitions[src]
        total = sum(weights.values())
        for j, dst in enumerate(REGIMES):
            p[i, j] = stay if i == j else (1 - stay) * weights.get(dst, 0.0) / total
    return p


@dataclass(frozen=True)
class GlobalState:
    """Per business day: global regime code, global unit shock and global jump (log size)."""

    days: pd.DatetimeIndex
    regime: np.ndarray
    shock: np.ndarray
    jump: np.ndarray


@dataclass(frozen=True)
class RegionalState:
    """Per business day: the region's regime code, market-factor log return and its
    conditional daily vol."""

    market_id: str
    regime: np.ndarray
    market_return: np.ndarray
    market_vol: np.ndarray


def simulate_global(config: SyntheticMarketConfig, days: pd.DatetimeIndex) -> GlobalState:
    n = len(days)
    draws = DayDraws(config.seed, "global", {
        "u_end": ("uniform", ()), "u_next": ("uniform", ()), "shock": ("t", ()),
        "u_jump": ("uniform", ()), "z_jump": ("normal", ()),
    }, t_df=config.factors.t_degrees_of_freedom).all(n)
    p = transition_matrix(config)
    stay = np.diag(p).copy()
    moves = p.copy()
    np.fill_diagonal(moves, 0.0)
    cum = np.cumsum(moves / moves.sum(axis=1, keepdims=True), axis=1)
    regime = np.empty(n, dtype=np.int8)
    state = CALM
    for t in range(n):
        if t > 0 and draws["u_end"][t] >= stay[state]:
            state = int(min(np.searchsorted(cum[state], draws["u_next"][t], side="right"),
                            len(REGIMES) - 1))
        regime[t] = state
    jump_p = regime_param(config, "jump_probability")[regime]
    jump = np.where(
        draws["u_jump"] < jump_p,
        regime_param(config, "jump_mean")[regime] + regime_param(config, "jump_sd")[regime]
        * draws["z_jump"],
        0.0,
    )
    return GlobalState(days, regime, draws["shock"], jump)


def simulate_region(config: SyntheticMarketConfig, market_id: str,
                    glob: GlobalState) -> RegionalState:
    """Regional regime path and market factor of ``market_id`` (any equity market id; markets
    not in the config use default settings, e.g. for macro series of an unlisted region)."""
    market = config.markets.get(market_id) or EquityMarketConfig()
    n = len(glob.days)
    draws = DayDraws(config.seed, f"region:{market_id}", {
        "u_start": ("uniform", ()), "u_end": ("uniform", ()), "shock": ("t", ()),
    }, t_df=config.factors.t_degrees_of_freedom).all(n)
    # local escalations
    escalated = np.zeros(n, dtype=bool)
    active = False
    end_p = 1.0 / market.local_stress_days
    can_start = np.isin(glob.regime, [CALM, HIGH_VOL, RECOVERY])
    for t in range(n):
        if active:
            active = draws["u_end"][t] >= end_p and glob.regime[t] != CRASH
        elif can_start[t]:
            active = draws["u_start"][t] < market.local_stress_rate
        escalated[t] = active
    regime = np.where(escalated, ESCALATE[glob.regime], glob.regime).astype(np.int8)
    # market factor with GARCH(1,1) clustering
    rho = market.global_loading
    shock = rho * glob.shock + np.sqrt(1 - rho * rho) * draws["shock"]
    a, b = config.factors.garch_alpha, config.factors.garch_beta
    base_vol = regime_param(config, "market_vol")[regime] / np.sqrt(TRADING_DAYS)
    h = np.empty(n)
    level = 1.0
    for t in range(n):
        h[t] = level
        level = (1 - a - b) + a * shock[t] ** 2 + b * level
    vol = base_vol * np.sqrt(h)
    drift = regime_param(config, "market_drift")[regime] / TRADING_DAYS
    ret = drift - 0.5 * vol * vol + vol * shock + glob.jump
    return RegionalState(market_id, regime, ret, vol)


def regime_names(codes: np.ndarray) -> np.ndarray:
    return np.asarray(REGIMES, dtype=object)[codes]
