"""A correction (a close 10% below its 252-session high) is risk-off whatever its prototype:
index-only inputs through the engine's own features, model and assignment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prometheus_dagster.core.config import validate_config
from prometheus_dagster.core.errors import ConfigError
from prometheus_dagster.engines.regime import (
    RISK_OFF_LABELS,
    RegimeConfig,
    RegionInputs,
    assign_regimes,
    compute_region_features,
    fit_regime_model,
)
from prometheus_dagster.engines.regime.config import Labelling
from prometheus_dagster.engines.regime.model import in_correction

SESSIONS = 760
TRAINED = 600            # prototypes fitted on calm sessions only
SLIDE = (640, 660)       # a quiet slide: -0.65% a day with almost no noise, about -12%
BOUNCE = (660, 670)
INDEX_FEATURES = ["vol_short", "drawdown", "ret_short"]


def _quiet_slide() -> RegionInputs:
    rng = np.random.default_rng(3)
    r = rng.normal(0.0004, 0.006, SESSIONS)
    r[SLIDE[0]:SLIDE[1]] = -0.0065 + rng.normal(0, 0.001, SLIDE[1] - SLIDE[0])
    r[BOUNCE[0]:BOUNCE[1]] = 0.006 + rng.normal(0, 0.001, BOUNCE[1] - BOUNCE[0])
    dates = pd.bdate_range("2012-01-02", periods=SESSIONS)
    return RegionInputs("US_EQ", pd.DataFrame({"date": dates, "index_ret_1d": r}),
                        pd.DataFrame(columns=["series_id", "date", "value", "frequency"]))


def _config(correction: float | None) -> RegimeConfig:
    return RegimeConfig(model={"features": INDEX_FEATURES,
                               "labelling": {"correction_drawdown": correction,
                                             "correction_trend": 0.0}})


def _path(correction: float | None) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    config = _config(correction)
    features = compute_region_features(_quiet_slide(), config)
    model = fit_regime_model(features, features.index[TRAINED - 1], config)
    later = features.index[TRAINED:]
    rows = assign_regimes("US_EQ", features, {d: ("m1", model) for d in later}, config,
                          "regime@test").set_index("as_of_date")
    return rows, features.loc[later], model.cluster_labels


@pytest.fixture(scope="module")
def with_and_without() -> dict[str, tuple[pd.DataFrame, pd.DataFrame, list[str]]]:
    return {"on": _path(-0.10), "off": _path(None)}


def test_drawdown_low_is_the_lowest_drawdown_of_the_window() -> None:
    config = _config(-0.10)
    features = compute_region_features(_quiet_slide(), config)
    expected = features["drawdown"].rolling(config.window, min_periods=1).min()
    assert np.allclose(features["drawdown_low"].dropna(), expected[features["drawdown_low"]
                                                                   .notna()])
    # only the window counts: the slide's trough is forgotten a window later
    trough = features["drawdown"].iloc[SLIDE[1] - 1]
    assert features["drawdown_low"].iloc[SLIDE[1] + 5] == pytest.approx(trough)
    assert features["drawdown_low"].iloc[-1] > trough


def test_a_quiet_correction_is_risk_off_though_its_prototype_is_calm(with_and_without) -> None:
    rows, features, clusters = with_and_without["on"]
    plain, _, plain_clusters = with_and_without["off"]
    deep = features["drawdown"] <= -0.10
    assert deep.sum() >= 5 and features.loc[deep, "vol_short"].max() < 0.12
    # without the rule the calm prototypes keep the slide calm: the failure it fixes
    assert not plain.loc[deep, "regime_label"].isin(RISK_OFF_LABELS).any()
    assert rows.loc[deep, "raw_label"].isin(RISK_OFF_LABELS).all()
    assert all(d["correction"] for d in rows.loc[deep, "diagnostics"])
    first = features.index[deep][0]
    assert rows.loc[first, "regime_label"] in RISK_OFF_LABELS
    # a day's state, not a prototype's: the clusters are named alike with or without it
    assert clusters == plain_clusters


def test_a_bounce_inside_the_correction_does_not_end_it(with_and_without) -> None:
    rows, features, _ = with_and_without["on"]
    after = features.index > features.index[features["drawdown"] <= -0.10][-1]
    back = features.index[after & (features["drawdown"] > -0.05).to_numpy()][0]
    # still falling over the short window (the trend condition of `_config`)
    bounce = after & (features.index < back) & (features["ret_short"] <= 0.0).to_numpy()
    recovered = (features.index >= back) & (features.index < back + pd.Timedelta(days=14))
    assert bounce.sum() >= 3 and recovered.sum() >= 3
    assert rows.loc[bounce, "raw_label"].isin(RISK_OFF_LABELS).all()
    # back within 5% of the high it is no longer a correction
    assert not any(d["correction"] for d in rows.loc[recovered, "diagnostics"])
    assert not rows["regime_label"].iloc[-20:].isin(RISK_OFF_LABELS).any()


def test_in_correction_thresholds() -> None:
    rules = Labelling(correction_drawdown=-0.10, correction_release=-0.05, correction_trend=None)
    assert in_correction(-0.10, -0.10, None, rules)
    assert not in_correction(-0.09, -0.09, None, rules)
    assert in_correction(-0.06, -0.12, None, rules)         # a bounce after reaching -10%
    assert not in_correction(-0.04, -0.12, None, rules)     # back within 5% of the high
    assert not in_correction(float("nan"), -0.12, None, rules)
    assert not in_correction(-0.5, -0.5, None, Labelling(correction_drawdown=None))
    # with a trend condition: a fall under way, not the depth an old sell-off left behind
    falling = Labelling(correction_drawdown=-0.10, correction_trend=0.0)
    assert in_correction(-0.12, -0.12, -0.03, falling)
    assert in_correction(-0.07, -0.12, -0.01, falling)
    assert not in_correction(-0.12, -0.20, 0.02, falling)
    assert not in_correction(-0.12, -0.12, None, falling)


def test_correction_settings_are_validated_and_change_the_config_id() -> None:
    with pytest.raises(ConfigError, match="correction_release"):
        validate_config({"engine": "regime", "model": {"labelling": {
            "correction_drawdown": -0.05, "correction_release": -0.10}}})
    ids = {validate_config({"engine": "regime", "model": {"labelling": {
        "correction_drawdown": c}}}).config_id for c in (-0.10, -0.15)}
    assert len(ids) == 2
