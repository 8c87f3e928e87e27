"""Optional daily/weekly seasonal baseline: subtract each feature's typical value for this
hour of the day (or of the week) before the detector sees it.

The profile is an exponentially weighted mean per (feature, slot). Its seasonal offset
(slot mean minus the feature's overall mean) is shrunk by ``visits / (visits + prior)``, so
a slot seen a few times barely changes the value and a mature profile removes the whole
daily swing. That lets a plain detector flag "high for a Tuesday 3 am" instead of flagging
every morning ramp. Uses event time (Unix seconds, UTC).

>>> s = SeasonalBaseline("daily", prior=1.0)
>>> for day in range(20):
...     for hour in range(24):
...         _ = s.adjust({"v": 100.0 if hour == 9 else 10.0}, day * 86400 + hour * 3600)
>>> round(s.adjust({"v": 100.0}, 20 * 86400 + 9 * 3600)["v"])  # the usual 9 am peak
18
>>> round(s.adjust({"v": 100.0}, 20 * 86400 + 3 * 3600)["v"])  # the same value at 3 am
104
"""

from __future__ import annotations

from detectors.errors import DetectorError
from detectors.protocol import Features

PERIODS = {"daily": (24, 3600.0), "weekly": (168, 3600.0)}


class SeasonalBaseline:
    """Per-feature hourly profile over a day or a week (24 or 168 slots)."""

    __slots__ = ("period", "slots", "width", "alpha", "prior", "profile", "visits", "mean", "n")

    def __init__(self, period: str, alpha: float = 0.1, prior: float = 3.0) -> None:
        if period not in PERIODS:
            raise DetectorError(f"unknown seasonality {period!r}; choose one of: "
                                f"{', '.join(PERIODS)} (or leave it unset)")
        self.period = period
        self.slots, self.width = PERIODS[period]
        self.alpha = alpha  # per visit of a slot: about the last 1/alpha days (or weeks)
        self.prior = prior
        self.profile: dict[str, list[float]] = {}
        self.visits: dict[str, list[int]] = {}
        self.mean: dict[str, float] = {}
        self.n: dict[str, int] = {}

    def slot(self, ts: float) -> int:
        # 1970-01-01 was a Thursday; weekly slot 0 is Thursday 00:00 UTC, which is fine
        # as long as it is consistent.
        return int(ts // self.width) % self.slots

    def offset(self, key: str, slot: int) -> float:
        visits = self.visits.get(key)
        if visits is None or visits[slot] == 0:
            return 0.0
        v = visits[slot]
        return (self.profile[key][slot] - self.mean[key]) * v / (v + self.prior)

    def adjust(self, x: Features, ts: float) -> dict[str, float]:
        """The deseasonalised features (scored with the past), then learn this event."""
        slot = self.slot(ts)
        out = {k: v - self.offset(k, slot) for k, v in x.items()}
        for k, v in x.items():
            if v != v or v in (float("inf"), float("-inf")):
                continue
            n = self.n.get(k, 0) + 1
            self.n[k] = n
            if n == 1:
                self.mean[k] = v
                self.profile[k] = [0.0] * self.slots
                self.visits[k] = [0] * self.slots
            else:
                # the overall mean moves slower than one slot's: ~ alpha / slots per event
                self.mean[k] += max(self.alpha / self.slots, 1.0 / n) * (v - self.mean[k])
            visits, profile = self.visits[k], self.profile[k]
            visits[slot] += 1
            rate = max(self.alpha, 1.0 / visits[slot])
            profile[slot] += rate * (v - profile[slot])
        return out
