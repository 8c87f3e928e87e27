"""Rarity ensemble with anomaly-likelihood post-processing: the default univariate detector.

Three causal channels each rank a feature of the newest event against a bounded window
of the stream's own past (the value, its first difference, and a short local mean);
the rank becomes a surprise in [0, 1]. As in Numenta's "anomaly likelihood", what alarms
is not one surprising event but the mean surprise of the last few events being unusual
against that channel's long-run distribution. A value beyond everything seen so far, by
more than ``margin`` of the range, alarms at once (a "spatial" anomaly), and so does a
step far beyond every recent step (a "jump", weighted down so only large ones count). After an alarm, evidence that does
not beat the recent peak is damped, so one incident raises one alarm while the first
crossing of any threshold keeps its time. The output is ``1 - 10 ** (-3 * s)`` for the
fused evidence ``s``: 0.999 marks ``s = 1``, within 0.3 points of the best single
cut-off on NAB (standard profile).

Only the first feature of an event is used (the detector is univariate).

Repeated spikes: a short excursion (up to ``MAX_SPIKE_LEN`` points) that starts with
spatial evidence of at least ``forget_spikes`` (half a range or more beyond everything
seen) does not widen the known range once the series is back inside it, so a later spike
as large alarms again (NAB standard on the development split: 63.8 with it, 63.4 with
``forget_spikes=0``, which lets repeats of a spike go unnoticed). ``outlier_z`` (off by default) adds an undamped
robust-outlier channel on top.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from collections import deque

from detectors.protocol import Features

_SQRT2 = math.sqrt(2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_LN10 = math.log(10.0)
MAX_SPIKE_LEN = 3  # points beyond the range that still count as one spike, not a level shift


def log_tail(z: float) -> float:
    """-log10 of the upper normal tail Q(z); asymptotic beyond z = 8 (no underflow).

    >>> round(log_tail(0.0), 4), round(log_tail(3.0), 3), log_tail(40.0) > 300
    (0.301, 2.87, True)
    """
    if z < 8.0:
        return -math.log10(0.5 * math.erfc(z / _SQRT2))
    # Mills ratio: Q(z) ~ phi(z) / z.
    return (0.5 * z * z + math.log(z) + _LOG_SQRT_2PI) / _LN10


class RankWindow:
    """The last ``size`` values in arrival order and sorted, for O(log n) ranks."""

    __slots__ = ("size", "ring", "pos", "sorted")

    def __init__(self, size: int) -> None:
        self.size = size
        self.ring = array("d")
        self.pos = 0
        self.sorted = array("d")

    def __len__(self) -> int:
        return len(self.sorted)

    def add(self, v: float) -> None:
        s = self.sorted
        if len(self.ring) < self.size:
            self.ring.append(v)
        else:
            old = self.ring[self.pos]
            self.ring[self.pos] = v
            self.pos = (self.pos + 1) % self.size
            del s[bisect_left(s, old)]
        s.insert(bisect_right(s, v), v)

    def surprise(self, v: float) -> float:
        """-log10 of the two-sided empirical tail of ``v``, scaled to [0, 1]."""
        s = self.sorted
        n = len(s)
        k = min(bisect_right(s, v), n - bisect_left(s, v))
        p = min(1.0, 2.0 * (k + 1) / (n + 2))
        return -math.log10(p) / math.log10(self.size + 2)


class Likelihood:
    """Is the mean surprise of the last ``short`` events unusual for this channel?

    The long-run mean and variance of that short mean are exponentially weighted,
    so memory stays constant however long the stream runs.
    """

    __slots__ = ("recent", "alpha", "mean", "var", "count", "floor")

    def __init__(self, short: int, long: int, floor: float) -> None:
        self.recent: deque[float] = deque(maxlen=short)
        self.alpha = 1.0 / long
        self.mean = 0.0
        self.var = 0.0
        self.count = 0
        self.floor = floor

    def score(self, raw: float) -> float:
        """-log10 tail probability of the short mean that would include ``raw``."""
        if self.count < 2 * self.recent.maxlen:  # type: ignore[operator]
            return 0.0
        # Summed afresh (a dozen floats): running sums would drift over a long stream.
        short = (sum(self.recent) - self.recent[0] + raw) / len(self.recent)
        return log_tail((short - self.mean) / max(math.sqrt(self.var), self.floor))

    def learn(self, raw: float) -> None:
        recent = self.recent
        recent.append(raw)
        if len(recent) < recent.maxlen:  # type: ignore[operator]
            return
        x = sum(recent) / len(recent)
        self.count += 1
        # Until the long window has filled, a plain running average converges faster.
        a = max(self.alpha, 1.0 / self.count)
        d = x - self.mean
        self.mean += a * d
        self.var = (1.0 - a) * (self.var + a * d * d)



class RarityLikelihood:
    """Rank-based rarity channels + anomaly likelihood + new-extreme alarm (see module doc).

    >>> det = RarityLikelihood(warmup=10, history=100, long_window=200)
    >>> for i in range(300):
    ...     det.learn_one({"value": float(i % 7)})
    >>> det.score_one({"value": 3.0}) < 0.5 < 0.999 < det.score_one({"value": 60.0})
    True
    """

    name = "rarity_likelihood"
    calibrated = True  # the score is already a probability-like value in [0, 1]

    def __init__(
        self,
        warmup: int = 30,
        history: int = 1000,
        long_window: int = 2000,
        short_window: int = 12,
        local: int = 6,
        log_scale: float = 10.0,
        refractory: int = 50,
        damp: float = 0.5,
        std_floor: float = 0.01,
        jump_weight: float = 0.5,
        margin: float = 0.02,
        outlier_z: float = 0.0,
        outlier_rank: int = 3,
        forget_spikes: float = 1.5,
    ) -> None:
        self.outlier_rank = outlier_rank
        self.prev_outlier = False
        self.forget_spikes = forget_spikes
        self._excursion: tuple[float, float, int] | None = None  # (lo, hi) before it, length
        self.margin = margin
        self.outlier_z = outlier_z
        for label, val in (("history", history), ("long_window", long_window),
                           ("short_window", short_window), ("local", local)):
            if val < 2:
                raise ValueError(f"{label} must be at least 2, got {val!r}")
        self.warmup = warmup
        self.log_scale = log_scale
        self.refractory = refractory
        self.damp = damp
        self.jump_weight = jump_weight
        self.n = 0
        self.lo = math.inf
        self.hi = -math.inf
        self.prev = math.nan
        self.local: deque[float] = deque(maxlen=local)
        # Channels: value, first difference, local mean.
        self.ranks = (RankWindow(history), RankWindow(history), RankWindow(history))
        self.liks = tuple(Likelihood(short_window, long_window, std_floor) for _ in range(3))
        self.peaks: deque[tuple[int, float]] = deque()  # sliding max of recent evidence
        self._pending: tuple[float, tuple[float, ...], float] | None = None
        self.last_parts: dict[str, float] = {}

    @property
    def warming_up(self) -> bool:
        return self.n < self.warmup

    def _features(self, v: float) -> tuple[float, ...]:
        local = self.local
        # Summed afresh: after a huge spike a running sum would keep a rounding error.
        if len(local) == local.maxlen:
            mean = (sum(local) - local[0] + v) / len(local)
        else:
            mean = (sum(local) + v) / (len(local) + 1)
        diff = v - self.prev if self.n else 0.0
        return (v, diff, mean)

    def _raws(self, feats: tuple[float, ...]) -> tuple[float, ...]:
        if self.n < 10:
            return (0.0, 0.0, 0.0)
        return tuple(w.surprise(f) for w, f in zip(self.ranks, feats, strict=True))

    def _evidence(self, v: float, raws: tuple[float, ...]) -> float:
        lik = max(c.score(r) for c, r in zip(self.liks, raws, strict=True)) / self.log_scale
        spatial = 0.0
        if self.n >= self.warmup:
            span = max(self.hi - self.lo, 1e-9 + 1e-6 * abs(v))
            excess = max(v - self.hi, self.lo - v) - self.margin * span
            if excess > 0.0:
                spatial = 1.0 + excess / span
        jump = 0.0
        d = self.ranks[1].sorted
        if self.jump_weight and self.n >= self.warmup and len(d) >= 10:
            # A step far beyond every recent step: catches spikes inside the value range.
            step = v - self.prev
            excess = max(step - d[-1], d[0] - step)
            if excess > 0.0:
                jump = self.jump_weight * (1.0 + excess / max(d[-1] - d[0], 1e-12))
        self.last_parts = {"likelihood": lik, "spatial": spatial, "jump": jump}
        return max(lik, spatial, jump)

    def _outlier_z(self, v: float) -> float:
        """Distance beyond the ``outlier_rank``-th most extreme value of the history, in
        robust (IQR) units; 0 while the history is too short or flat."""
        d = self.ranks[0].sorted
        n = len(d)
        k = self.outlier_rank
        if not self.outlier_z or self.n < self.warmup or n < 4 * k + 20:
            return 0.0
        iqr = d[(3 * n) // 4] - d[n // 4]
        if iqr <= 0.0:
            return 0.0
        return max(v - d[n - 1 - k], d[k] - v, 0.0) * 1.349 / iqr

    def score_one(self, x: Features) -> float:
        v = float(next(iter(x.values()), 0.0))
        if not math.isfinite(v):
            # Not learned either; an infinite reading is as extreme as it gets.
            return 0.0 if math.isnan(v) else 1.0
        raws = self._raws(self._features(v))
        s = self._evidence(v, raws)
        self._pending = (v, raws, s)
        # Refractory: only evidence above every recent peak is news.
        if self.peaks and s <= self.peaks[0][1]:
            s *= self.damp
        # A gross outlier alarms undamped, so a second spike soon after a first is still
        # caught; only the first point of an excursion counts (level shifts are the other
        # channels' job).
        oz = self.outlier_z
        z = self._outlier_z(v)
        if oz and z >= oz and not self.prev_outlier:
            s = max(s, 1.0 + (z - oz) / oz)
        return 1.0 - 10.0 ** (-3.0 * s)

    def learn_one(self, x: Features) -> None:
        v = float(next(iter(x.values()), 0.0))
        if not math.isfinite(v):
            return  # a NaN or inf would poison every window; such events are not learned
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] == v:
            _, raws, s = pending
        else:
            raws = self._raws(self._features(v))
            s = self._evidence(v, raws)
        feats = self._features(v)
        self.n += 1
        peaks = self.peaks
        while peaks and peaks[-1][1] <= s:
            peaks.pop()
        peaks.append((self.n, s))
        while peaks[0][0] <= self.n - self.refractory:
            peaks.popleft()
        for w, f in zip(self.ranks, feats, strict=True):
            w.add(f)
        for c, r in zip(self.liks, raws, strict=True):
            c.learn(r)
        self.prev_outlier = bool(self.outlier_z) and self._outlier_z(v) >= self.outlier_z
        self.local.append(v)
        self.prev = v
        if self.forget_spikes:
            self._track_excursion(v)
        self.lo = min(self.lo, v)
        self.hi = max(self.hi, v)

    def _track_excursion(self, v: float) -> None:
        """A short excursion far beyond the range (a spike of up to ``MAX_SPIKE_LEN`` points)
        does not widen the range once the series is back inside it, so a later spike as
        large alarms again; a longer one (a level shift) does."""
        if self._excursion is None:
            if self.last_parts.get("spatial", 0.0) >= self.forget_spikes:
                self._excursion = (self.lo, self.hi, 1)
            return
        lo0, hi0, length = self._excursion
        if lo0 <= v <= hi0:
            self.lo, self.hi = lo0, hi0
            self._excursion = None
        elif length >= MAX_SPIKE_LEN:
            self._excursion = None
        else:
            self._excursion = (lo0, hi0, length + 1)
