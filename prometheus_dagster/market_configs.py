"""Every configured market has the configs it needs, or the code location does not load.

A market is one entry in configs/markets.yaml (``runs``, ``global_member``); the rest is
derived. What cannot be derived must exist, and a gap fails loudly here instead of leaving a
market silently without an engine:

* a market that runs data needs a trading calendar exchange_calendars knows, and on the embedded
  source a section of the synthetic market config (or to be its FX market);
* a strategy may trade only markets that run the investment chain;
* GLOBAL needs at least one member that runs data when any market runs regimes.
"""

from __future__ import annotations

import os

from prometheus_dagster.core.calendars import (
    global_members,
    history_start,
    load_markets,
    markets_running,
    trading_calendar,
)
from prometheus_dagster.core.config import load_engine_config
from prometheus_dagster.core.errors import ConfigError
from prometheus_dagster.core.ingestion_config import ingestion_config


def market_config_problems() -> list[str]:
    """What is missing, one line per problem (empty: every market is complete)."""
    from prometheus_dagster.engines.strategy import StrategyConfig
    from prometheus_dagster.engines.strategy.loader import load_strategies
    from prometheus_dagster.engines.synthetic_market.config import SyntheticMarketConfig

    problems: list[str] = []
    data = markets_running("data")
    for m in data:
        try:
            start = history_start(m)
            trading_calendar(m).sessions(start, start)
        except Exception as exc:  # noqa: BLE001  (any calendar failure is the problem to report)
            problems.append(f"{m}: its calendar ({load_markets().markets[m].calendar_code}) "
                            f"does not load: {exc}")
    # PROMETHEUS_SOURCE overrides the configured source (resources/__init__.py)
    if (os.environ.get("PROMETHEUS_SOURCE") or ingestion_config().source) == "embedded":
        synthetic = load_engine_config("synthetic_market").typed(SyntheticMarketConfig)
        generated = set(synthetic.markets) | {synthetic.fx_market}
        for m in data:
            if m not in generated:
                problems.append(
                    f"{m} runs '{load_markets().markets[m].runs}' on the embedded source, but "
                    "configs/engines/synthetic_market.yaml generates no data for it: add it under "
                    "'markets:' there, or set 'runs: calendar' in configs/markets.yaml")
    investing = set(markets_running("investment"))
    for sid, loaded in load_strategies().items():
        lacking = [m for m in loaded.typed(StrategyConfig).markets if m not in investing]
        if lacking:
            problems.append(f"strategy {sid} trades {', '.join(lacking)}, which do not run the "
                            "investment chain: set 'runs: investment' in configs/markets.yaml "
                            "or remove them from configs/strategies/" + f"{sid}.yaml")
    if markets_running("regimes") and not global_members():
        problems.append("no market is a global_member in configs/markets.yaml: GLOBAL regimes, "
                        "stability and the brief need at least one")
    return problems


def check_market_configs() -> None:
    """Raise :class:`ConfigError` listing every gap (see the module docstring)."""
    problems = market_config_problems()
    if problems:
        raise ConfigError("configs/markets.yaml: markets lack configs they need:\n  "
                          + "\n  ".join(problems))
