"""Predictive anomaly detection (River ``PredictiveAnomalyDetection``), one per feature.

Each feature gets an autoregressive linear model on its own standardised lags; the score
is the squared forecast error relative to River's running error band.
"""

from __future__ import annotations

import math
from collections import deque

from river import anomaly, linear_model, optim

from detectors.protocol import Features
from detectors.registry import register
from detectors.river_base import per_feature_models


class _FeatureModel:
    """One feature: EW mean/var (standardising), recent lags, and a River PAD."""

    __slots__ = ("pad", "lags", "mean", "var", "n")

    def __init__(self, n_lags: int, n_std: float, lr: float) -> None:
        model = linear_model.LinearRegression(optimizer=optim.SGD(lr), intercept_lr=lr)
        self.pad = anomaly.PredictiveAnomalyDetection(model, horizon=1, n_std=n_std)
        self.lags: deque[float] = deque([0.0] * n_lags, maxlen=n_lags)
        self.mean = 0.0
        self.var = 0.0
        self.n = 0

    def z(self, v: float) -> float:
        z = (v - self.mean) / (math.sqrt(self.var) + 1e-9 + 1e-6 * abs(self.mean))
        # Clamped: beyond a million sigmas "huge" is all we need, and squares stay finite.
        return -1e6 if z < -1e6 else 1e6 if z > 1e6 else z

    def features(self) -> dict[str, float]:
        return {f"lag{i}": v for i, v in enumerate(self.lags)}

    def raw(self, v: float) -> float:
        """Squared error / (mean + n_std * std of past squared errors); unsaturated."""
        if self.n < 2:
            return 0.0
        pad = self.pad
        model = pad.predictive_model
        e = model.predict_one(self.features()) - self.z(v)  # type: ignore[attr-defined]
        err = e * e
        band = pad.dynamic_mae.get() + pad.n_std * math.sqrt(pad.dynamic_se_variance.get())
        return err / band if band > 0.0 else 0.0

    def learn(self, v: float, alpha: float) -> None:
        self.n += 1
        if self.n == 1:
            self.mean = v
        else:
            diff = v - self.mean
            if self.var > 0.0 and self.n > 30:  # winsorize: one spike must not own the scale
                bound = 4.0 * math.sqrt(self.var)
                diff = -bound if diff < -bound else bound if diff > bound else diff
            rate = max(alpha, 1.0 / self.n)
            self.mean += rate * diff
            self.var = (1.0 - rate) * (self.var + rate * diff * diff)
        # The regression learns winsorized targets so a spike cannot blow up its weights.
        z = self.z(v)
        x, y = self.features(), -10.0 if z < -10.0 else 10.0 if z > 10.0 else z
        # River's score_one updates its error statistics; learn_one fits the regression.
        self.pad.score_one(x, y)
        self.pad.learn_one(x, y)
        self.lags.appendleft(y)


@register("pad", test_params={"n_lags": 3, "warmup": 20})
class PredictiveDetector:
    """For univariate metrics with autocorrelated structure (smooth trends, oscillations):
    flags values the recent past did not predict. River's default ``n_std=3`` saturates its
    score at 1.0 for errors beyond ~2.3 sigma; we keep the ratio unsaturated so calibration
    can rank large errors, and use ``n_std`` only to scale it.

    >>> from detectors import create
    >>> det = create("pad", warmup=5)
    >>> for i in range(300):
    ...     det.learn_one({"value": math.sin(i / 5)})
    >>> det.score_one({"value": math.sin(300 / 5)}) < det.score_one({"value": 8.0})
    True
    """

    name = "pad"
    calibration = "lognormal"

    def __init__(
        self, n_lags: int = 5, n_std: float = 3.0, lr: float = 0.01, alpha: float = 0.01,
        warmup: int = 30,
    ) -> None:
        self.n_lags = n_lags
        self.n_std = n_std
        self.lr = lr
        self.alpha = alpha
        self.warmup = warmup
        self.n = 0
        self.models: dict[str, _FeatureModel] = {}
        self.last_contributions: dict[str, float] = {}

    @property
    def warming_up(self) -> bool:
        return self.n < self.warmup

    def score_one(self, x: Features) -> float:
        best = 0.0
        contrib = self.last_contributions
        contrib.clear()
        for k, v in x.items():
            m = self.models.get(k)
            if v != v or v in (float("inf"), float("-inf")):
                r = float("inf")
            else:
                r = 0.0 if m is None else m.raw(v)
            contrib[k] = r
            if r > best:
                best = r
        return best

    def learn_one(self, x: Features) -> None:
        self.n += 1
        for m, v in per_feature_models(self.models, x, self._new):
            m.learn(v, self.alpha)

    def _new(self) -> _FeatureModel:
        return _FeatureModel(self.n_lags, self.n_std, self.lr)
