"""Surprise ensemble with anomaly-likelihood post-processing (the default univariate detector)."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections import deque

from detectors.protocol import Features
from detectors.registry import register

_SQRT2 = math.sqrt(2.0)


def _log_tail(z: float) -> float:
    """-log10 of the one-sided normal tail beyond z (large z handled asymptotically)."""
    if z < 8.0:
        return -math.log10(max(0.5 * math.erfc(z / _SQRT2), 1e-300))
    # Mills ratio: Q(z) ~ phi(z) / z for large z, avoids erfc underflow.
    return (0.5 * z * z + math.log(z * math.sqrt(2.0 * math.pi))) / math.log(10.0)


class _Window:
    """The last ``size`` values, also kept sorted for O(log n) ranks."""

    __slots__ = ("size", "fifo", "sorted")

    def __init__(self, size: int) -> None:
        self.size = size
        self.fifo: deque[float] = deque()
        self.sorted: list[float] = []

    def add(self, v: float) -> None:
        self.fifo.append(v)
        insort(self.sorted, v)
        if len(self.fifo) > self.size:
            old = self.fifo.popleft()
            del self.sorted[bisect_left(self.sorted, old)]

    def __len__(self) -> int:
        return len(self.sorted)

    def tail(self, v: float) -> float:
        """Two-sided empirical tail probability of ``v`` (smoothed, never 0)."""
        s = self.sorted
        n = len(s)
        below = bisect_right(s, v)
        above = n - bisect_left(s, v)
        return min(1.0, 2.0 * (min(below, above) + 1) / (n + 2))


def _upper(self: _Window, v: float) -> float:
    """One-sided (upper) empirical tail probability of ``v``."""
    s = self.sorted
    return (len(s) - bisect_left(s, v) + 1) / (len(s) + 2)


_Window.upper = _upper  # type: ignore[attr-defined]


class _MeanVar:
    """Mean and variance of the last ``size`` values, O(1) per update."""

    __slots__ = ("fifo", "size", "s", "sq")

    def __init__(self, size: int) -> None:
        self.fifo: deque[float] = deque()
        self.size = size
        self.s = 0.0
        self.sq = 0.0

    def add(self, v: float) -> None:
        self.fifo.append(v)
        self.s += v
        self.sq += v * v
        if len(self.fifo) > self.size:
            old = self.fifo.popleft()
            self.s -= old
            self.sq -= old * old

    def stats(self) -> tuple[float, float]:
        n = len(self.fifo)
        m = self.s / n
        return m, math.sqrt(max(self.sq / n - m * m, 0.0))


@register("ensemble", test_params={"warmup": 10, "history": 200, "long_window": 300})
class SurpriseEnsemble:
    """Several causal rarity scores fused, then an anomaly likelihood on top.

    >>> det = SurpriseEnsemble(warmup=10, history=200, long_window=300)
    >>> for i in range(300):
    ...     det.learn_one({"value": float(i % 7)})
    >>> det.score_one({"value": 3.0}) < 0.5 < det.score_one({"value": 60.0})
    True
    """

    name = "ensemble"
    calibrated = True

    def __init__(
        self,
        warmup: int = 30,
        history: int = 1000,
        long_window: int = 2000,
        short_window: int = 10,
        spatial_margin: float = 0.05,
        log_scale: float = 10.0,
        spatial_weight: float = 1.0,
        local: int = 5,
        features: str = "vdsl",
        sparse: float = 0.0,
        std_floor: float = 0.01,
        lik_weight: float = 1.0,
        direct_weight: float = 0.0,
        bandwidth: float = 0.05,
        refractory: int = 0,
        damp: float = 0.5,
        channels: str = "all",
        order: int = 2,
        n_bins: int = 12,
        prior: float = 5.0,
        calib: int = 300,
        slope: float = 1.0,
    ) -> None:
        self.slope = slope
        self.refractory = refractory
        self.damp = damp
        self.peaks: deque[tuple[int, float]] = deque()
        self._pending: float | None = None
        self.warmup = warmup
        self.history = history
        self.short_window = short_window
        self.spatial_margin = spatial_margin
        self.log_scale = log_scale
        self.spatial_weight = spatial_weight
        self.features = features
        self.sparse = sparse
        self.std_floor = std_floor
        self.lik_weight = lik_weight
        self.direct_weight = direct_weight
        self.n = 0
        self.lo = math.inf
        self.hi = -math.inf
        self.last: deque[float] = deque(maxlen=local + 1)
        self.windows = {f: _Window(history) for f in features}
        self.vals = _Window(history)
        self.bandwidth = bandwidth
        self.one_sided = "hc"
        self.order = order
        self.n_bins = n_bins
        self.prior = prior
        self.calib = calib
        self.width = 0.0
        self.origin = 0.0
        self.ctx: deque[int] = deque(maxlen=order)
        self.counts: dict[tuple[int, ...], dict[int, int]] = {}
        self.channels = ["all", *features] if channels == "all+" else [channels] if channels == "all" else list(features)
        self.recent = {c: deque(maxlen=short_window) for c in self.channels}
        self.avg_hist = {c: _MeanVar(long_window) for c in self.channels}
        self._cache: tuple[float, dict[str, float], float] | None = None
        self.last_parts: dict[str, float] = {}

    @property
    def warming_up(self) -> bool:
        return self.n < self.warmup

    def _feats(self, v: float) -> dict[str, float]:
        last = self.last
        out: dict[str, float] = {}
        if "v" in self.features:
            out["v"] = v
        if "h" in self.features:
            w = self.vals
            n = len(w.sorted)
            if n >= 10:
                s = w.sorted
                h = self.bandwidth * max(s[(9 * n) // 10] - s[n // 10], 1e-9 + 1e-6 * abs(v))
                # Negative density: larger means the value's neighbourhood is emptier.
                out["h"] = -(bisect_right(s, v + h) - bisect_left(s, v - h)) / n
        if "c" in self.features and self.width > 0.0 and len(self.ctx) == self.order:
            nxt = self.counts.get(tuple(self.ctx))
            if not nxt:
                out["c"] = 1.0
            else:
                b = math.floor((v - self.origin) / self.width)
                hit = nxt.get(b, 0) + 0.5 * (nxt.get(b - 1, 0) + nxt.get(b + 1, 0))
                out["c"] = max(0.0, 1.0 - hit / (sum(nxt.values()) + self.prior))
        if not last:
            return out
        if "d" in self.features:
            out["d"] = v - last[-1]
        k = len(last)
        if "s" in self.features and k >= 2:
            # Local volatility: mean |diff| over the last few steps including this one.
            vals = [*list(last)[1:], v] if k == last.maxlen else [*last, v]
            out["s"] = sum(abs(b - a) for a, b in zip(vals, vals[1:])) / (len(vals) - 1)
        if "l" in self.features:
            vals = [*list(last)[1:], v] if k == last.maxlen else [*last, v]
            out["l"] = sum(vals) / len(vals)
        return out

    def _raws(self, feats: dict[str, float]) -> dict[str, float]:
        out = {}
        norm = math.log10(self.history + 2)
        for f, val in feats.items():
            w = self.windows[f]
            if len(w) >= 10:
                p = w.upper(val) if f in self.one_sided else w.tail(val)
                out[f] = min(1.0, -math.log10(p) / norm)
        out["all"] = max(out.values(), default=0.0)
        return out

    def _learn_context(self, v: float) -> None:
        if self.width <= 0.0:
            if len(self.vals) >= self.calib:
                s = self.vals.sorted
                n = len(s)
                spread = s[(99 * n) // 100] - s[n // 100]
                self.width = max(spread / self.n_bins, 1e-9 + 1e-6 * abs(s[n // 2]))
                self.origin = s[n // 2]
            return
        b = math.floor((v - self.origin) / self.width)
        if len(self.ctx) == self.order:
            nxt = self.counts.setdefault(tuple(self.ctx), {})
            nxt[b] = nxt.get(b, 0) + 1
        self.ctx.append(b)

    def score_one(self, x: Features) -> float:
        v = float(next(iter(x.values()), 0.0))
        feats = self._feats(v)
        raws = self._raws(feats)
        raw = raws["all"]
        self._cache = (v, feats, raws)
        lik = 0.0
        for c in self.channels:
            recent = self.recent[c]
            hist = self.avg_hist[c]
            if len(hist.fifo) < 2 * self.short_window:
                continue
            short = (sum(recent) + raws.get(c, 0.0)) / (len(recent) + 1)
            mean, std = hist.stats()
            lik = max(lik, _log_tail((short - mean) / max(std, self.std_floor)) / self.log_scale)
        spatial = 0.0
        if self.n >= self.warmup and math.isfinite(self.lo):
            margin = self.spatial_margin * max(self.hi - self.lo, 1e-9)
            excess = max(v - self.hi, self.lo - v) - margin
            if excess > 0:
                spatial = self.spatial_weight * (1.0 + self.slope * excess / max(self.hi - self.lo, 1e-9))
        self.last_parts = {"raw": raw, "lik": lik, "spatial": spatial}
        score = max(self.lik_weight * lik, spatial, self.direct_weight * raw)
        self._pending = score
        # Refractory: only a score above every recent one is news; repeats of an alarm are
        # damped so one event raises one alarm, while the first crossing of any threshold
        # keeps its time.
        if self.peaks and score <= self.peaks[0][1]:
            return score * self.damp
        return score

    def learn_one(self, x: Features) -> None:
        v = float(next(iter(x.values()), 0.0))
        if self._cache is not None and self._cache[0] == v:
            _, feats, raws = self._cache
        else:
            feats = self._feats(v)
            raws = self._raws(feats)
        self._cache = None
        self.n += 1
        if self.refractory:
            score = self._pending if self._pending is not None else 0.0
            self._pending = None
            peaks = self.peaks
            while peaks and peaks[-1][1] <= score:
                peaks.pop()
            peaks.append((self.n, score))
            while peaks[0][0] <= self.n - self.refractory:
                peaks.popleft()
        for c in self.channels:
            recent = self.recent[c]
            recent.append(raws.get(c, 0.0))
            if len(recent) == self.short_window:
                self.avg_hist[c].add(sum(recent) / self.short_window)
        for f, val in feats.items():
            self.windows[f].add(val)
        self.vals.add(v)
        if "c" in self.features:
            self._learn_context(v)
        self.last.append(v)
        self.lo = min(self.lo, v)
        self.hi = max(self.hi, v)
