"""Encoder refit step: the numeric window encoder and the joint text <-> window encoder of a
market for a year Y, trained on data dated before 1 January Y (``engines/encoders/
training.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from prometheus_dagster.core.calendars import trading_calendar
from prometheus_dagster.core.inputs import Inputs, InputWindow, Read
from prometheus_dagster.engines.encoders import EncoderBundle, EncodersConfig, train_encoder_bundle
from prometheus_dagster.engines.features import FeaturePanel, FeaturesConfig
from prometheus_dagster.steps.encoders import PANEL_TABLES, read_text_vectors

# a refit reads every row dated before its year (an expanding window; with
# refit.max_history_years the older rows are dropped after the read)
ENCODER_MODEL_INPUTS = Inputs(
    *(Read(t, history=True) for t in PANEL_TABLES),
    Read("instruments", reference=True), Read("issuers", reference=True),
    Read("fundamentals", history=True, note="statements reported before the year"),
    Read("text_embeddings", history=True, note="the articles of the joint training pairs"),
    Read("news_links", history=True, note="which entity each article is about"))


def training_span(market_id: str, year_start: pd.Timestamp, cfg: EncodersConfig,
                  ) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(first date, trained_through) of the data behind the model for the year."""
    cut = trading_calendar(market_id).previous_trading_day(year_start)
    first = (pd.Timestamp(year_start) - pd.DateOffset(years=cfg.refit.max_history_years)
             if cfg.refit.max_history_years else pd.Timestamp("1900-01-01"))
    return first, cut


@dataclass
class TrainingData:
    panel: FeaturePanel
    sessions: pd.DatetimeIndex
    texts: pd.DataFrame
    links: pd.DataFrame


def _since(frame: pd.DataFrame, column: str, first: pd.Timestamp) -> pd.DataFrame:
    return frame[pd.to_datetime(frame[column]) >= first].reset_index(drop=True)


def read_training_data(reader: Any, market_id: str, first: pd.Timestamp, cut: pd.Timestamp,
                       cfg: EncodersConfig) -> TrainingData:
    """Features, text vectors and links dated in [first, cut] (statements: reported on or
    before ``cut``)."""
    window = InputWindow(reader, ENCODER_MODEL_INPUTS, market_id, [cut])

    def dated(table: str) -> pd.DataFrame:
        return _since(window.frame(table), "date", first)

    panel = FeaturePanel(
        returns=dated("returns_daily"), volatility=dated("volatility_daily"),
        liquidity=dated("liquidity_daily"), prices=dated("prices_daily"),
        instruments=window.frame("instruments"), issuers=window.frame("issuers"),
        fundamentals=window.frame("fundamentals"))
    sessions = pd.DatetimeIndex(sorted(pd.to_datetime(panel.returns["date"]).unique()))
    texts = read_text_vectors(window, cfg.text.model_id, start=first)
    links = dated("news_links")
    return TrainingData(panel, sessions, texts, links)


def train_encoders(data: TrainingData, cut: pd.Timestamp, cfg: EncodersConfig,
                   fcfg: FeaturesConfig, log: Callable[[str], None] | None = None,
                   ) -> tuple[EncoderBundle, dict[str, Any]]:
    return train_encoder_bundle(data.panel, data.sessions, data.texts, data.links, cut, cfg,
                                fcfg, log=log)
