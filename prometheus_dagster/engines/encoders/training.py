"""Point-in-time training of the numeric window encoder and the joint text <-> numeric encoder.

``train_encoder_bundle`` sees only what is dated on or before ``trained_through``:

1. the numeric encoder learns, over time-adjacent windows of the same entity (a window and the
   one ``positive_offset`` sessions later form a positive pair, other entities and dates in
   the batch are negatives), to map a window summary to R^384;
2. the joint encoder's projection heads learn, with symmetric InfoNCE, to match a news
   article's sentence embedding with the numeric window of the issuer it is about (market data
   and its latest reported statement; market wraps with the index's window), ending on the
   article's session;
3. retrieval recall@k is measured on held-out pairs: the latest ``heldout_fraction`` of the
   sessions, never seen in training.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from prometheus_dagster.core.errors import DataQualityError
from prometheus_dagster.engines.encoders.bundle import EncoderBundle
from prometheus_dagster.engines.encoders.config import EncodersConfig
from prometheus_dagster.engines.encoders.contrastive import recall_at_k, train_pairs
from prometheus_dagster.engines.encoders.models import JointEncoder, NumericWindowEncoder
from prometheus_dagster.engines.encoders.summary import summarise_windows
from prometheus_dagster.engines.features import FeaturePanel, FeaturesConfig, build_numeric_windows

Progress = Callable[[str], None]


def entity_count(panel: FeaturePanel, entity_type: str) -> int:
    """How many entities of a type the panel holds (sizes the training sample per type)."""
    ids = panel.returns["instrument_id"].astype(str).unique()
    if entity_type == "MARKET":
        return panel.returns["market_id"].nunique()
    if entity_type == "INSTRUMENT" or panel.instruments is None:
        return len(ids)
    ins = panel.instruments[panel.instruments["instrument_id"].astype(str).isin(ids)]
    if entity_type == "ISSUER" or panel.issuers is None:
        return ins["issuer_id"].nunique()
    sectors = panel.issuers.set_index(panel.issuers["issuer_id"].astype(str))["sector"]
    return int(ins["issuer_id"].astype(str).map(sectors).nunique())


def window_summaries(panel: FeaturePanel, entity_type: str,
                     dates: list[pd.Timestamp] | pd.DatetimeIndex,
                     window: int, features_config: FeaturesConfig,
                     entity_ids: list[str] | None = None,
                     chunk_dates: int = 20) -> tuple[np.ndarray, pd.DataFrame]:
    """Summaries of the windows of every entity of a type (or ``entity_ids``) at ``dates``,
    built ``chunk_dates`` dates at a time so that raw windows never pile up in memory."""
    dates = list(dates)
    parts, indexes = [], []
    for start in range(0, max(len(dates), 1), chunk_dates):
        windows, index = build_numeric_windows(entity_type, dates[start:start + chunk_dates],
                                               window, panel, entity_ids=entity_ids,
                                               config=features_config)
        parts.append(summarise_windows(windows, entity_type))
        indexes.append(index)
    return np.concatenate(parts), pd.concat(indexes, ignore_index=True)


def numeric_training_set(panel: FeaturePanel, sessions: pd.DatetimeIndex,
                         config: EncodersConfig, features_config: FeaturesConfig,
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Positive pairs (summary at t, summary of the same entity at t + offset)."""
    ncfg = config.numeric
    off = ncfg.positive_offset
    anchors_all = np.arange(ncfg.window - 1, len(sessions) - off)
    per_type = max(ncfg.training.max_samples // len(ncfg.entity_types), 1)
    xa, xb = [], []
    for et in ncfg.entity_types:
        n_ent = max(entity_count(panel, et), 1)
        stride = max(1, math.ceil(n_ent * len(anchors_all) / per_type))
        anchors = anchors_all[::stride]
        if not len(anchors):
            continue
        dates = sessions[np.union1d(anchors, anchors + off)]
        summaries, index = window_summaries(panel, et, dates, ncfg.window, features_config)
        if not len(index):
            continue
        pos = pd.Series(np.arange(len(index)),
                        index=pd.MultiIndex.from_arrays([index["entity_id"].to_numpy(),
                                                         pd.DatetimeIndex(index["as_of_date"])]))
        partner_of = dict(zip(sessions[anchors], sessions[anchors + off], strict=True))
        a_rows = index[pd.DatetimeIndex(index["as_of_date"]).isin(sessions[anchors])]
        keys = pd.MultiIndex.from_arrays([
            a_rows["entity_id"].to_numpy(),
            pd.DatetimeIndex([partner_of[pd.Timestamp(d)] for d in a_rows["as_of_date"]])])
        b = pos.reindex(keys).to_numpy()
        ok = ~np.isnan(b)
        xa.append(summaries[a_rows.index.to_numpy()[ok]])
        xb.append(summaries[b[ok].astype(int)])
    if not xa:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
    return np.concatenate(xa), np.concatenate(xb)


@dataclass
class JointPairs:
    text: np.ndarray          # float32 [n, 384] sentence embeddings
    numeric: np.ndarray       # float32 [n, SUMMARY_DIM] window summaries
    groups: np.ndarray        # int [n]: pairs with the same (instrument, date) window
    dates: pd.DatetimeIndex


def joint_pairs(panel: FeaturePanel, texts: pd.DataFrame, links: pd.DataFrame,
                window: int, features_config: FeaturesConfig) -> JointPairs:
    """Article <-> window pairs. ``texts``: article_id, date, vector (np.ndarray); ``links``:
    article_id, instrument_id and optionally issuer_id. An article about an issuer pairs with
    the ISSUER window (its primary instrument's market data and its latest reported
    statement); one about an instrument only (a market wrap and its index) with that
    INSTRUMENT window. An article with several links uses the first (sorted) with a window on
    the article's session."""
    known = set(panel.returns["instrument_id"].astype(str))
    lk = links.dropna(subset=["instrument_id"])
    lk = lk[lk["instrument_id"].astype(str).isin(known)]
    lk = lk.sort_values(["article_id", "instrument_id"]).drop_duplicates("article_id")
    issuer = (lk["issuer_id"] if "issuer_id" in lk.columns
              else pd.Series(None, index=lk.index, dtype=object))
    use_issuer = issuer.notna() & (panel.instruments is not None)
    lk = lk.assign(entity_type=np.where(use_issuer, "ISSUER", "INSTRUMENT"),
                   entity_id=np.where(use_issuer, issuer.astype(str),
                                      lk["instrument_id"].astype(str)))
    art = texts.merge(lk[["article_id", "entity_type", "entity_id"]], on="article_id",
                      how="inner")
    art = art.assign(date=pd.to_datetime(art["date"]).dt.normalize()).reset_index(drop=True)
    if art.empty:
        return JointPairs(np.zeros((0, 384), np.float32), np.zeros((0, 0), np.float32),
                          np.zeros(0, int), pd.DatetimeIndex([]))
    summaries: list[np.ndarray] = []
    rows = np.full(len(art), -1)
    for (et, eid), where in art.groupby(["entity_type", "entity_id"]).indices.items():
        days = sorted(art["date"].iloc[where].unique())
        summ, index = window_summaries(panel, et, days, window, features_config,
                                       entity_ids=[eid], chunk_dates=len(days))
        pos = pd.Series(np.arange(len(index)), index=pd.DatetimeIndex(index["as_of_date"]))
        found = pos.reindex(pd.DatetimeIndex(art["date"].iloc[where])).to_numpy()
        offset = int(sum(len(x) for x in summaries))
        rows[where] = np.where(np.isnan(found), -1, found + offset)
        summaries.append(summ)
    stacked = np.concatenate(summaries) if summaries else np.zeros((0, 0), np.float32)
    ok = rows >= 0
    art, row = art[ok], rows[ok]
    return JointPairs(text=np.stack(art["vector"].to_numpy()).astype(np.float32)
                      if len(art) else np.zeros((0, 384), np.float32),
                      numeric=stacked[row], groups=row, dates=pd.DatetimeIndex(art["date"]))


def train_encoder_bundle(panel: FeaturePanel, sessions: pd.DatetimeIndex, texts: pd.DataFrame,
                         links: pd.DataFrame, trained_through: pd.Timestamp,
                         config: EncodersConfig, features_config: FeaturesConfig,
                         log: Progress | None = None) -> tuple[EncoderBundle, dict[str, Any]]:
    """Train both encoders on data dated <= ``trained_through``; returns the bundle and the
    training metrics (losses, pair counts, held-out recall@k and its random baseline)."""
    say = log or (lambda _msg: None)
    cut = pd.Timestamp(trained_through).normalize()
    sessions = pd.DatetimeIndex(sessions)[pd.DatetimeIndex(sessions) <= cut]
    panel = panel.truncated(cut)
    texts = texts[pd.to_datetime(texts["date"]).dt.normalize() <= cut]
    ncfg, jcfg = config.numeric, config.joint
    if len(sessions) < config.refit.min_history_sessions:
        raise DataQualityError(
            f"encoder training through {cut.date()}: {len(sessions)} sessions of features, "
            f"needs refit.min_history_sessions = {config.refit.min_history_sessions}")

    xa, xb = numeric_training_set(panel, sessions, config, features_config)
    if len(xa) < ncfg.training.batch_size // 4:
        raise DataQualityError(f"encoder training through {cut.date()}: only {len(xa)} "
                               "time-adjacent window pairs for the numeric encoder")
    say(f"numeric encoder: {len(xa)} time-adjacent window pairs")
    torch.manual_seed(ncfg.training.seed)  # initial weights from the seed, not process state
    numeric = NumericWindowEncoder(hidden=ncfg.hidden)
    num_report = train_pairs(numeric, numeric, numeric, xa, xb, ncfg.training,
                             augment_noise=ncfg.noise,
                             progress=lambda e, loss: say(f"numeric epoch {e}: loss {loss:.4f}"))

    pairs = joint_pairs(panel, texts, links, ncfg.window, features_config)
    heldout_start = sessions[min(int(len(sessions) * (1 - jcfg.heldout_fraction)),
                                 len(sessions) - 1)]
    train = pairs.dates < heldout_start
    if int(train.sum()) < jcfg.min_pairs:
        raise DataQualityError(
            f"joint encoder training through {cut.date()}: {int(train.sum())} article <-> "
            f"window pairs before the held-out span, needs joint.min_pairs = {jcfg.min_pairs} "
            "(the market needs news linked to instruments)")
    say(f"joint encoder: {int(train.sum())} training pairs, {int((~train).sum())} held out")
    torch.manual_seed(jcfg.training.seed)
    joint = JointEncoder(numeric, hidden=jcfg.hidden, dropout=jcfg.dropout)
    joint_report = train_pairs(joint, joint.embed_text, joint.embed_numeric, pairs.text[train],
                               pairs.numeric[train], jcfg.training, groups=pairs.groups[train],
                               progress=lambda e, loss: say(f"joint epoch {e}: loss {loss:.4f}"))
    bundle = EncoderBundle(numeric=numeric, joint=joint)
    held = ~train
    recall = recall_at_k(embed_text(bundle, pairs.text[held]),
                         embed_joint_numeric(bundle, pairs.numeric[held]), jcfg.recall_k,
                         jcfg.pool_size, pairs.groups[held], seed=jcfg.training.seed)
    k = jcfg.recall_k
    metrics = {
        "numeric_pairs": len(xa), "numeric_final_loss": num_report.final_loss,
        "joint_train_pairs": int(train.sum()), "joint_heldout_pairs": int(held.sum()),
        "joint_final_loss": joint_report.final_loss,
        f"heldout_recall_at_{k}": recall["recall"],
        f"heldout_recall_at_{k}_text_to_numeric": recall.get("recall_text_to_numeric", np.nan),
        f"heldout_recall_at_{k}_numeric_to_text": recall.get("recall_numeric_to_text", np.nan),
        f"random_recall_at_{k}": recall["random"],
        f"recall_at_{k}_vs_random": recall["recall"] / recall["random"],
        "heldout_queries": recall["queries"],
    }
    bundle.meta = {
        "numeric_model_id": ncfg.model_id, "joint_model_id": jcfg.model_id,
        "numeric_hidden": ncfg.hidden, "joint_hidden": jcfg.hidden, "window": ncfg.window,
        "trained_through": str(cut.date()), "heldout_start": str(heldout_start.date()),
        "first_session": str(sessions[0].date()), "metrics": metrics,
        "numeric_loss_per_epoch": num_report.loss_per_epoch,
        "joint_loss_per_epoch": joint_report.loss_per_epoch,
    }
    return bundle, metrics


@contextlib.contextmanager
def inference(bundle: EncoderBundle) -> Iterator[EncoderBundle]:
    """The bundle switched to float64 for the block (once for any number of forward passes),
    then back to float32 (a lossless round trip)."""
    bundle.joint.double()  # the numeric encoder is a submodule of the joint encoder
    try:
        yield bundle
    finally:
        bundle.joint.float()


def _forward64(fn: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray) -> np.ndarray:
    """Inference in float64, rounded to float32: a vector does not depend on which other rows
    share its batch (float32 matmuls differ in the last bits with the batch shape). The module
    must be in float64 (``inference``)."""
    out = []
    with torch.no_grad():
        for start in range(0, len(x), 4096):
            out.append(fn(torch.as_tensor(x[start:start + 4096], dtype=torch.float64))
                       .numpy().astype(np.float32))
    return np.concatenate(out) if out else np.zeros((0, 384), np.float32)


def numeric_vectors(bundle: EncoderBundle, summaries: np.ndarray) -> np.ndarray:
    """Numeric-encoder vectors of window summaries (inside ``inference(bundle)``)."""
    return _forward64(bundle.numeric, summaries)


def joint_numeric_vectors(bundle: EncoderBundle, summaries: np.ndarray) -> np.ndarray:
    """Joint-space vectors of window summaries (inside ``inference(bundle)``)."""
    return _forward64(bundle.joint.embed_numeric, summaries)


def text_vectors(bundle: EncoderBundle, text_vectors_: np.ndarray) -> np.ndarray:
    """Joint-space vectors of sentence embeddings (inside ``inference(bundle)``)."""
    return _forward64(bundle.joint.embed_text, text_vectors_)


def embed_numeric(bundle: EncoderBundle, summaries: np.ndarray) -> np.ndarray:
    """Numeric-encoder vectors of window summaries."""
    with inference(bundle):
        return numeric_vectors(bundle, summaries)


def embed_joint_numeric(bundle: EncoderBundle, summaries: np.ndarray) -> np.ndarray:
    """Joint-space vectors of window summaries."""
    with inference(bundle):
        return joint_numeric_vectors(bundle, summaries)


def embed_text(bundle: EncoderBundle, text_vectors_: np.ndarray) -> np.ndarray:
    """Joint-space vectors of sentence embeddings."""
    with inference(bundle):
        return text_vectors(bundle, text_vectors_)
