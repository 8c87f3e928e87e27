"""Seeded synthetic streams shared by the detector tests."""

from __future__ import annotations

import math

import numpy as np


def spiky_stream(n: int = 600, seed: int = 0, start: int = 200, every: int = 40
                 ) -> tuple[list[dict[str, float]], np.ndarray]:
    """Two features (a sine plus noise, and noise) with 10-sigma spikes on ``a`` after
    ``start``, one in each block of ``every`` events at a seeded random offset (so the
    spikes are not periodic: a seasonal detector must not learn them as normal)."""
    rng = np.random.default_rng(seed)
    spikes = {start + b + int(rng.integers(3, every - 3)) for b in range(0, n - start, every)}
    events, labels = [], np.zeros(n, dtype=bool)
    for i in range(n):
        a = 10.0 + math.sin(i / 8.0) + 0.2 * rng.normal()
        b = 5.0 + 0.3 * rng.normal()
        if i in spikes:
            a += 10.0
            labels[i] = True
        events.append({"a": float(a), "b": float(b)})
    return events, labels


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC-AUC by the rank-sum (Mann-Whitney) formula, ties averaged."""
    scores = np.asarray(scores, float)
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    # average the ranks of tied scores
    uniq, inv, counts = np.unique(scores, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    ranks = (sums / counts)[inv]
    pos = labels.sum()
    neg = len(labels) - pos
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))
