"""Feature step: the six feature tables of a market for a range of sessions, from the price
history (prices, corporate actions), the statements reported up to the last date and the
market's instruments. See ``docs/engines/features.md``.

A range is read once (the warm-up before its first date through its last date) and computed a
year of sessions at a time; each chunk sees exactly the window a run of that chunk alone would
read, so a range equals its dates computed one by one (bit for bit).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from prometheus_dagster.core.inputs import Inputs, InputWindow, Read
from prometheus_dagster.engines.features import (
    FEATURE_TABLES,
    FeatureInputs,
    FeaturesConfig,
    compute_features,
    warmup_sessions,
)
from prometheus_dagster.steps.common import CHUNK_SESSIONS, chunked

# the ingested tables whose quality gate must have passed before features are computed
GATED_TABLES = ("prices_daily", "corporate_actions", "fundamentals")


def feature_warmup(cfg: FeaturesConfig) -> int:
    """Sessions of price history before a date that every feature table's windows need."""
    return max(warmup_sessions(t, cfg) for t in FEATURE_TABLES)


def feature_inputs(cfg: FeaturesConfig) -> Inputs:
    """What the features of date D read: prices and corporate actions of the warm-up before D,
    statements reported on or before D, the market's instruments."""
    warmup = feature_warmup(cfg)
    return Inputs(Read("prices_daily", sessions=warmup),
                  Read("corporate_actions", sessions=warmup),
                  Read("fundamentals", history=True,
                       note="the latest statement reported on or before D"),
                  Read("instruments", reference=True))


def read_feature_inputs(reader: Any, market_id: str, dates: list[pd.Timestamp],
                        cfg: FeaturesConfig) -> tuple[FeatureInputs, Callable[[pd.Timestamp],
                                                                             pd.Timestamp]]:
    """The declared history of the run (nothing dated after its last date), and the function
    giving the first date of the window a single date reads (to cut a chunk's window)."""
    window = InputWindow(reader, feature_inputs(cfg), market_id, dates)
    data = FeatureInputs(prices=window.frame("prices_daily"),
                         corporate_actions=window.frame("corporate_actions"),
                         fundamentals=window.frame("fundamentals"),
                         instruments=window.frame("instruments"))
    return data, feature_window_start(market_id, feature_warmup(cfg))


def feature_window_start(market_id: str, warmup: int) -> Callable[[pd.Timestamp], pd.Timestamp]:
    from prometheus_dagster.core.calendars import trading_calendar

    calendar = trading_calendar(market_id)
    return lambda first: calendar.previous_trading_day(first, warmup)


def within(data: FeatureInputs, start: pd.Timestamp, end: pd.Timestamp) -> FeatureInputs:
    """``data`` as a run of ``start``..``end`` reads it: prices and corporate actions dated in
    the window, statements reported on or before ``end``."""
    def cut(df: pd.DataFrame, col: str, lo: pd.Timestamp | None) -> pd.DataFrame:
        d = pd.to_datetime(df[col])
        keep = d <= end if lo is None else (d >= lo) & (d <= end)
        return df[keep.to_numpy()]

    return FeatureInputs(
        prices=cut(data.prices, "date", start),
        corporate_actions=None if data.corporate_actions is None
        else cut(data.corporate_actions, "date", start),
        fundamentals=None if data.fundamentals is None
        else cut(data.fundamentals, "report_date", None),
        instruments=data.instruments)


def feature_tables(data: FeatureInputs, dates: list[pd.Timestamp], cfg: FeaturesConfig,
                   config_id: str, window_start: Callable[[pd.Timestamp], pd.Timestamp],
                   log: Any = None, what: str = "features",
                   chunk: int = CHUNK_SESSIONS) -> dict[str, pd.DataFrame]:
    """The feature tables of ``dates``, a chunk of sessions at a time (each chunk on the
    window a run of that chunk would read)."""
    parts: dict[str, list[pd.DataFrame]] = {t: [] for t in FEATURE_TABLES}
    for part in chunked(dates, log, what, size=chunk):
        sub = within(data, window_start(part[0]), part[-1])
        for t, frame in compute_features(sub, part, cfg, config_id=config_id).items():
            parts[t].append(frame)
    return {t: _joined(frames) for t, frames in parts.items()}


def _joined(frames: list[pd.DataFrame]) -> pd.DataFrame:
    found = [f for f in frames if len(f)]
    if len(found) <= 1:
        return found[0] if found else frames[0]
    return pd.concat(found, ignore_index=True)


def compute_feature_tables(reader: Any, market_id: str, dates: list[pd.Timestamp],
                           cfg: FeaturesConfig, config_id: str, log: Any = None,
                           ) -> tuple[dict[str, pd.DataFrame], FeatureInputs]:
    """Read once and compute the feature tables of ``dates`` (and the inputs read)."""
    data, start = read_feature_inputs(reader, market_id, dates, cfg)
    return feature_tables(data, dates, cfg, config_id, start, log, f"{market_id} features"), data
