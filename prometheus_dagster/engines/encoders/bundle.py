"""Saving and loading trained encoders as a directory (weights + metadata), the artifact that
is logged to MLflow and registered as a model version."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from prometheus_dagster.core.errors import ModelNotFoundError
from prometheus_dagster.engines.encoders.models import JointEncoder, NumericWindowEncoder

META_FILE = "encoder.json"
WEIGHTS_FILE = "weights.pt"


@dataclass
class EncoderBundle:
    """A trained numeric encoder and the joint encoder built on it, with their metadata
    (model ids, window, trained_through, training metrics)."""

    numeric: NumericWindowEncoder
    joint: JointEncoder
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, directory: str | Path) -> Path:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        torch.save(self.joint.state_dict(), path / WEIGHTS_FILE)
        (path / META_FILE).write_text(json.dumps(self.meta, indent=2, sort_keys=True,
                                                 default=str))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> EncoderBundle:
        path = Path(directory)
        if not (path / META_FILE).exists() or not (path / WEIGHTS_FILE).exists():
            raise ModelNotFoundError(f"{path} is not an encoder bundle (needs {META_FILE} and "
                                     f"{WEIGHTS_FILE})")
        meta = json.loads((path / META_FILE).read_text())
        numeric = NumericWindowEncoder(hidden=int(meta["numeric_hidden"]))
        joint = JointEncoder(numeric, hidden=int(meta["joint_hidden"]))
        joint.load_state_dict(torch.load(path / WEIGHTS_FILE, weights_only=True))
        joint.eval()
        return cls(numeric=numeric, joint=joint, meta=meta)
