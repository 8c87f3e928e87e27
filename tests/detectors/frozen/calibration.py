"""Per-stream calibration: map any detector's raw score to [0, 1] so one threshold fits all.

A calibrated score reads as "the probability mass of normal behaviour below this raw score":
0.999 means about one normal event in a thousand scores this high.

* ``"gaussian"``: for |z|-like raw scores (zscore, sad): the two-sided normal mass within z.
  Stateless.
* ``"lognormal"``: for everything else. A running (exponentially weighted) mean and variance of
  the signed log of the raw score, then the one-sided normal CDF. O(1) time and memory per
  event, no allocation. The log tames the heavy right tails of distance/density scores and
  the sign keeps negative raw scores (PyOD decision functions, SVM margins) monotone.
* ``"identity"``: the detector is already calibrated (its class sets ``calibrated = True``);
  the score is only clamped to [0, 1].

>>> cal = make_calibrator("lognormal", warmup=5)
>>> for raw in [1.0, 1.2, 0.9, 1.1, 1.0, 0.95, 1.05]:
...     _ = cal(raw)
>>> cal.warming_up, cal.score(1.0) < 0.9 < cal.score(50.0)
(False, True)
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from detectors.errors import DetectorError

_SQRT2 = math.sqrt(2.0)


class Calibrator(Protocol):
    """Maps raw scores to [0, 1]; ``__call__`` scores with the past, then learns the raw."""

    name: str

    @property
    def warming_up(self) -> bool: ...

    def score(self, raw: float) -> float: ...

    def __call__(self, raw: float) -> float: ...


def gaussian_tail(z: float) -> float:
    """Map a |z|-like raw score to [0, 1]: the two-sided normal probability mass within z.

    >>> round(gaussian_tail(3.0), 4)
    0.9973
    """
    if not math.isfinite(z):
        return 1.0
    return math.erf(abs(z) / _SQRT2)


class IdentityCalibrator:
    """Pass-through for detectors that emit calibrated scores already (clamped to [0, 1])."""

    __slots__ = ()
    name = "identity"
    warming_up = False

    def score(self, raw: float) -> float:
        if raw != raw:  # NaN: treat as maximally surprising rather than silently normal
            return 1.0
        return 0.0 if raw < 0.0 else 1.0 if raw > 1.0 else raw

    __call__ = score


class GaussianTailCalibrator:
    """Two-sided normal tail for |z|-like scores; stateless."""

    __slots__ = ()
    name = "gaussian"
    warming_up = False

    def score(self, raw: float) -> float:
        return gaussian_tail(raw)

    __call__ = score


class LogNormalCalibrator:
    """Running mean/variance of slog(raw) -> one-sided normal CDF.

    Learning winsorizes at ``clip`` standard deviations so a burst of anomalies does not
    widen the normal band and hide the next ones.
    """

    __slots__ = ("alpha", "warmup", "clip", "n", "mean", "var")
    name = "lognormal"

    def __init__(self, alpha: float = 0.005, warmup: int = 30, clip: float = 4.0) -> None:
        if not 0.0 < alpha < 1.0:
            raise DetectorError(f"calibration alpha must be in (0, 1), got {alpha!r}")
        self.alpha = alpha
        self.warmup = warmup
        self.clip = clip
        self.n = 0
        self.mean = 0.0
        self.var = 0.0

    @property
    def warming_up(self) -> bool:
        return self.n < self.warmup

    @staticmethod
    def _slog(raw: float) -> float:
        return math.copysign(math.log1p(abs(raw)), raw)

    def score(self, raw: float) -> float:
        if raw != raw:
            return 1.0
        if self.n == 0:
            return 0.5
        s = self._slog(raw)
        # The floor keeps a constant raw score (flat stream) from dividing by zero.
        std = math.sqrt(self.var) + 1e-9 + 1e-6 * abs(self.mean)
        z = (s - self.mean) / std
        return 0.5 * (1.0 + math.erf(z / _SQRT2))

    def learn(self, raw: float) -> None:
        if raw != raw or math.isinf(raw):
            return
        s = self._slog(raw)
        self.n += 1
        if self.n == 1:
            self.mean = s
            return
        diff = s - self.mean
        if self.var > 0.0 and self.n > self.warmup:
            bound = self.clip * math.sqrt(self.var)
            diff = -bound if diff < -bound else bound if diff > bound else diff
        rate = self.alpha if self.n > self.warmup else max(self.alpha, 1.0 / self.n)
        self.mean += rate * diff
        self.var = (1.0 - rate) * (self.var + rate * diff * diff)

    def __call__(self, raw: float) -> float:
        out = self.score(raw)
        self.learn(raw)
        return out


CALIBRATORS = ("auto", "identity", "gaussian", "lognormal")


def make_calibrator(kind: str, detector: Any = None, **params: Any) -> Calibrator:
    """Build the calibrator ``kind``; ``"auto"`` asks the detector (``calibrated``/``calibration``).

    >>> make_calibrator("auto").name
    'lognormal'
    """
    if kind == "auto":
        if getattr(detector, "calibrated", False):
            kind = "identity"
        else:
            kind = getattr(detector, "calibration", "lognormal")
    if kind == "identity":
        return IdentityCalibrator()
    if kind == "gaussian":
        return GaussianTailCalibrator()
    if kind == "lognormal":
        return LogNormalCalibrator(**params)
    raise DetectorError(
        f"unknown calibration {kind!r}; choose one of: {', '.join(CALIBRATORS)}"
    )
