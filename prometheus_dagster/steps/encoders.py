"""What the encoder steps share: registered model names, the encoder bundle cache, the feature
panel and the stored text vectors read through an asset's declared inputs.

The ``models`` argument of these functions is anything that resolves registered model versions
by date and downloads their artifacts (``resources.mlflow_tracking.MlflowTracking`` in the
daily chain); it is duck-typed so that this layer imports no resource."""

from __future__ import annotations

from typing import Any

import pandas as pd

from prometheus_dagster.core.inputs import InputWindow, Read
from prometheus_dagster.core.schemas import vector_to_array
from prometheus_dagster.engines.encoders import EncoderBundle
from prometheus_dagster.engines.features import FeaturePanel

# the dated tables a numeric window is built from (returns, volatility, liquidity and the
# traded value behind log_rel_volume)
PANEL_TABLES = ("returns_daily", "volatility_daily", "liquidity_daily", "prices_daily")


def panel_reads(sessions: int = 0, history: bool = False) -> tuple[Read, ...]:
    """The reads of a :class:`FeaturePanel`: its dated tables over ``sessions`` before D (or
    all history), the reference tables, and every statement reported up to D (an ISSUER
    window holds its latest usable statement, however old its report date)."""
    return (*(Read(t, sessions=sessions, history=history) for t in PANEL_TABLES),
            Read("instruments", reference=True), Read("issuers", reference=True),
            Read("fundamentals", history=True, note="statements reported on or before D"))


def load_feature_panel(window: InputWindow, end: pd.Timestamp | None = None) -> FeaturePanel:
    """The feature panel of the window's declared reads, up to the last date (or ``end``)."""
    def part(table: str) -> pd.DataFrame:
        return window.frame(table, end=end)

    return FeaturePanel(
        returns=part("returns_daily"), volatility=part("volatility_daily"),
        liquidity=part("liquidity_daily"), prices=part("prices_daily"),
        instruments=window.frame("instruments"), issuers=window.frame("issuers"),
        fundamentals=part("fundamentals"))


def read_text_vectors(window: InputWindow, model_id: str, start: pd.Timestamp | None = None,
                      end: pd.Timestamp | None = None) -> pd.DataFrame:
    """article_id (source_id), date and vector (float32 array) of the stored text embeddings
    of the declared window (narrowed to ``start``..``end``), ordered by date and article."""
    rows = window.frame("text_embeddings", columns=["source_id", "date", "vector"], end=end,
                        model_id=model_id)
    rows = rows.assign(date=pd.to_datetime(rows["date"]))
    if start is not None:
        rows = rows[rows["date"] >= pd.Timestamp(start)]
    rows = rows.sort_values(["date", "source_id"], kind="stable")
    return pd.DataFrame({"article_id": rows["source_id"].astype(str).to_numpy(),
                         "date": rows["date"].to_numpy(),
                         "vector": [vector_to_array(b) for b in rows["vector"]]})


def registered_name(market_id: str, model_id: str) -> str:
    """Model Registry name of a market's encoder, e.g. ``US_EQ.joint-news-window-v1``."""
    return f"{market_id}.{model_id}"


def model_row_id(name: str, version: int) -> str:
    """The ``model_id`` written on vector rows: registered name and version."""
    return f"{name}/{version}"


def versions_by_date(models: Any, market_id: str, model_id: str,
                     dates: list[pd.Timestamp]) -> dict[pd.Timestamp, dict | None]:
    """The registered version of a market's encoder valid on each date (trained strictly
    before it), None where there is none."""
    return models.resolve_model_versions(registered_name(market_id, model_id), dates)


def present(version: dict | None) -> dict:
    """A resolved version of a date the caller knows is modelled."""
    if version is None:
        raise ValueError("no registered encoder version for a modelled date")
    return version


class BundleCache:
    """Encoder bundles by registered version, downloaded and loaded once."""

    def __init__(self, models: Any):
        self.models = models
        self._loaded: dict[str, EncoderBundle] = {}

    def get(self, version: dict) -> EncoderBundle:
        source = str(version["source"])
        if source not in self._loaded:
            self._loaded[source] = EncoderBundle.load(self.models.download(source))
        return self._loaded[source]
