"""Shared plumbing for the River adapters: warm-up counting and missing-feature filling.

River models with a fixed feature set (trees, projections, linear models) see a missing
feature as 0 or walk an arbitrary branch; filling it with its last seen value keeps a
feature that comes and goes from looking anomalous. New features are simply learned.

>>> f = FeatureFiller()
>>> f.remember({"a": 1.0, "b": 2.0})
>>> f.complete({"a": 3.0})
{'a': 3.0, 'b': 2.0}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

from detectors.protocol import Features

M = TypeVar("M")


class FeatureFiller:
    """Remembers each feature's last value; ``complete`` fills the ones an event lacks."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: dict[str, float] = {}

    def complete(self, x: Features) -> Mapping[str, float]:
        last = self.last
        # The common case (same features every event) allocates nothing.
        if len(x) >= len(last) and all(k in x for k in last):
            return x
        full = dict(last)
        full.update(x)
        return full

    def remember(self, x: Features) -> None:
        self.last.update(x)


class OnlineMinMax:
    """Per-feature online min-max scaling to [0, 1] (HalfSpaceTrees needs it), made robust.

    A plain running min/max lets one spike stretch the range forever and squeeze normal
    data into a sliver of [0, 1], where the trees cannot tell points apart (measured: the
    HST AUC on the test stream fell to ~0.6). So the range is mean +- ``k`` std of an
    exponentially weighted, winsorized estimate. Values outside it map outside [0, 1],
    clipped to [-1, 2] so an infinite spike cannot break a tree walk.
    """

    __slots__ = ("alpha", "k", "n", "mean", "var")

    def __init__(self, alpha: float = 0.01, k: float = 4.0) -> None:
        self.alpha = alpha
        self.k = k
        self.n: dict[str, int] = {}
        self.mean: dict[str, float] = {}
        self.var: dict[str, float] = {}

    def learn(self, x: Features) -> None:
        mean, var, count = self.mean, self.var, self.n
        for key, v in x.items():
            n = count.get(key, 0) + 1
            count[key] = n
            if n == 1:
                mean[key], var[key] = v, 0.0
                continue
            m, s2 = mean[key], var[key]
            diff = v - m
            if s2 > 0.0 and n > 30:  # winsorize so a spike does not widen the range
                bound = self.k * math.sqrt(s2)
                diff = -bound if diff < -bound else bound if diff > bound else diff
            rate = max(self.alpha, 1.0 / n)
            mean[key] = m + rate * diff
            var[key] = (1.0 - rate) * (s2 + rate * diff * diff)

    def transform(self, x: Features) -> dict[str, float]:
        out: dict[str, float] = {}
        mean, var, k = self.mean, self.var, self.k
        for key, v in x.items():
            m = mean.get(key)
            if m is None:
                out[key] = 0.5
                continue
            span = 2.0 * k * math.sqrt(var[key]) + 1e-9 + 1e-6 * abs(m)
            s = 0.5 + (v - m) / span
            out[key] = -1.0 if s < -1.0 else 2.0 if s > 2.0 else (0.5 if s != s else s)
        return out


def finite(x: Features) -> bool:
    """True when every value is a finite float (River models must never learn NaN/inf)."""
    for v in x.values():
        if v != v or v in (float("inf"), float("-inf")):
            return False
    return True


def per_feature_models(models: dict[str, M], x: Features, new: Callable[[], M]) -> Iterator[tuple[M, float]]:
    """(model, value) for each finite feature of ``x``; a feature seen first gets ``new()``.

    The per-feature adapters learn through this, so none of them ever learns NaN or inf.
    """
    for k, v in x.items():
        if v != v or v in (float("inf"), float("-inf")):
            continue
        m = models.get(k)
        if m is None:
            m = models[k] = new()
        yield m, v
