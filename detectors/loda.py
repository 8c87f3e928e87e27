"""LODA: lightweight on-line detector of anomalies (River ``LODA``) on standardised features."""

from __future__ import annotations

from river import anomaly, preprocessing

from detectors.protocol import Features
from detectors.registry import register
from detectors.river_base import FeatureFiller, finite


@register("loda", test_params={"n_random_cuts": 20, "n_bins": 10, "seed": 3, "warmup": 20})
class LODADetector:
    """An ensemble of 1-d histograms over sparse random projections: the mean negative log
    density. Good for multivariate streams with many features; the feature set is fixed at
    the first event (later features are ignored, missing ones take their last value).

    >>> from detectors import create
    >>> det = create("loda", n_random_cuts=20, seed=1, warmup=5)
    >>> for i in range(300):
    ...     det.learn_one({"a": (i % 7) / 7, "b": (i % 5) / 5})
    >>> det.score_one({"a": 0.5, "b": 0.5}) < det.score_one({"a": 40.0, "b": 30.0})
    True
    """

    name = "loda"
    calibration = "lognormal"

    def __init__(
        self, n_bins: int = 10, n_random_cuts: int = 25, seed: int | None = 0, warmup: int = 30
    ) -> None:
        self.scaler = preprocessing.StandardScaler()
        self.model = anomaly.LODA(n_bins=n_bins, n_random_cuts=n_random_cuts, seed=seed)
        self.filler = FeatureFiller()
        self.warmup = warmup
        self.n = 0

    @property
    def warming_up(self) -> bool:
        return self.n < self.warmup

    def score_one(self, x: Features) -> float:
        if not finite(x):
            return float("inf")
        if self.n == 0:
            return 0.0
        return float(self.model.score_one(self.scaler.transform_one(dict(self.filler.complete(x)))))

    def learn_one(self, x: Features) -> None:
        if not finite(x):
            return
        full = dict(self.filler.complete(x))
        self.scaler.learn_one(full)
        self.model.learn_one(self.scaler.transform_one(full))
        self.filler.remember(x)
        self.n += 1
