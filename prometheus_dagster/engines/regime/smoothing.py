"""Causal smoothing of raw regime labels and empirical transition probabilities."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np


def smooth_labels(raw: Sequence[str | None], min_duration: int, confirmation: int,
                  urgent: Sequence[bool] | None = None, prompt: Sequence[bool] | None = None,
                  steady: Collection[str] = (), same_side: Collection[str] = (),
                  same_side_confirmation: int | None = None) -> list[str | None]:
    """Labels with no flip-flopping, each decided from raw labels up to its own session only.

    A regime, once entered, is held for at least ``min_duration`` sessions; after that it
    switches when another raw label has persisted for ``confirmation`` consecutive sessions,
    or at once when the session is ``urgent`` (stress beyond every prototype: a crash needs no
    confirmation), or when it is ``prompt`` and the current regime is not in ``steady`` (strong
    stress out of an already unsettled regime). A switch between two labels of ``same_side``
    (the two risk-on labels, which differ only in how volatile the calm is) waits for
    ``same_side_confirmation`` sessions instead (default: ``confirmation``), so a market near
    their boundary does not flip back and forth while switches into or out of risk-off stay
    fast. So every completed run lasts at least ``min_duration`` sessions. ``None`` (no raw
    label) keeps the current state."""
    slow = confirmation if same_side_confirmation is None else same_side_confirmation
    out: list[str | None] = []
    state: str | None = None
    run = 0
    pending: str | None = None
    pending_len = 0
    for i, lab in enumerate(raw):
        now = bool(urgent[i]) if urgent is not None else False
        now = now or (prompt is not None and bool(prompt[i]) and state not in steady)
        if lab is None:
            out.append(state)
            run += state is not None
            continue
        if state is None:
            state, run = lab, 1
        elif lab == state:
            pending, pending_len = None, 0
            run += 1
        else:
            if lab == pending:
                pending_len += 1
            else:
                pending, pending_len = lab, 1
            needed = slow if state in same_side and lab in same_side else confirmation
            if run >= min_duration and (pending_len >= needed or now):
                state, run, pending, pending_len = lab, 1, None, 0
            else:
                run += 1
        out.append(state)
    return out


def run_lengths(labels: Sequence[str | None]) -> list[tuple[str | None, int]]:
    """(label, length) of consecutive runs."""
    runs: list[tuple[str | None, int]] = []
    for lab in labels:
        if runs and runs[-1][0] == lab:
            runs[-1] = (lab, runs[-1][1] + 1)
        else:
            runs.append((lab, 1))
    return runs


def transition_matrix(labels: Sequence[str | None], states: Sequence[str],
                      prior: float = 0.5) -> np.ndarray:
    """Daily transition probabilities P[from, to] over ``states`` from consecutive labels, with
    ``prior`` pseudo-counts in every cell."""
    idx = {s: i for i, s in enumerate(states)}
    counts = np.full((len(states), len(states)), float(prior))
    for a, b in zip(labels[:-1], labels[1:], strict=True):
        if a in idx and b in idx:
            counts[idx[a], idx[b]] += 1.0
    totals = counts.sum(axis=1, keepdims=True)
    return np.where(totals > 0, counts / np.where(totals > 0, totals, 1.0), 0.0)


def next_regime_probabilities(transition: np.ndarray, states: Sequence[str], current: str
                              ) -> tuple[dict[str, float], dict[str, float], float]:
    """(tomorrow's label probabilities, where the regime goes when it ends, expected remaining
    sessions in the current regime)."""
    i = list(states).index(current)
    row = transition[i]
    tomorrow = {s: float(row[j]) for j, s in enumerate(states)}
    leave = 1.0 - float(row[i])
    after = {s: (float(row[j]) / leave if leave > 0 else 0.0)
             for j, s in enumerate(states) if j != i}
    expected = 1.0 / leave if leave > 0 else float("inf")
    return tomorrow, after, expected
