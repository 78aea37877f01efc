"""PyTorch encoders: the numeric window encoder and the joint text <-> numeric encoder.

Both end in an L2 normalisation, so outputs are 384-d unit vectors; cosine similarity is a dot
product.
"""

from __future__ import annotations

import torch
from torch import nn

from prometheus_dagster.engines.encoders.schemas import EMBEDDING_DIM
from prometheus_dagster.engines.encoders.summary import SUMMARY_DIM


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return nn.functional.normalize(x, dim=-1)


class NumericWindowEncoder(nn.Module):
    """Window summary (``summary.SUMMARY_DIM``) -> 384-d unit vector."""

    def __init__(self, hidden: int = 256, in_dim: int = SUMMARY_DIM):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.GELU(), nn.LayerNorm(hidden),
            nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, EMBEDDING_DIM))

    def forward(self, summary: torch.Tensor) -> torch.Tensor:
        return _normalise(self.net(summary))


class JointEncoder(nn.Module):
    """Projection heads into one space for text embeddings and numeric windows.

    The text head is residual over the (frozen) sentence embedding; the numeric head sees the
    (frozen) numeric encoder's embedding together with the window summary, so day-level detail
    the numeric encoder smooths away is still available."""

    def __init__(self, numeric_encoder: NumericWindowEncoder, hidden: int = 384,
                 dropout: float = 0.0):
        super().__init__()
        self.numeric_encoder = numeric_encoder
        for p in self.numeric_encoder.parameters():
            p.requires_grad_(False)
        self.text_head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(EMBEDDING_DIM, hidden), nn.GELU(),
            nn.Dropout(dropout), nn.Linear(hidden, EMBEDDING_DIM))
        self.numeric_head = nn.Sequential(
            nn.Linear(EMBEDDING_DIM + SUMMARY_DIM, hidden), nn.GELU(), nn.LayerNorm(hidden),
            nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.GELU(),
            nn.Dropout(dropout), nn.Linear(hidden, EMBEDDING_DIM))

    def embed_text(self, text_embedding: torch.Tensor) -> torch.Tensor:
        return _normalise(text_embedding + self.text_head(text_embedding))

    def embed_numeric(self, summary: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            base = self.numeric_encoder(summary)
        return _normalise(self.numeric_head(torch.cat([base, summary], dim=-1)))
