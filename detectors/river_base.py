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

from collections.abc import Mapping

from detectors.protocol import Features


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
    """Running per-feature min/max, mapping values to about [0, 1] (HalfSpaceTrees needs it).

    Values outside the range seen so far map outside [0, 1], clipped to [-1, 2] so an
    infinite spike cannot break a tree walk.
    """

    __slots__ = ("lo", "hi")

    def __init__(self) -> None:
        self.lo: dict[str, float] = {}
        self.hi: dict[str, float] = {}

    def learn(self, x: Features) -> None:
        lo, hi = self.lo, self.hi
        for k, v in x.items():
            if v != v:
                continue
            if k not in lo:
                lo[k] = hi[k] = v
            elif v < lo[k]:
                lo[k] = v
            elif v > hi[k]:
                hi[k] = v

    def transform(self, x: Features) -> dict[str, float]:
        out: dict[str, float] = {}
        lo, hi = self.lo, self.hi
        for k, v in x.items():
            a = lo.get(k)
            if a is None:
                out[k] = 0.5
                continue
            span = hi[k] - a
            s = (v - a) / span if span > 0.0 else 0.5
            out[k] = -1.0 if s < -1.0 else 2.0 if s > 2.0 else (0.5 if s != s else s)
        return out


def finite(x: Features) -> bool:
    """True when every value is a finite float (River models must never learn NaN/inf)."""
    for v in x.values():
        if v != v or v in (float("inf"), float("-inf")):
            return False
    return True
