"""Standard absolute deviation (River ``StandardAbsoluteDeviation``), one per feature."""

from __future__ import annotations

from river import anomaly, stats

from detectors.protocol import Features
from detectors.registry import register
from detectors.river_base import per_feature_models


@register("sad", test_params={"window": 200, "warmup": 10})
class StandardAbsoluteDeviationDetector:
    """|x - mean| / std per feature; the raw score is the largest. The cheapest detector for
    univariate metrics with a stable level. River's version never forgets; ``window`` (events)
    swaps in exponentially weighted mean and variance (fading factor 2 / (window + 1)) so the
    baseline follows level shifts in O(1) memory (None: River's cumulative statistics).

    >>> from detectors import create
    >>> det = create("sad", window=100, warmup=5)
    >>> for v in [1.0, 1.1, 0.9, 1.0, 1.05, 0.95]:
    ...     det.learn_one({"value": v})
    >>> det.score_one({"value": 1.0}) < 1.0 < det.score_one({"value": 5.0})
    True
    """

    name = "sad"
    calibration = "gaussian"

    def __init__(self, window: int | None = 1000, warmup: int = 30) -> None:
        self.window = window
        self.warmup = warmup
        self.n = 0
        self.models: dict[str, anomaly.StandardAbsoluteDeviation] = {}
        self.last_contributions: dict[str, float] = {}

    @property
    def warming_up(self) -> bool:
        return self.n < self.warmup

    def _new(self) -> anomaly.StandardAbsoluteDeviation:
        if self.window is None:
            return anomaly.StandardAbsoluteDeviation()
        fading = 2.0 / (self.window + 1.0)
        m = anomaly.StandardAbsoluteDeviation(sub_stat=stats.EWMean(fading_factor=fading))
        m.variance = stats.EWVar(fading_factor=fading)  # type: ignore[assignment]
        return m

    def score_one(self, x: Features) -> float:
        best = 0.0
        contrib = self.last_contributions
        contrib.clear()
        for k, v in x.items():
            m = self.models.get(k)
            z = 0.0 if m is None else m.score_one(None, v)
            if z != z:
                z = float("inf")
            contrib[k] = z
            if z > best:
                best = z
        return best

    def learn_one(self, x: Features) -> None:
        self.n += 1
        for m, v in per_feature_models(self.models, x, self._new):
            m.learn_one(None, v)
