"""Configuration of the encoders (``configs/engines/encoders.yaml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from prometheus_dagster.core.config import StrictModel, VersionedConfig, register_config_model

EntityType = Literal["INSTRUMENT", "ISSUER", "SECTOR", "MARKET"]


class TextEncoderConfig(StrictModel):
    model_id: str = Field("text-fin-general-v1", description="id written on every text vector")
    batch_size: int = Field(64, ge=1, le=4096)
    max_chars: int = Field(2000, ge=32, description="longer texts are cut before tokenising")
    num_threads: int = Field(
        0, ge=0, description="torch CPU threads while embedding (0 = leave torch's default)")


class TrainingConfig(StrictModel):
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(256, ge=8)
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    temperature: float = Field(0.07, gt=0, description="InfoNCE softmax temperature")
    max_samples: int = Field(40000, ge=100, description="training pairs sampled at most")
    seed: int = 7


class NumericEncoderConfig(StrictModel):
    model_id: str = "num-window-core-v1"
    window: int = Field(21, ge=2, description="sessions in a numeric window")
    entity_types: tuple[EntityType, ...] = ("INSTRUMENT", "ISSUER", "SECTOR", "MARKET")
    hidden: int = Field(256, ge=16)
    positive_offset: int = Field(
        5, ge=1, description="a window and the same entity's window this many sessions later "
        "are a positive pair (contrastive over time-adjacent windows)")
    noise: float = Field(0.05, ge=0, description="Gaussian noise added to inputs in training")
    training: TrainingConfig = TrainingConfig(epochs=10)


class JointEncoderConfig(StrictModel):
    model_id: str = "joint-news-window-v1"
    hidden: int = Field(384, ge=16)
    dropout: float = Field(0.2, ge=0, lt=1, description="dropout in the projection heads")
    heldout_fraction: float = Field(
        0.15, gt=0, lt=0.5, description="the latest sessions of the training span kept out of "
        "training for the retrieval evaluation")
    recall_k: int = Field(10, ge=1)
    pool_size: int = Field(
        100, ge=2, description="held-out pairs ranked against each other in pools of this size "
        "(random recall@k = k / pool_size)")
    min_pairs: int = Field(200, ge=10, description="fewer training pairs than this is an error")
    training: TrainingConfig = TrainingConfig()


class RefitConfig(StrictModel):
    first_year: int = Field(2006, ge=1990, description="first yearly model partition")
    min_history_sessions: int = Field(
        120, ge=10, description="sessions of features needed before the cut to train")
    max_history_years: int = Field(
        0, ge=0, description="0 = expanding window; else train on the last N years only")


@register_config_model("encoders")
class EncodersConfig(VersionedConfig):
    """Text, numeric-window and joint encoders and their refit cadence. The markets that
    train them are those with ``runs: investment`` in configs/markets.yaml."""

    engine: Literal["encoders"] = "encoders"
    version: str = "1"
    text: TextEncoderConfig = TextEncoderConfig()
    numeric: NumericEncoderConfig = NumericEncoderConfig()
    joint: JointEncoderConfig = JointEncoderConfig()
    refit: RefitConfig = RefitConfig()
