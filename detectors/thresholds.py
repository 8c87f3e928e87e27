"""Thresholds on calibrated scores (fixed or a streaming quantile) and hysteresis.

>>> thr = make_threshold("quantile", 0.99, quantile=0.9)
>>> for i in range(2000):
...     thr.update((i % 100) / 100)
>>> 0.99 <= thr.value < 1.0   # never below the configured floor
True
>>> h = Hysteresis(min_duration=3)
>>> [h.update(s, 0.9, 0.5) for s in (0.95, 0.1, 0.1, 0.1, 0.6)]
[True, True, True, False, False]
"""

from __future__ import annotations

import math
from typing import Protocol

from detectors.errors import DetectorError


def threshold_for_budget(false_incidents: float, period_s: float, event_interval_s: float,
                         slack: float = 2.0) -> float:
    """The calibrated-score threshold that keeps a stream within a false-alarm budget.

    A calibrated score ``s`` is exceeded by about ``1 - s`` of a stationary stream's events,
    so ``false_incidents`` per ``period_s`` at one event every ``event_interval_s`` allows a
    per-event rate of ``false_incidents * event_interval_s / period_s``; it is divided by
    ``slack`` (calibration holds within a factor of 2) and rounded down to a power of ten.

    >>> threshold_for_budget(1, 30 * 86400, 60)   # one per month of one-minute data
    0.99999
    >>> threshold_for_budget(1, 86400, 60)        # one per day
    0.9999
    """
    if false_incidents <= 0 or period_s <= 0 or event_interval_s <= 0 or slack < 1:
        raise DetectorError("a false-alarm budget needs positive incidents, period and "
                            "interval, and a slack of at least 1")
    rate = false_incidents * event_interval_s / period_s / slack
    if rate >= 0.5:
        raise DetectorError(f"a budget of {false_incidents} false incidents per {period_s} s "
                            f"at one event per {event_interval_s} s allows most events to alarm")
    return round(1.0 - 10.0 ** math.floor(math.log10(rate)), 12)


# The default false-alarm budget (docs/detectors.md, "Calibration and the false-alarm
# budget"): at most one false incident per stream per 30 days of one-minute events.
BUDGET = (1.0, 30 * 86400.0, 60.0)
DEFAULT_THRESHOLD = threshold_for_budget(*BUDGET)  # 0.99999: a per-event rate of 1e-5
# Severity bands on the same scale: each band is ten times rarer than the one below.
DEFAULT_BANDS: tuple[tuple[str, float], ...] = (
    ("critical", round(1.0 - (1.0 - DEFAULT_THRESHOLD) / 100.0, 12)),
    ("error", round(1.0 - (1.0 - DEFAULT_THRESHOLD) / 10.0, 12)),
    ("warning", DEFAULT_THRESHOLD),
    ("info", 0.0),
)


class Threshold(Protocol):
    value: float

    def update(self, score: float) -> None: ...


class FixedThreshold:
    """A constant threshold."""

    __slots__ = ("value",)

    def __init__(self, value: float) -> None:
        self.value = value

    def update(self, score: float) -> None:
        return None


class QuantileThreshold:
    """Streaming estimate of the ``quantile`` of calibrated scores, never below ``floor``.

    Stochastic approximation in logit space (O(1), no buffer): the estimate steps up by
    ``rate * q`` when a score exceeds it and down by ``rate * (1 - q)`` otherwise, so it
    settles where a fraction ``1 - q`` of scores exceed it. Useful when a stream's calibrated
    scores are systematically high (a detector that fits the stream badly).
    """

    __slots__ = ("value", "floor", "q", "rate", "_logit")

    def __init__(self, floor: float, quantile: float = 0.999, rate: float = 0.05) -> None:
        if not 0.0 < quantile < 1.0:
            raise DetectorError(f"threshold quantile must be in (0, 1), got {quantile!r}")
        self.floor = floor
        self.q = quantile
        self.rate = rate
        self._logit = _logit(floor)
        self.value = floor

    def update(self, score: float) -> None:
        if score > 1.0 - 1e-12 or score < 1e-12:
            score = min(max(score, 1e-12), 1.0 - 1e-12)
        above = _logit(score) > self._logit
        self._logit += self.rate * (self.q if above else self.q - 1.0)
        est = 1.0 / (1.0 + math.exp(-self._logit))
        self.value = est if est > self.floor else self.floor


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1.0 - 1e-12)
    return math.log(p / (1.0 - p))


def make_threshold(mode: str, value: float, quantile: float = 0.999) -> Threshold:
    """``"fixed"`` (the default) or ``"quantile"`` (adaptive, floored at ``value``)."""
    if not 0.0 <= value <= 1.0:
        raise DetectorError(f"threshold must be in [0, 1] (a calibrated score), got {value!r}")
    if mode == "fixed":
        return FixedThreshold(value)
    if mode == "quantile":
        return QuantileThreshold(value, quantile)
    raise DetectorError(f"unknown threshold mode {mode!r}; choose one of: fixed, quantile")


class Hysteresis:
    """An anomaly state: opens at ``score >= upper``; closes once ``score < lower`` and the
    state has lasted ``min_duration`` events. Stops flapping around a single threshold."""

    __slots__ = ("min_duration", "state", "length")

    def __init__(self, min_duration: int = 1) -> None:
        if min_duration < 1:
            raise DetectorError(f"min_duration must be >= 1 event, got {min_duration!r}")
        self.min_duration = min_duration
        self.state = False
        self.length = 0

    def update(self, score: float, upper: float, lower: float) -> bool:
        if not self.state:
            if score >= upper:
                self.state = True
                self.length = 1
            return self.state
        self.length += 1
        if score < lower and self.length > self.min_duration:
            self.state = False
            self.length = 0
        return self.state
