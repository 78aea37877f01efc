"""Day-by-day simulation of an equity market's names (loop over days, numpy over names).

Latent moves live on the business-day grid; the market's sessions observe them (a holiday's move
shows up in the next session's return). A name's log return on day *t* is

    beta * market_t + sector_t + styles_t + alpha_t / 252 - var/2 + sigma_t * eps_t + jumps

* ``alpha`` carries small real premia on observable characteristics: value (standardised log
  book-to-price, book from the balance sheet the issuer reports), low specific vol, small size,
  latent health (which the reported statements reflect) and a persistent latent drift (AR(1),
  half-life months) that past returns reveal, i.e. momentum; deteriorating names get a large
  negative drift.
* ``sigma_t`` = specific vol x regime multiplier x GARCH(1,1) multiplier x a slow log-normal
  stochastic-vol component x distress boost;
  ``eps`` is unit-variance Student-t (fat tails); jumps are rare specific jumps and earnings
  reactions on report days (size proportional to the earnings surprise).
* Distress: each day every healthy name starts a deterioration phase with probability
  ``annual_rate / 252 * exp(-sensitivity * health) * regime multiplier`` (drawn with that day's
  numbers, never by looking ahead). At onset the phase length (months) and its end (crash or
  default) are drawn; health falls through the phase; on the first session after it the price
  is taken to a trough of at most ``crash_trough`` (``default_trough``) of the peak since just
  before onset; a default is the last print, followed by a DELISTING. A crashed issuer is
  recapitalised (half the lost health comes back) and cannot relapse for ``cooldown_days``.
* Dividends: payers go ex on a fixed day of each quarter (first session on/after it), the raw
  price drops by the cash amount; suspended while deteriorating. Splits: a name whose price is
  above its threshold splits on a session with a small daily probability.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from prometheus_dagster.engines.synthetic_market import balance_sheet as bs
from prometheus_dagster.engines.synthetic_market.config import SyntheticMarketConfig
from prometheus_dagster.engines.synthetic_market.regimes import (
    TRADING_DAYS,
    RegionalState,
    regime_param,
)
from prometheus_dagster.engines.synthetic_market.rng import DayDraws, generator
from prometheus_dagster.engines.synthetic_market.universe import Universe

HEALTH_REVERSION = 1.0 / 500.0  # per day
SPLIT_DAILY_PROBABILITY = 0.01
MIN_PRICE = 0.01
CRASH, DEFAULT = 0, 1


@dataclass(frozen=True)
class QuarterPlan:
    """Statement periods of a market's issuers. Quarter 0 is the opening statement (the last
    quarter ending before start_date, drawn from the initial state)."""

    period_end: pd.DatetimeIndex  # (Q,)
    snapshot_day: np.ndarray      # (Q,) business-day index whose close ends the period; -1: opening
    report_date: np.ndarray       # (Q, n) datetime64[ns]; NaT when beyond the calendar
    report_day: np.ndarray        # (Q, n) business-day index of report_date, -1 outside the grid


@dataclass
class DistressEvent:
    name: int
    onset_day: int
    event_day: int
    kind: int            # CRASH or DEFAULT
    peak: float          # total-return level at the peak
    trough: float        # total-return level at the event close


@dataclass
class EquityHistory:
    """Everything later stages read: histories on the business-day grid (rows = days)."""

    universe: Universe
    days: pd.DatetimeIndex
    is_session: np.ndarray
    regime: np.ndarray
    price: np.ndarray            # raw close (truth)
    total_return: np.ndarray     # total-return index (1 before the first day)
    shares: np.ndarray
    dividend: np.ndarray         # cash per share going ex that day
    split_ratio: np.ndarray      # new shares per old share that day (1 = none)
    sigma: np.ndarray            # daily specific vol used that day
    progress: np.ndarray         # deterioration progress in [0, 1], NaN when not deteriorating
    alive: np.ndarray            # has a price that day (a default day is the last)
    plan: QuarterPlan
    snapshots: dict[str, np.ndarray] = field(default_factory=dict)  # (Q, n) latent state
    surprise: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    events: list[DistressEvent] = field(default_factory=list)


def quarter_plan(config: SyntheticMarketConfig, market_id: str, u: Universe,
                 days: pd.DatetimeIndex, all_sessions: pd.DatetimeIndex) -> QuarterPlan:
    """Period ends, snapshot days and report dates (a session ``lag`` days or more after the
    period end; the lag is the issuer's habit plus a per-quarter jitter)."""
    start, end = days[0], days[-1]
    opening = (start - pd.offsets.QuarterEnd(1)).normalize()
    if opening >= start:
        opening = (opening - pd.offsets.QuarterEnd(1)).normalize()
    ends = pd.date_range(start, end, freq="QE")
    period_end = pd.DatetimeIndex([opening, *ends])
    snap = np.concatenate([[-1], np.searchsorted(days, ends, side="right") - 1]).astype(int)
    lo, hi = config.report_lag_days
    q_n = len(period_end)
    report_date = np.full((q_n, u.n), np.datetime64("NaT"), dtype="datetime64[ns]")
    report_day = np.full((q_n, u.n), -1, dtype=int)
    sess = all_sessions.values
    for q, pe in enumerate(period_end):
        jitter = generator(config.seed, f"report_lag:{market_id}", q).integers(-4, 5, u.n)
        lag = np.clip(np.round(u.report_lag.astype(float)) + jitter, lo, hi).astype(int)
        target = (pe + pd.to_timedelta(lag, unit="D")).values
        pos = np.searchsorted(sess, target, side="left")
        ok = pos < len(sess)
        report_date[q, ok] = sess[pos[ok]]
        in_grid = ok & (report_date[q] <= end.to_datetime64())
        idx = np.searchsorted(days.values, report_date[q])
        report_day[q, in_grid] = idx[in_grid]
    return QuarterPlan(period_end, snap, report_date, report_day)


def dividend_calendar(u: Universe, days: pd.DatetimeIndex, is_session: np.ndarray) -> np.ndarray:
    """(days, names) bool: ex-dividend sessions (the first session on/after each payer's
    quarterly target date inside the grid)."""
    out = np.zeros((len(days), u.n), dtype=bool)
    sess_idx = np.nonzero(is_session)[0]
    if len(sess_idx) == 0:
        return out
    sess_dates = days.values[sess_idx]
    payers = np.nonzero(u.dividend_yield > 0)[0]
    q_starts = pd.date_range(days[0].to_period("Q").start_time, days[-1], freq="QS")
    for qs in q_starts:
        months = qs.month + u.dividend_month[payers].astype(int)
        targets = pd.to_datetime(
            {"year": np.full(len(payers), qs.year), "month": months,
             "day": u.dividend_day[payers].astype(int)}).values
        pos = np.searchsorted(sess_dates, targets, side="left")
        ok = (targets >= days.values[0]) & (pos < len(sess_dates))
        out[sess_idx[pos[ok]], payers[ok]] = True
    return out


def simulate_equities(config: SyntheticMarketConfig, u: Universe, days: pd.DatetimeIndex,
                      is_session: np.ndarray, region: RegionalState,
                      all_sessions: pd.DatetimeIndex) -> EquityHistory:
    n_days, n = len(days), u.n
    f, dcfg = config.factors, config.distress
    sqrt_td = np.sqrt(TRADING_DAYS)
    n_sectors = len(u.sector_names)
    draws = DayDraws(config.seed, f"eq:{u.market_id}", {
        "eps": ("t", (n,)), "z": ("normal", (n, 5)), "u": ("uniform", (n, 6)),
        "sector": ("normal", (n_sectors,)), "style": ("normal", (3,)),
    }, t_df=f.t_degrees_of_freedom)
    plan = quarter_plan(config, u.market_id, u, days, all_sessions)
    ex_day = dividend_calendar(u, days, is_session)
    idio_mult = regime_param(config, "idio_vol_multiplier")
    dist_mult = regime_param(config, "distress_multiplier")

    # report days -> [(quarter, names)]
    reports: dict[int, list[tuple[int, np.ndarray]]] = {}
    for q in range(plan.report_day.shape[0]):
        for t in np.unique(plan.report_day[q][plan.report_day[q] >= 0]):
            reports.setdefault(int(t), []).append((q, np.nonzero(plan.report_day[q] == t)[0]))
    snap_of_day = {int(t): q for q, t in enumerate(plan.snapshot_day) if t >= 0}

    # state
    price = u.price0.astype(float).copy()
    shares = np.exp(u.log_cap0.astype(float)) / price
    tr = np.ones(n)
    health = u.health0.astype(float).copy()
    hbar = u.health_mean.astype(float)
    drift = u.drift0.astype(float).copy()
    assets0 = bs.opening_assets(u)
    lr0 = bs.opening_log_revenue(u)
    lr = lr0.copy()
    g2 = np.ones(n)
    sv_phi = 0.5 ** (1.0 / f.stochastic_vol_half_life_days)
    log_sv = f.stochastic_vol_sd * generator(config.seed, f"sv0:{u.market_id}").standard_normal(n)
    div_ps = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    distressed = np.zeros(n, dtype=bool)
    onset = np.zeros(n, dtype=int)
    due_day = np.zeros(n, dtype=int)
    kind = np.zeros(n, dtype=int)
    drop = np.zeros(n)
    cooldown = np.zeros(n, dtype=int)
    spec_daily = u.specific_vol.astype(float) / sqrt_td
    beta = u.beta.astype(float)
    growth = u.growth.astype(float) / TRADING_DAYS
    low_vol = u.low_vol_score.astype(float)
    phi = 0.5 ** (1.0 / f.momentum_half_life_days)
    h_sd = np.sqrt(2 * HEALTH_REVERSION)
    haz_base = dcfg.annual_rate / TRADING_DAYS

    q_n = len(plan.period_end)
    snap_names = ("health", "log_revenue", "shares", "progress", "price")
    snaps = {k: np.full((q_n, n), np.nan) for k in snap_names}
    surprise = np.zeros((q_n, n))

    def take_snapshot(q: int, prog: np.ndarray) -> None:
        for key, val in zip(snap_names, (health, lr, shares, prog, price), strict=True):
            snaps[key][q] = val
        prev = snaps["health"][q - 1] if q > 0 else health
        noise = generator(config.seed, f"surprise:{u.market_id}", q).standard_normal(n)
        surprise[q] = np.clip((health - prev) / 0.35 + 0.7 * noise, -3, 3)

    take_snapshot(0, np.zeros(n))

    h_price = np.empty((n_days, n))
    h_tr = np.empty((n_days, n))
    h_shares = np.empty((n_days, n))
    h_div = np.zeros((n_days, n))
    h_split = np.ones((n_days, n), dtype=np.float32)
    h_sigma = np.empty((n_days, n), dtype=np.float32)
    h_prog = np.full((n_days, n), np.nan, dtype=np.float32)
    h_alive = np.zeros((n_days, n), dtype=bool)
    events: list[DistressEvent] = []

    for t in range(n_days):
        d = draws.day(t)
        z, uu = d["z"], d["u"]
        reg = region.regime[t]
        session = bool(is_session[t])
        span = np.maximum(due_day - onset, 1)
        prog = np.where(distressed, np.clip((t - onset) / span, 0.0, 1.0), 0.0)

        # observable characteristics (cross-sectional z-scores over live names)
        mcap = price * shares
        book = assets0 * np.exp(lr - lr0) * bs.equity_ratio(u, health, prog)
        log_bp = np.log(np.maximum(book, 1e-3 * mcap) / mcap)
        z_bp, z_cap, z_mom = (_zscore(v, alive) for v in (log_bp, np.log(mcap), drift))

        alpha = (f.value_premium * z_bp + f.low_vol_premium * low_vol
                 - f.size_premium * z_cap + f.quality_premium * health + drift
                 + np.where(distressed, dcfg.annual_drift, 0.0))
        sigma = (spec_daily * idio_mult[reg] * np.sqrt(g2) * (1 + dcfg.vol_increase * prog)
                 * np.exp(log_sv - f.stochastic_vol_sd ** 2))
        sector_ret = f.sector_vol / sqrt_td * idio_mult[reg] * d["sector"]
        style = f.style_vol / sqrt_td * d["style"]
        jump = np.where(uu[:, 0] < f.specific_jump_probability, f.specific_jump_sd * z[:, 3],
                        0.0)
        x = (beta * region.market_return[t] + sector_ret[u.sector]
             - z_cap * style[0] + z_bp * style[1] + z_mom * style[2]
             + alpha / TRADING_DAYS - 0.5 * sigma * sigma + sigma * d["eps"] + jump)
        for q, names in reports.get(t, ()):
            x[names] += f.earnings_jump_sd * surprise[q, names]
        x = np.clip(x, -1.5, 1.0)

        # distress phases that end today (on a session): take the price to its trough
        due = distressed & alive & (t >= due_day) & session
        for i in np.nonzero(due)[0]:
            lo_t = max(onset[i] - dcfg.peak_lookback_days, 0)
            peak = max(h_tr[lo_t:t, i].max() if t > lo_t else tr[i], tr[i])
            lo_f, hi_f = dcfg.default_trough if kind[i] == DEFAULT else dcfg.crash_trough
            target = peak * (lo_f + (hi_f - lo_f) * uu[i, 5])
            x[i] = min(x[i], np.log(target / tr[i]))
            events.append(DistressEvent(int(i), int(onset[i]), t, int(kind[i]), float(peak),
                                        float(tr[i] * np.exp(x[i]))))

        gross = np.where(alive, np.exp(x), 1.0)
        tr = tr * gross
        # dividends (sticky per-share amounts), suspended while deteriorating or weak
        pay = ex_day[t] & alive & ~distressed & (health > -1.5) & ~due
        if pay.any():
            target = u.dividend_yield[pay] / 4.0 * price[pay]
            old = div_ps[pay]
            amount = np.where(old > 0, np.clip(target, 0.9 * old, 1.15 * old), target)
            div_ps[pay] = np.minimum(np.round(amount, 2), 0.1 * price[pay])
        cash = np.where(pay, div_ps, 0.0)
        new_price = price * gross - cash
        split = (session & alive & ~distressed & ~due & (new_price > u.split_threshold)
                 & (uu[:, 4] < SPLIT_DAILY_PROBABILITY))
        ratio = np.where(split, np.clip(np.floor(new_price / (0.4 * u.split_threshold)), 2, 10),
                         1.0)
        price = np.maximum(new_price / ratio, MIN_PRICE)
        shares = shares * ratio
        div_ps = div_ps / ratio

        h_price[t], h_tr[t], h_shares[t] = price, tr, shares
        h_div[t], h_split[t], h_sigma[t] = cash, ratio, sigma
        h_prog[t] = np.where(distressed, prog, np.nan)
        h_alive[t] = alive

        # resolve events: crashes survive (cooldown), defaults are delisted after today
        if due.any():
            crashed = due & (kind == CRASH)
            distressed &= ~due
            cooldown[crashed] = t + dcfg.cooldown_days
            health[crashed] += 0.5 * dcfg.health_drop  # recapitalised after the crash
            alive &= ~(due & (kind == DEFAULT))

        # latent dynamics
        new_health = np.where(distressed, health - drop + 0.3 * h_sd * z[:, 0],
                              health + HEALTH_REVERSION * (hbar - health) + h_sd * z[:, 0])
        lr = lr + growth + 0.3 * (new_health - health) + 0.004 * z[:, 2]
        health = new_health
        drift = phi * drift + np.sqrt(1 - phi * phi) * f.momentum_sd * z[:, 1]
        log_sv = sv_phi * log_sv + np.sqrt(1 - sv_phi * sv_phi) * f.stochastic_vol_sd * z[:, 4]
        g2 = (1 - f.garch_alpha - f.garch_beta) + f.garch_alpha * d["eps"] ** 2 \
            + f.garch_beta * g2

        # distress onsets (decided with today's draws only)
        hazard = haz_base * np.exp(-dcfg.health_sensitivity * health) * dist_mult[reg]
        start = alive & ~distressed & (t >= cooldown) & (uu[:, 1] < hazard)
        if start.any():
            dur = np.round(dcfg.min_duration_days + uu[:, 2]
                           * (dcfg.max_duration_days - dcfg.min_duration_days)).astype(int)
            onset[start] = t
            due_day[start] = t + dur[start]
            kind[start] = np.where(uu[start, 3] < dcfg.default_probability, DEFAULT, CRASH)
            drop[start] = dcfg.health_drop / dur[start]
            distressed |= start

        snap = snap_of_day.get(t)
        if snap is not None:
            span = np.maximum(due_day - onset, 1)
            take_snapshot(snap, np.where(distressed, np.clip((t - onset) / span, 0, 1), 0.0))

    return EquityHistory(
        universe=u, days=days, is_session=is_session, regime=region.regime, price=h_price,
        total_return=h_tr, shares=h_shares, dividend=h_div, split_ratio=h_split,
        sigma=h_sigma, progress=h_prog, alive=h_alive, plan=plan, snapshots=snaps,
        surprise=surprise, events=events)


def _zscore(v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    if mask.sum() < 2:
        return np.zeros_like(v)
    live = v[mask]
    sd = live.std()
    return (v - live.mean()) / (sd if sd > 0 else 1.0)
