"""Gaussian scorer (River ``GaussianScorer``), one per feature."""

from __future__ import annotations

import math

from river import anomaly

from detectors.protocol import Features
from detectors.registry import register
from detectors.river_base import per_feature_models


@register("gaussian", test_params={"window_size": 200, "grace_period": 10, "warmup": 10})
class GaussianDetector:
    """Fits a normal distribution to each feature (over a rolling window, or forever if
    ``window_size`` is None) and scores 2|CDF(x) - 1/2|: the normal mass closer to the mean
    than x. That is already a calibrated probability, so the pipeline passes it through.

    >>> from detectors import create
    >>> det = create("gaussian", window_size=50, grace_period=5, warmup=5)
    >>> for v in [1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.02]:
    ...     det.learn_one({"value": v})
    >>> det.score_one({"value": 1.0}) < 0.9 < det.score_one({"value": 5.0})
    True
    """

    name = "gaussian"
    calibrated = True
    calibration = "identity"

    def __init__(
        self, window_size: int | None = 1000, grace_period: int = 30, warmup: int = 30
    ) -> None:
        self.window_size = window_size
        self.grace_period = grace_period
        self.warmup = warmup
        self.n = 0
        self.models: dict[str, anomaly.GaussianScorer] = {}
        self.last_contributions: dict[str, float] = {}

    @property
    def warming_up(self) -> bool:
        return self.n < max(self.warmup, self.grace_period)

    def score_one(self, x: Features) -> float:
        best = 0.0
        contrib = self.last_contributions
        contrib.clear()
        for k, v in x.items():
            m = self.models.get(k)
            if v != v or v in (float("inf"), float("-inf")):
                s = 1.0
            else:
                s = 0.0 if m is None else float(m.score_one(None, v))
            # -log(1 - s) grows with |z| without saturating, so shares stay informative.
            contrib[k] = -math.log(max(1.0 - s, 1e-300))
            if s > best:
                best = s
        return best

    def learn_one(self, x: Features) -> None:
        self.n += 1
        for m, v in per_feature_models(self.models, x, self._new):
            m.learn_one(None, v)

    def _new(self) -> anomaly.GaussianScorer:
        return anomaly.GaussianScorer(window_size=self.window_size, grace_period=self.grace_period)
