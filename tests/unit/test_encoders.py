"""Numeric and joint encoders: InfoNCE, recall@k, window summaries, training that learns,
bundles that round-trip, inference that does not depend on the batch."""

import numpy as np
import pandas as pd
import pytest
import torch

from prometheus_dagster.engines.encoders import (
    SUMMARY_DIM,
    EncoderBundle,
    embed_joint_numeric,
    embed_numeric,
    embed_text,
    info_nce,
    joint_pairs,
    recall_at_k,
    summarise_windows,
)
from prometheus_dagster.engines.encoders.config import TrainingConfig
from prometheus_dagster.engines.encoders.contrastive import train_pairs
from prometheus_dagster.engines.encoders.models import JointEncoder, NumericWindowEncoder
from prometheus_dagster.engines.features import FeaturePanel, window_feature_names


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_info_nce_is_lower_for_aligned_pairs():
    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(32, 8), dim=1)
    shuffled = a[torch.randperm(32)]
    assert info_nce(a, a, 0.1) < info_nce(a, shuffled, 0.1)


def test_info_nce_ignores_same_group_items():
    a = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), dim=1)
    grouped = info_nce(a, a, 0.1, torch.tensor([0, 0, 1]))
    ungrouped = info_nce(a, a, 0.1)
    assert grouped < ungrouped  # the duplicate is no longer a competing negative


def test_recall_at_k_perfect_and_random():
    rng = np.random.default_rng(0)
    x = unit(rng.normal(size=(400, 16)))
    perfect = recall_at_k(x, x, k=10, pool_size=100)
    assert perfect["recall"] == 1.0 and perfect["random"] == 0.1
    noise = recall_at_k(x, unit(rng.normal(size=(400, 16))), k=10, pool_size=100)
    assert 0.03 < noise["recall"] < 0.2


def test_summaries_pad_entity_types_to_one_layout():
    inst = np.ones((3, 21, len(window_feature_names("INSTRUMENT"))))
    iss = np.ones((2, 21, len(window_feature_names("ISSUER"))))
    a, b = summarise_windows(inst, "INSTRUMENT"), summarise_windows(iss, "ISSUER")
    assert a.shape == (3, SUMMARY_DIM) and b.shape == (2, SUMMARY_DIM)
    assert not np.array_equal(a[0, -4:], b[0, -4:])  # entity one-hot differs
    n_inst = len(window_feature_names("INSTRUMENT"))
    assert (a[0, n_inst:16] == 0).all() and (b[0, :16] == 1).all()


def _toy_pairs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Text-like vectors that are a fixed linear function of the numeric summary, plus noise."""
    rng = np.random.default_rng(seed)
    summaries = rng.normal(size=(n, SUMMARY_DIM)).astype(np.float32)
    mix = np.random.default_rng(99).normal(size=(SUMMARY_DIM, 384))
    text = unit(summaries @ mix + 0.5 * rng.normal(size=(n, 384))).astype(np.float32)
    return text, summaries


def test_joint_training_learns_to_retrieve_held_out_pairs():
    text, summaries = _toy_pairs(1200, 1)
    joint = JointEncoder(NumericWindowEncoder(hidden=64), hidden=128)
    report = train_pairs(joint, joint.embed_text, joint.embed_numeric, text[:1000],
                         summaries[:1000], TrainingConfig(epochs=15, batch_size=128, seed=3))
    assert report.loss_per_epoch[-1] < report.loss_per_epoch[0]
    bundle = EncoderBundle(numeric=joint.numeric_encoder, joint=joint)
    r = recall_at_k(embed_text(bundle, text[1000:]), embed_joint_numeric(bundle, summaries[1000:]),
                    k=10, pool_size=100)
    assert r["recall"] > 3 * r["random"]


def test_training_is_deterministic_for_a_seed():
    text, summaries = _toy_pairs(300, 2)
    outs = []
    for _ in range(2):
        torch.manual_seed(123)  # same initial weights
        joint = JointEncoder(NumericWindowEncoder(hidden=32), hidden=32)
        train_pairs(joint, joint.embed_text, joint.embed_numeric, text, summaries,
                    TrainingConfig(epochs=2, batch_size=64, seed=5))
        outs.append(embed_joint_numeric(EncoderBundle(joint.numeric_encoder, joint), summaries))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_bundle_round_trip_and_batch_independent_inference(tmp_path):
    torch.manual_seed(0)
    numeric = NumericWindowEncoder(hidden=32)
    bundle = EncoderBundle(numeric, JointEncoder(numeric, hidden=48),
                           meta={"numeric_hidden": 32, "joint_hidden": 48})
    x = np.random.default_rng(0).normal(size=(500, SUMMARY_DIM)).astype(np.float32)
    loaded = EncoderBundle.load(bundle.save(tmp_path / "b"))
    full = embed_numeric(loaded, x)
    np.testing.assert_array_equal(full, embed_numeric(bundle, x))
    parts = np.concatenate([embed_joint_numeric(loaded, x[i:i + 7]) for i in range(0, 500, 7)])
    np.testing.assert_array_equal(embed_joint_numeric(loaded, x), parts)
    np.testing.assert_allclose(np.linalg.norm(full, axis=1), 1.0, atol=1e-6)
    assert full.shape == (500, 384)


def test_bundle_load_names_what_is_missing(tmp_path):
    from prometheus_dagster.core.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="encoder bundle"):
        EncoderBundle.load(tmp_path)


def _panel(n_days: int = 40) -> FeaturePanel:
    dates = pd.bdate_range("2024-01-01", periods=n_days)
    rows = [{"market_id": "M", "instrument_id": i, "date": d, "ret_1d": 0.01 * k,
             "ret_5d": 0.0, "ret_21d": 0.0}
            for k, i in enumerate(["A", "B"]) for d in dates]
    ret = pd.DataFrame(rows)
    vol = ret[["market_id", "instrument_id", "date"]].assign(vol_21d=0.2, vol_63d=0.2,
                                                            drawdown=0.0)
    return FeaturePanel(returns=ret, volatility=vol, liquidity=ret.iloc[:0].assign(adv_21d=[]))


def test_joint_pairs_match_articles_to_their_instruments_window():
    panel = _panel()
    texts = pd.DataFrame({"article_id": ["x", "y", "z", "early"],
                          "date": pd.to_datetime(["2024-02-12", "2024-02-12", "2024-02-13",
                                                  "2024-01-03"]),
                          "vector": [np.ones(384, np.float32)] * 4})
    links = pd.DataFrame({"article_id": ["x", "y", "z", "early", "x"],
                          "instrument_id": ["A", "A", "B", "A", "ZZZ"]})
    from prometheus_dagster.engines.features import FeaturesConfig

    pairs = joint_pairs(panel, texts, links, window=21, features_config=FeaturesConfig())
    # "early" has no full 21-session window; x and y share A's window on 2024-02-12
    assert len(pairs.dates) == 3
    assert pairs.groups[0] == pairs.groups[1] != pairs.groups[2]
    assert pairs.numeric.shape == (3, SUMMARY_DIM)
