"""Template news (English) tied to the simulated events.

Per equity market and session:

* earnings articles on report dates (beat/miss wording from the earnings surprise, revenue,
  growth, margin and interest coverage of the published statement);
* distress articles while an issuer deteriorates (more frequent and more severe as the phase
  progresses), then a crash or insolvency/delisting article on the event day;
* dividend and split articles on ex-dates; routine company news at ``news_rate`` whose tone
  leans with the issuer's latest reported health;
* one market wrap per session (no issuer; linked to the market index) whose move and mood
  follow the index return, the hidden regime, implied vol and credit spreads.

The FX market gets one wrap per session about the dollar. Timestamps are UTC inside the session
(earnings at the open, wraps just after the close); ``date`` is the session date.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from prometheus_dagster.core.schemas import get_schema
from prometheus_dagster.engines.synthetic_market.config import REGIMES, SyntheticMarketConfig
from prometheus_dagster.engines.synthetic_market.equities import DEFAULT, EquityHistory
from prometheus_dagster.engines.synthetic_market.rng import DayDraws
from prometheus_dagster.engines.synthetic_market.universe import index_id

ARTICLE_COLUMNS = get_schema("news_articles").column_names
LINK_COLUMNS = get_schema("news_links").column_names

DISTRESS_TEMPLATES = (
    (  # early
        ("{name} shares slide as analysts question demand outlook",
         "Analysts flagged slowing orders at {name}; several cut their targets."),
        ("{name} faces margin pressure, sources say",
         "People familiar with the matter said {name} is struggling with rising costs."),
        ("Rating agency puts {name} on negative watch",
         "The agency cited weakening cash flow and higher leverage at {name}."),
    ),
    (  # middle
        ("{name} downgraded as leverage climbs",
         "{name}'s debt load has risen sharply while earnings fall; the outlook is negative."),
        ("{name} draws down credit line amid liquidity concerns",
         "{name} tapped its revolving facility, fuelling worries about its cash position."),
        ("{name} withdraws full-year guidance",
         "Management at {name} said visibility had deteriorated and suspended its forecast."),
    ),
    (  # late
        ("{name} hires restructuring advisers",
         "{name} has retained advisers to review options for its balance sheet."),
        ("Lenders to {name} demand covenant waivers",
         "{name} is in talks with creditors after breaching financial covenants."),
        ("{name} bonds tumble on default fears",
         "{name}'s bonds fell to distressed levels as investors priced in a restructuring."),
    ),
)
ROUTINE = {
    1: (("{name} wins multi-year contract", "{name} said the agreement expands its backlog."),
        ("{name} launches new product line", "{name} expects the launch to support growth."),
        ("{name} raises outlook at investor day",
         "Management at {name} sounded upbeat about demand.")),
    0: (("{name} appoints new chief financial officer",
         "{name} named a new CFO effective next quarter."),
        ("{name} to present at industry conference",
         "{name} will update investors on strategy."),
        ("{name} completes small acquisition", "{name} did not disclose terms.")),
    -1: (("{name} faces product recall", "{name} said the recall would weigh on results."),
         ("{name} loses key customer", "The customer accounted for a notable share of sales."),
         ("{name} shares fall after analyst downgrade",
          "An analyst cut {name} to underweight, citing weak momentum.")),
}
MOOD = {
    "CALM": ("Trading was orderly and volatility stayed subdued.",
             "Investors continued to favour risk assets in a quiet market."),
    "HIGH_VOL": ("Swings were large as investors weighed growth worries.",
                 "Choppy trading reflected uncertainty about the outlook."),
    "GRINDING": ("Risk aversion persisted and credit markets remained under strain.",
                 "Selling pressure continued as investors cut exposure."),
    "CRASH": ("Panic selling gripped markets and liquidity thinned.",
              "Investors fled to safety amid fears of a deeper crisis."),
    "RECOVERY": ("Sentiment improved as fear receded and spreads tightened.",
                 "Bargain hunters returned and the rebound gathered pace."),
}


@dataclass(frozen=True)
class SessionTimes:
    """Session dates of a market inside the grid with their open/close in UTC."""

    day_index: np.ndarray     # business-day index of each session
    dates: np.ndarray         # datetime64
    open_utc: np.ndarray      # datetime64
    close_utc: np.ndarray


class _Collector:
    def __init__(self, market_id: str):
        self.market_id = market_id
        self.articles: list[tuple] = []
        self.links: list[tuple] = []

    def add(self, kind: str, date: np.datetime64, ts: np.datetime64, source: str,
            headline: str, body: str, symbol: str | None = None, issuer: str | None = None,
            instrument: str | None = None) -> None:
        day = pd.Timestamp(date).strftime("%Y%m%d")
        aid = f"{self.market_id}-{day}-{kind}" + (f"-{symbol}" if symbol else "")
        self.articles.append((aid, self.market_id, ts, date, source, "en", headline, body))
        self.links.append((aid, self.market_id, date, issuer, instrument))

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        arts = pd.DataFrame(self.articles, columns=ARTICLE_COLUMNS)
        links = pd.DataFrame(self.links, columns=LINK_COLUMNS)
        for df in (arts, links):
            df["date"] = pd.to_datetime(df["date"])
        arts["timestamp"] = pd.to_datetime(arts["timestamp"])
        order = arts.sort_values(["date", "timestamp", "article_id"], kind="mergesort").index
        arts = arts.loc[order].reset_index(drop=True)
        links = links.set_index("article_id").loc[arts["article_id"]].reset_index()
        return arts, links[LINK_COLUMNS]


def _pct(x: float) -> str:
    return f"{abs(100 * x):.1f}%"


def _move_verb(r: float) -> str:
    if r <= -0.03:
        return "plunge"
    if r <= -0.01:
        return "fall"
    if r < 0:
        return "slip"
    if r < 0.005:
        return "edge up"
    return "jump" if r >= 0.02 else "rise"


def _millions(x: float) -> str:
    return f"{x / 1e6:,.0f} million"


def equity_news(config: SyntheticMarketConfig, hist: EquityHistory, times: SessionTimes,
                facts: pd.DataFrame, currency: str, index_return: np.ndarray,
                implied_vol: np.ndarray, spread: np.ndarray,
                region_name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    u = hist.universe
    col = _Collector(u.market_id)
    draws = DayDraws(config.seed, f"news:{u.market_id}",
                     {"u": ("uniform", (u.n, 3)), "m": ("uniform", (2,))}).all(len(hist.days))
    pos_of_day = {int(t): k for k, t in enumerate(times.day_index)}
    ids, names, syms = u.instrument_ids, u.names, u.symbols
    iss = u.issuer_ids

    def when(k: int, frac: float) -> np.datetime64:
        o, c = times.open_utc[k], times.close_utc[k]
        return (o + (c - o) * frac).astype("datetime64[s]").astype("datetime64[ns]")

    def add_issuer(kind: str, k: int, i: int, frac: float, headline: str, body: str,
                   source: str = "Synthetic Newswire") -> None:
        col.add(kind, times.dates[k], when(k, frac), source, headline, body, syms[i], iss[i],
                ids[i])

    # earnings
    for row in facts.itertuples(index=False):
        k = int(np.searchsorted(times.dates, np.datetime64(row.report_date)))
        if k >= len(times.dates) or times.dates[k] != np.datetime64(row.report_date):
            continue
        i, name = int(row.name), names[int(row.name)]
        growth = row.revenue_growth_yoy
        period = pd.Timestamp(row.period_end)
        q_label = f"Q{period.quarter} {period.year}"
        if row.surprise >= 0:
            headline = f"{name} beats expectations for {q_label}"
        else:
            headline = f"{name} misses estimates for {q_label}"
        parts = [f"{name} ({syms[i]}) reported revenue of {currency} {_millions(row.revenue)} "
                 f"for the quarter ended {period:%d %B %Y}"]
        if np.isfinite(growth):
            parts[0] += f", {'up' if growth >= 0 else 'down'} {_pct(growth)} from a year earlier"
        parts.append(f"EBITDA margin was {100 * row.ebitda_margin:.1f}% and net "
                     f"{'income' if row.net_income >= 0 else 'loss'} was {currency} "
                     f"{_millions(abs(row.net_income))}")
        strength = abs(row.surprise)
        if row.surprise >= 0:
            parts.append("Results came in well ahead of analyst forecasts" if strength > 1
                         else "Results were slightly ahead of analyst forecasts")
        else:
            parts.append("Results fell well short of analyst forecasts" if strength > 1
                         else "Results were slightly below analyst forecasts")
        if row.coverage < 3:
            parts.append(f"Interest coverage weakened to {row.coverage:.1f}x, raising "
                         "questions about the balance sheet")
        add_issuer("EARN", k, i, 0.0, headline, ". ".join(parts) + ".", "Earnings Wire")

    sess = times.day_index
    uu = draws["u"][sess]
    # distress coverage
    prog = hist.progress[sess].astype(float)
    alive = hist.alive[sess]
    kk, ii = np.nonzero(alive & ~np.isnan(prog) & (uu[..., 0] < 0.03 + 0.15 *
                                                     np.nan_to_num(prog)))
    for k, i in zip(kk.tolist(), ii.tolist(), strict=True):
        stage = DISTRESS_TEMPLATES[min(int(prog[k, i] * 3), 2)]
        head, body = stage[int(uu[k, i, 1] * len(stage))]
        add_issuer("DIST", k, i, 0.2 + 0.6 * uu[k, i, 2], head.format(name=names[i]),
                   body.format(name=names[i]))
    # events
    for e in hist.events:
        found = pos_of_day.get(e.event_day)
        if found is None:
            continue
        k = found
        i, name, loss = e.name, names[e.name], e.trough / e.peak - 1
        if e.kind == DEFAULT:
            add_issuer("DEFAULT", k, e.name, 0.5, f"{name} files for insolvency; shares to be "
                       "delisted", f"{name} said it had filed for insolvency after failing to "
                       f"reach a deal with creditors. The shares have lost {_pct(loss)} from "
                       "their peak and will be removed from trading.")
        else:
            add_issuer("CRASH", k, e.name, 0.5, f"{name} shares collapse as rescue hopes fade",
                       f"{name} shares are down {_pct(loss)} from their recent peak after the "
                       "company warned on liquidity and announced an emergency capital raise.")
    # dividends and splits
    kk, ii = np.nonzero((hist.dividend[sess] > 0) & alive)
    for k, i in zip(kk.tolist(), ii.tolist(), strict=True):
        amount = hist.dividend[sess[k], i]
        add_issuer("DIV", k, i, 0.0, f"{names[i]} goes ex-dividend",
                   f"{names[i]} shares trade ex-dividend today; the quarterly dividend is "
                   f"{currency} {amount:.2f} per share.")
    kk, ii = np.nonzero((hist.split_ratio[sess] != 1) & alive)
    for k, i in zip(kk.tolist(), ii.tolist(), strict=True):
        r = float(hist.split_ratio[sess[k], i])
        add_issuer("SPLIT", k, i, 0.0, f"{names[i]} shares start trading after {r:g}-for-1 split",
                   f"Each {names[i]} share has been replaced by {r:g} new shares.")
    # routine news, tone from the latest reported health
    tone_health = _latest_reported_health(hist, facts, sess)
    kk, ii = np.nonzero(alive & np.isnan(prog) & (uu[..., 0] < config.news_rate))
    for k, i in zip(kk.tolist(), ii.tolist(), strict=True):
        p_pos = 1 / (1 + np.exp(-2 * tone_health[k, i]))
        v = uu[k, i, 1]
        tone = 1 if v < 0.6 * p_pos else (-1 if v > 1 - 0.6 * (1 - p_pos) else 0)
        head, body = ROUTINE[tone][int(uu[k, i, 2] * 3)]
        add_issuer("NEWS", k, i, 0.1 + 0.8 * uu[k, i, 2], head.format(name=names[i]),
                   body.format(name=names[i]))
    # market wraps
    m = draws["m"][sess]
    regime = hist.regime[sess]
    for k in range(len(sess)):
        r = index_return[k]
        mood = MOOD[REGIMES[regime[k]]][int(m[k, 0] * 2)]
        headline = f"{region_name} stocks {_move_verb(r)} {_pct(r)}"
        body = (f"The {region_name} equity index closed {'up' if r >= 0 else 'down'} "
                f"{_pct(r)}. {mood} The implied volatility index ended at "
                f"{implied_vol[sess[k]]:.1f} and credit spreads stood at "
                f"{spread[sess[k]]:.2f} percentage points.")
        col.add("WRAP", times.dates[k], times.close_utc[k] + np.timedelta64(15, "m"),
                "Market Desk", headline, body, instrument=index_id(u.market_id))
    return col.frames()


def _latest_reported_health(hist: EquityHistory, facts: pd.DataFrame,
                            sess: np.ndarray) -> np.ndarray:
    """(sessions, names): latent health of the latest statement published by each session (0
    before the first)."""
    n = hist.universe.n
    latest = np.full((len(sess), n), -1, dtype=int)
    if not facts.empty:
        days = hist.days.values[sess]
        k = np.searchsorted(days, facts["report_date"].to_numpy(dtype="datetime64[ns]"))
        ok = k < len(sess)
        np.maximum.at(latest, (k[ok], facts["name"].to_numpy()[ok]),
                      facts["quarter"].to_numpy()[ok])
        latest = np.maximum.accumulate(latest, axis=0)
    health = hist.snapshots["health"][np.maximum(latest, 0), np.arange(n)]
    return np.where(latest >= 0, health, 0.0)


def fx_news(config: SyntheticMarketConfig, times: SessionTimes, fx_prices: pd.DataFrame,
            regime: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One wrap per FX session about the dollar, from the first configured pair's move."""
    col = _Collector(config.fx_market)
    if fx_prices.empty:
        return col.frames()
    pair = next(iter(config.fx_pairs))
    px = fx_prices[fx_prices["instrument_id"] == f"FX:{pair}"].set_index("date")["close"]
    closes = px.reindex(pd.DatetimeIndex(times.dates)).to_numpy()
    draws = DayDraws(config.seed, f"news:{config.fx_market}", {"m": ("uniform", (1,))}) \
        .all(len(regime))["m"][times.day_index]
    for k in range(len(times.dates)):
        if k == 0 or not np.isfinite(closes[k]) or not np.isfinite(closes[k - 1]):
            continue
        r = closes[k] / closes[k - 1] - 1
        mood = MOOD[REGIMES[regime[times.day_index[k]]]][int(draws[k, 0] * 2)]
        headline = f"{pair} {'rises' if r >= 0 else 'falls'} {_pct(r)} at {closes[k]:.4f}"
        body = f"{pair} ended the New York session at {closes[k]:.4f}. {mood}"
        col.add("WRAP", times.dates[k], times.open_utc[k] + np.timedelta64(21, "h"),
                "FX Desk", headline, body)
    return col.frames()
