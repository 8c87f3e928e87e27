"""Exponentially weighted z-score: the cheap, robust default for univariate streams."""

from __future__ import annotations

import math

from detectors.protocol import Features
from detectors.registry import register


@register("zscore", test_params={"alpha": 0.05, "warmup": 10})
class EWZScore:
    """Distance from an exponentially weighted mean, in exponentially weighted std units.

    Each feature keeps its own mean and variance, so features may appear or disappear.
    Learning winsorizes residuals at ``clip`` standard deviations, so one spike does not
    inflate the variance and hide the next one. The raw score is the largest |z|.

    >>> from detectors import create
    >>> det = create("zscore", alpha=0.1, warmup=5)
    >>> for v in [1.0, 1.1, 0.9, 1.0, 1.05, 0.95]:
    ...     det.learn_one({"value": v})
    >>> det.score_one({"value": 1.0}) < 1.0 < det.score_one({"value": 5.0})
    True
    """

    name = "zscore"
    calibration = "gaussian"  # the raw score is a |z|

    def __init__(self, alpha: float = 0.02, warmup: int = 30, clip: float = 4.0) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        self.alpha = alpha
        self.warmup = warmup
        self.clip = clip
        self.n = 0
        self._mean: dict[str, float] = {}
        self._var: dict[str, float] = {}
        self.last_contributions: dict[str, float] = {}

    @property
    def warming_up(self) -> bool:
        return self.n < self.warmup

    def _z(self, key: str, value: float) -> float:
        mean = self._mean.get(key)
        if mean is None:
            return 0.0
        # The floor keeps a perfectly flat stream from dividing by zero.
        std = math.sqrt(self._var[key]) + 1e-9 + 1e-6 * abs(mean)
        return abs(value - mean) / std

    def score_one(self, x: Features) -> float:
        # Reuses one dict for the per-feature |z| (the hot path allocates nothing per event);
        # the pipeline turns it into shares only for anomalies.
        zs = self.last_contributions
        zs.clear()
        best = 0.0
        for k, v in x.items():
            z = self._z(k, v)
            if z != z:  # NaN input: maximally surprising
                z = float("inf")
            zs[k] = z
            if z > best:
                best = z
        return best

    def learn_one(self, x: Features) -> None:
        self.n += 1
        a = self.alpha
        for key, value in x.items():
            if value != value or math.isinf(value):  # never learn NaN/inf
                continue
            mean = self._mean.get(key)
            if mean is None:
                self._mean[key] = value
                self._var[key] = 0.0
                continue
            var = self._var[key]
            diff = value - mean
            if var > 0.0:
                bound = self.clip * math.sqrt(var)
                diff = max(-bound, min(bound, diff))
            # Before variance exists use a faster rate so warm-up converges quickly.
            rate = a if self.n > self.warmup else max(a, 1.0 / self.n)
            self._mean[key] = mean + rate * diff
            self._var[key] = (1.0 - rate) * (var + rate * diff * diff)
