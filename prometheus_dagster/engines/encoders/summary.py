"""Fixed-length summaries of numeric windows: the input of the numeric encoders.

A window (sessions x features, from ``features.build_numeric_windows``) becomes, per feature of
the widest entity type (ISSUER), its last value, mean over the last 5 sessions, mean and
standard deviation over the window, followed by a one-hot of the entity type. Entity types
with fewer features are padded with zeros (the ``fundamentals_observed`` flag is then 0).
"""

from __future__ import annotations

import numpy as np

from prometheus_dagster.engines.features import ENTITY_TYPES, window_feature_names

ALL_FEATURES = window_feature_names("ISSUER")
RECENT_SESSIONS = 5
SUMMARY_DIM = 4 * len(ALL_FEATURES) + len(ENTITY_TYPES)


def summarise_windows(windows: np.ndarray, entity_type: str) -> np.ndarray:
    """float32 [n, SUMMARY_DIM] summaries of float [n, window, n_features] windows."""
    names = window_feature_names(entity_type)
    n = windows.shape[0]
    full = np.zeros((n, windows.shape[1], len(ALL_FEATURES)), dtype=np.float64)
    if n:
        full[:, :, [ALL_FEATURES.index(f) for f in names]] = windows
    recent = full[:, -RECENT_SESSIONS:, :]
    onehot = np.zeros((n, len(ENTITY_TYPES)))
    onehot[:, ENTITY_TYPES.index(entity_type.upper())] = 1.0
    out = np.concatenate([full[:, -1, :], recent.mean(axis=1), full.mean(axis=1),
                          full.std(axis=1), onehot], axis=1)
    return out.astype(np.float32)
