"""A switch between the two risk-on labels waits longer than one into or out of risk-off
(``risk_on_confirmation_days``): a market near the risk-on vol boundary does not flip back and
forth, while stress is still labelled after ``confirmation_days``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prometheus_dagster.core.config import load_engine_config, validate_config
from prometheus_dagster.core.errors import ConfigError
from prometheus_dagster.engines.regime import (
    RISK_OFF_LABELS,
    RISK_ON_LABELS,
    RegimeConfig,
    assign_regimes,
    fit_regime_model,
    run_lengths,
    smooth_labels,
)

LOW, HIGH, OFF = "RISK_ON_LOW_VOL", "RISK_ON_HIGH_VOL", "RISK_OFF_GRINDING"


def _smooth(raw: list[str], risk_on_confirmation: int | None) -> list[str | None]:
    return smooth_labels(raw, 3, 2, same_side=RISK_ON_LABELS,
                         same_side_confirmation=risk_on_confirmation)


# --- smoothing -----------------------------------------------------------------------------
def test_a_flip_within_risk_on_needs_its_own_confirmation() -> None:
    raw = [LOW] * 6 + [HIGH] * 8
    assert _smooth(raw, 5) == [LOW] * 10 + [HIGH] * 4      # on the 5th HIGH session
    assert _smooth(raw, None) == [LOW] * 7 + [HIGH] * 7    # default: confirmation_days
    # a shorter HIGH burst, however often it comes back, never switches
    flicker = [LOW] * 6 + ([HIGH] * 4 + [LOW]) * 6
    assert _smooth(flicker, 5) == [LOW] * len(flicker)
    assert HIGH in _smooth(flicker, None)


def test_a_switch_into_or_out_of_risk_off_keeps_confirmation_days() -> None:
    into = [LOW] * 6 + [OFF] * 6
    assert _smooth(into, 5) == _smooth(into, None) == [LOW] * 7 + [OFF] * 5
    from_high = [HIGH] * 6 + [OFF] * 6
    assert _smooth(from_high, 5) == [HIGH] * 7 + [OFF] * 5
    out = [OFF] * 6 + [LOW] * 6
    assert _smooth(out, 5) == [OFF] * 7 + [LOW] * 5
    # prompt stress out of RISK_ON_HIGH_VOL still switches at once
    assert smooth_labels(from_high, 3, 2, prompt=[lab == OFF for lab in from_high],
                         same_side=RISK_ON_LABELS, same_side_confirmation=5)[6] == OFF


labels_st = st.lists(st.sampled_from([LOW, HIGH, OFF, "TRANSITION"]), max_size=200)


@settings(max_examples=200, deadline=None)
@given(raw=labels_st, min_duration=st.integers(1, 8), slow=st.integers(2, 8), data=st.data())
def test_same_side_smoothing_is_causal_and_keeps_min_duration(
        raw: list[str], min_duration: int, slow: int, data: st.DataObject) -> None:
    whole = smooth_labels(raw, min_duration, 2, same_side=RISK_ON_LABELS,
                          same_side_confirmation=slow)
    cut = data.draw(st.integers(0, len(raw)))
    assert smooth_labels(raw[:cut], min_duration, 2, same_side=RISK_ON_LABELS,
                         same_side_confirmation=slow) == whole[:cut]
    assert all(n >= min_duration for _, n in run_lengths(whole)[:-1])
    # every switch between the risk-on labels was preceded by `slow` sessions of the new one
    for i in range(1, len(whole)):
        if whole[i - 1] in RISK_ON_LABELS and whole[i] in RISK_ON_LABELS \
                and whole[i] != whole[i - 1]:
            assert i + 1 >= slow and set(raw[i + 1 - slow:i + 1]) == {whole[i]}


# --- through the engine ---------------------------------------------------------------------
FEATURES = ["implied_vol", "vol_short", "credit_level", "ret_short"]
TRAINED = 600
BOUNDARY = (620, 720)    # each session calm or a little more volatile, at random
PERSISTENT = (740, 760)  # a lasting move to the more volatile calm
STRESS = (780, 820)


def _features(n: int = 900, seed: int = 5) -> pd.DataFrame:
    """Window features of three states: calm, a little more volatile calm, stress."""
    rng = np.random.default_rng(seed)
    state = np.zeros(n, dtype=int)
    for a, b in ((100, 160), (300, 360), (480, 520), PERSISTENT):
        state[a:b] = 1
    for a, b in ((200, 240), (420, 450), STRESS):
        state[a:b] = 2
    state[BOUNDARY[0]:BOUNDARY[1]] = rng.integers(0, 2, BOUNDARY[1] - BOUNDARY[0])
    levels = {"implied_vol": (12.0, 14.7, 38.0), "vol_short": (0.10, 0.122, 0.35),
              "credit_level": (1.0, 1.2, 2.2)}
    frame = {f: np.array(v)[state] * np.exp(rng.normal(0, 0.05, n)) for f, v in levels.items()}
    frame["ret_short"] = np.array([0.02, 0.015, -0.06])[state] + rng.normal(0, 0.01, n)
    return pd.DataFrame(frame, index=pd.bdate_range("2015-01-01", periods=n))


@pytest.fixture(scope="module")
def paths() -> dict[int, pd.DataFrame]:
    features = _features()
    out = {}
    for slow in (2, 5):
        config = RegimeConfig(model={"features": FEATURES}, risk_on_confirmation_days=slow)
        model = fit_regime_model(features, features.index[TRAINED - 1], config)
        assert {LOW, HIGH} <= set(model.cluster_labels)
        later = features.index[TRAINED:]
        out[slow] = assign_regimes("US_EQ", features, {d: ("m1", model) for d in later},
                                   config, "regime@test").reset_index(drop=True)
    return out


def _between(rows: pd.DataFrame, span: tuple[int, int]) -> pd.DataFrame:
    return rows.iloc[span[0] - TRAINED:span[1] - TRAINED]


def test_a_market_at_the_risk_on_vol_boundary_does_not_flip(paths) -> None:
    fast, slow = _between(paths[2], BOUNDARY), _between(paths[5], BOUNDARY)
    assert (fast["raw_label"] != fast["raw_label"].shift()).sum() > 30   # raw labels flicker
    assert len(run_lengths(list(fast["regime_label"]))) >= 5
    assert len(run_lengths(list(slow["regime_label"]))) <= 2


def test_a_lasting_move_within_risk_on_still_switches(paths) -> None:
    rows = _between(paths[5], PERSISTENT)
    assert (rows["raw_label"] == HIGH).all()
    assert list(rows["regime_label"]) == [LOW] * 4 + [HIGH] * 16


def test_stress_is_labelled_after_confirmation_days_whatever_the_risk_on_setting(paths) -> None:
    for rows in paths.values():
        stress = _between(rows, STRESS)
        assert stress["raw_label"].isin(RISK_OFF_LABELS).all()
        assert stress["regime_label"].iloc[0] not in RISK_OFF_LABELS
        assert stress["regime_label"].iloc[1:].isin(RISK_OFF_LABELS).all()
    assert list(_between(paths[2], STRESS)["regime_label"]) == \
        list(_between(paths[5], STRESS)["regime_label"])


# --- config --------------------------------------------------------------------------------
def test_risk_on_confirmation_is_validated_and_changes_the_config_id() -> None:
    with pytest.raises(ConfigError, match="risk_on_confirmation_days"):
        validate_config({"engine": "regime", "confirmation_days": 3,
                         "risk_on_confirmation_days": 2})
    ids = {validate_config({"engine": "regime", "risk_on_confirmation_days": n}).config_id
           for n in (None, 5)}
    assert len(ids) == 2
    assert RegimeConfig(confirmation_days=3).risk_on_confirmation == 3
    shipped = load_engine_config("regime").config
    assert shipped.risk_on_confirmation > shipped.confirmation_days
