"""The embedded synthetic market: a deterministic, seed-driven data vendor for every table the
pipeline ingests (reference data, prices, corporate actions, fundamentals, macro, news) plus the
hidden ground truth (regime path, distress events) that evaluations score engines against.

Pure engine code: no Dagster, no warehouse, no wall clock. Modules:

* ``config``        -- ``SyntheticMarketConfig`` and defaults
* ``rng``           -- per-day random streams (no dependence on the simulated end date)
* ``regimes``       -- hidden regime chain and regional market factors
* ``universe``      -- issuers and instruments
* ``balance_sheet`` -- latent state -> balance-sheet ratios
* ``equities``      -- day-by-day simulation of names (factors, premia, distress, dividends,
  splits)
* ``prices``        -- vendor bars with glitches, index, FX, corporate actions
* ``fundamentals``  -- quarterly statements with report lags
* ``macro``         -- rates, spreads, implied vol, commodities, CPI, unemployment
* ``news``          -- template articles tied to events
* ``generator``     -- ``SyntheticMarket``, the public entry point
"""

from prometheus_dagster.engines.synthetic_market.config import (
    REGIMES,
    SyntheticMarketConfig,
)
from prometheus_dagster.engines.synthetic_market.generator import SyntheticMarket

__all__ = ["REGIMES", "SyntheticMarket", "SyntheticMarketConfig"]
