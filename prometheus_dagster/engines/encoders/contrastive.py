"""Symmetric InfoNCE (CLIP-style) training with in-batch negatives, and retrieval recall@k.

Pairs may share a group (several articles about the same entity and day point at the same
numeric window): items of the query's group other than the query's own partner are neither
positives nor negatives in the loss, and any of them counts as a hit in recall@k.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from prometheus_dagster.engines.encoders.config import TrainingConfig

Embed = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class TrainingReport:
    epochs: int
    pairs: int
    loss_per_epoch: list[float] = field(default_factory=list)

    @property
    def final_loss(self) -> float:
        return self.loss_per_epoch[-1] if self.loss_per_epoch else float("nan")


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float,
             groups: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE of unit vectors ``a[i] <-> b[i]``."""
    logits = a @ b.T / temperature
    if groups is not None:
        same = groups[:, None] == groups[None, :]
        off_diag = same & ~torch.eye(len(a), dtype=torch.bool)
        logits = logits.masked_fill(off_diag, float("-inf"))
    target = torch.arange(len(a))
    return 0.5 * (nn.functional.cross_entropy(logits, target)
                  + nn.functional.cross_entropy(logits.T, target))


def train_pairs(module: nn.Module, embed_a: Embed, embed_b: Embed, a: np.ndarray, b: np.ndarray,
                config: TrainingConfig, groups: np.ndarray | None = None,
                augment_noise: float = 0.0,
                progress: Callable[[int, float], None] | None = None) -> TrainingReport:
    """Train ``module`` so that ``embed_a(a[i])`` matches ``embed_b(b[i])``. Deterministic for
    a given seed (shuffling and noise come from seeded generators)."""
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    ta = torch.as_tensor(a, dtype=torch.float32)
    tb = torch.as_tensor(b, dtype=torch.float32)
    tg = torch.as_tensor(groups if groups is not None else np.arange(len(a)))
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    report = TrainingReport(epochs=config.epochs, pairs=len(a))
    batch = min(config.batch_size, len(a))
    module.train()
    for epoch in range(config.epochs):
        order = torch.randperm(len(a), generator=gen)
        total, count = 0.0, 0
        for start in range(0, len(a) - batch + 1, batch):
            idx = order[start:start + batch]
            xa, xb = ta[idx], tb[idx]
            if augment_noise:
                xa = xa + augment_noise * torch.randn(xa.shape, generator=gen)
                xb = xb + augment_noise * torch.randn(xb.shape, generator=gen)
            loss = info_nce(embed_a(xa), embed_b(xb), config.temperature, tg[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        report.loss_per_epoch.append(total / max(count, 1))
        if progress is not None:
            progress(epoch + 1, report.loss_per_epoch[-1])
    module.eval()
    return report


def recall_at_k(a: np.ndarray, b: np.ndarray, k: int, pool_size: int,
                groups: np.ndarray | None = None, seed: int = 0) -> dict[str, float]:
    """Retrieval of matching pairs among held-out pairs, in shuffled pools of ``pool_size``:
    the share of queries whose partner (or a same-group item) is among the ``k`` most similar
    candidates, both directions averaged; with the random baseline ``k / pool_size``."""
    n = len(a)
    g = groups if groups is not None else np.arange(n)
    order = np.random.default_rng(seed).permutation(n)
    hits: dict[str, list[float]] = {"a_to_b": [], "b_to_a": []}
    for start in range(0, n, pool_size):
        idx = order[start:start + pool_size]
        if len(idx) < max(k + 1, pool_size // 2):
            continue  # a short last pool would make retrieval easier than the baseline says
        sim = a[idx] @ b[idx].T
        same = g[idx][:, None] == g[idx][None, :]
        for name, s in (("a_to_b", sim), ("b_to_a", sim.T)):
            top = np.argsort(-s, axis=1, kind="stable")[:, :k]
            hits[name].extend(same[np.arange(len(idx))[:, None], top].any(axis=1))
    if not hits["a_to_b"]:
        return {"recall": float("nan"), "random": k / pool_size, "queries": 0.0}
    ab, ba = float(np.mean(hits["a_to_b"])), float(np.mean(hits["b_to_a"]))
    return {"recall": 0.5 * (ab + ba), "recall_text_to_numeric": ab,
            "recall_numeric_to_text": ba, "random": k / pool_size,
            "queries": float(len(hits["a_to_b"]))}

