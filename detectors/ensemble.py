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

import copyreg
import functools
import math
import pickle
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any, SupportsIndex

import numpy as np

from detectors.protocol import Features
from detectors.rank_windows import capacity_for, grow, new_buffer, pack, step, unpack
from detectors.rarity_params import StateVersionError, log_tail, params
from detectors.seasonal_channel import SeasonalChannel

_SQRT2 = math.sqrt(2.0)
MAX_SPIKE_LEN = 3  # points beyond the range that still count as one spike, not a level shift
# Of the pickled state; 1 was the pre-2026-11-27 object layout, 2 had no seasonal channel
# and no spike count.
STATE_VERSION = 3
_log10 = math.log10
_erfc = math.erfc
_sqrt = math.sqrt


# Evidence of one value against the state before it:
# (fused evidence s, the three channel surprises, local mean, first difference, spatial part).
_Evidence = tuple[float, float, float, float, float, float, float]


class RarityLikelihood:
    """Rank-based rarity channels + anomaly likelihood + new-extreme alarm (see module doc).

    State is flat (no object per channel) and allocated on the first learned value, so a
    new stream costs a few hundred bytes and about a microsecond; it pickles as one
    ``array`` of floats. ``score_learn_one`` is ``score_one`` then ``learn_one`` in one pass.

    >>> det = RarityLikelihood(warmup=10, history=100, long_window=200)
    >>> for i in range(300):
    ...     det.learn_one({"value": float(i % 7)})
    >>> det.score_one({"value": 3.0}) < 0.5 < 0.999 < det.score_one({"value": 60.0})
    True
    """

    name = "rarity_likelihood"
    calibrated = True  # the score is already a probability-like value in [0, 1]

    __slots__ = (
        "p", "n", "lo", "hi", "prev", "prev_outlier", "excursion", "pending", "count",
        "mean0", "mean1", "mean2", "var0", "var1", "var2",  # likelihood channels' long run
        "local", "rec0", "rec1", "rec2",  # last values / surprises, oldest first (lists)
        "xlo", "xhi", "spikes",  # extremes spikes included; spikes forgotten so far
        "peak_n", "peak_s",  # sliding max of recent evidence (monotone deque as two lists)
        "pos", "cap", "buf",  # the three rank windows (detectors.rank_windows)
        "season",  # the seasonal channel (detectors.seasonal_channel), on the first time
    )
    # Containers are None until the first learned value (a new stream allocates nothing).
    local: list[float]
    rec0: list[float]
    rec1: list[float]
    rec2: list[float]
    peak_n: list[int]
    peak_s: list[float]
    buf: np.ndarray
    excursion: tuple[float, float, int] | None  # (lo, hi) before it, and its length
    pending: tuple[float, _Evidence] | None  # score_one's work, for learn_one
    season: SeasonalChannel | None

    def __init__(
        self,
        warmup: int = 30,
        history: int = 1000,
        long_window: int = 2000,
        short_window: int = 12,
        local: int = 6,
        log_scale: float = 13.0,
        refractory: int = 50,
        damp: float = 0.5,
        std_floor: float = 0.01,
        jump_weight: float = 0.5,
        margin: float = 0.02,
        outlier_z: float = 0.0,
        outlier_rank: int = 3,
        forget_spikes: float = 1.5,
        spike_rate: int = 0,
        season_window: int = 12,
        season_lag: int = 0,
        season_margin: float = 0.2,
        season_least: float = 3.0,
        season_ratio: float = 0.7,
    ) -> None:
        for label, val in (("history", history), ("long_window", long_window),
                           ("short_window", short_window), ("local", local)):
            if val < 2:
                raise ValueError(f"{label} must be at least 2, got {val!r}")
        self.p = params((warmup, history, long_window, short_window, local, log_scale,
                          refractory, damp, std_floor, jump_weight, margin, outlier_z,
                          outlier_rank, forget_spikes, spike_rate, season_window, season_lag,
                          season_margin,
                          season_least, season_ratio))
        self._clear()

    def _clear(self) -> None:
        self.n = 0
        self.lo = math.inf
        self.hi = -math.inf
        self.xlo = math.inf
        self.xhi = -math.inf
        self.spikes = 0
        self.prev = math.nan
        self.prev_outlier = False
        self.excursion = None
        self.pending = None
        self.count = 0
        self.mean0 = self.mean1 = self.mean2 = self.var0 = self.var1 = self.var2 = 0.0
        self.pos = 0
        self.cap = 0
        self.buf = None  # type: ignore[assignment]
        self.local = self.rec0 = self.rec1 = self.rec2 = self.peak_s = None  # type: ignore[assignment]
        self.peak_n = None  # type: ignore[assignment]
        self.season = None

    def fresh(self) -> RarityLikelihood:
        """A new, untrained detector with these parameters (no validation: ~1 µs)."""
        det = RarityLikelihood.__new__(RarityLikelihood)
        det.p = self.p
        det._clear()
        return det

    @property
    def warmup(self) -> int:
        return int(self.p.warmup)

    @property
    def warming_up(self) -> bool:
        return self.n < self.p.warmup

    def _room(self, m: int) -> np.ndarray:
        """The window buffer, allocated or grown so it can take one more value."""
        history = self.p.history
        cap = capacity_for(m, history)
        buf = self.buf
        self.buf = buf = new_buffer(cap) if buf is None else grow(buf, self.cap, m, cap)
        self.cap = cap
        return buf

    def _add(self, v: float, diff: float, mean: float) -> None:
        """Add one event's features to the rank windows (when scoring did not)."""
        history = self.p.history
        n = self.n
        m = n if n < history else history
        buf = self.buf
        if buf is None or (m == self.cap and m < history):
            buf = self._room(m)
        pos = self.pos
        if m == history:
            self.pos = (pos + 1) % history
        step(buf, self.cap, m, pos, history, v, diff, mean, True)

    def _evidence(self, v: float, learn: bool) -> _Evidence:
        """Everything ``v`` is scored on, from the state before it; with ``learn`` the rank
        windows take the event too (nothing else changes).

        Every expression keeps the original's operand order: results are bit-identical.
        """
        p = self.p
        n = self.n
        local: Sequence[float] = self.local or ()
        # Summed afresh: after a huge spike a running sum would keep a rounding error.
        if len(local) == p.local:
            mean = (sum(local) - local[0] + v) / len(local)
        else:
            mean = (sum(local) + v) / (len(local) + 1)
        diff = v - self.prev if n else 0.0
        history = p.history
        m = n if n < history else history
        buf = self.buf
        if learn:  # rank against the windows, then add the features (one compiled call)
            if buf is None or (m == self.cap and m < history):
                buf = self._room(m)
            pos = self.pos
            if m == history:
                self.pos = (pos + 1) % history
            k0, k1, k2, dlo, dhi = step(buf, self.cap, m, pos, history, v, diff, mean, True)
        elif n < 10:
            k0 = k1 = k2 = 0
            dlo = dhi = 0.0
        else:
            k0, k1, k2, dlo, dhi = step(buf, self.cap, m, self.pos, history, v, diff, mean, False)
        if n < 10:
            r0 = r1 = r2 = 0.0
        else:
            # -log10 of the two-sided empirical tail of each feature, scaled to [0, 1].
            norm = p.log_norm
            q = 2.0 * (k0 + 1) / (m + 2)
            r0 = -_log10(q if q < 1.0 else 1.0) / norm
            q = 2.0 * (k1 + 1) / (m + 2)
            r1 = -_log10(q if q < 1.0 else 1.0) / norm
            q = 2.0 * (k2 + 1) / (m + 2)
            r2 = -_log10(q if q < 1.0 else 1.0) / norm
        if self.count < p.lik_ready:
            lik = 0.0 / p.log_scale
        else:
            # Is the mean surprise of the last few events (this one included) unusual
            # against the channel's long run? Summed afresh: running sums would drift.
            # (log_tail inlined for z < 8.)
            floor = p.std_floor
            rec = self.rec0
            sd = _sqrt(self.var0)
            z = ((sum(rec) - rec[0] + r0) / len(rec) - self.mean0) / (floor if floor > sd else sd)
            l0 = -_log10(0.5 * _erfc(z / _SQRT2)) if z < 8.0 else log_tail(z)
            rec = self.rec1
            sd = _sqrt(self.var1)
            z = ((sum(rec) - rec[0] + r1) / len(rec) - self.mean1) / (floor if floor > sd else sd)
            l1 = -_log10(0.5 * _erfc(z / _SQRT2)) if z < 8.0 else log_tail(z)
            rec = self.rec2
            sd = _sqrt(self.var2)
            z = ((sum(rec) - rec[0] + r2) / len(rec) - self.mean2) / (floor if floor > sd else sd)
            l2 = -_log10(0.5 * _erfc(z / _SQRT2)) if z < 8.0 else log_tail(z)
            lik = max(l0, l1, l2) / p.log_scale
        spatial = jump = 0.0
        if n >= p.warmup:
            hi, lo = self.hi, self.lo
            span = hi - lo
            least = 1e-9 + 1e-6 * abs(v)
            if least > span:
                span = least
            above, below = v - hi, lo - v
            excess = (below if below > above else above) - p.margin * span
            if excess > 0.0:
                spatial = 1.0 + excess / span
                if (p.spike_rate and spatial > 1.0 and self.spikes >= p.spike_rate
                        and self.xlo <= v <= self.xhi):
                    # A repeat of a spike this stream has made before: its evidence is the
                    # stream's own rate of such spikes (score 1 - rate), not a new extreme.
                    cap = -_log10(self.spikes / (n + 1.0)) / 3.0
                    if cap < spatial:
                        spatial = cap if cap > 0.0 else 0.0
            if p.jump_weight and m >= 10:
                # A step far beyond every recent step: catches spikes inside the value range.
                top, bottom = dhi, dlo
                above, below = diff - top, bottom - diff
                excess = below if below > above else above
                if excess > 0.0:
                    width = top - bottom
                    jump = p.jump_weight * (1.0 + excess / (1e-12 if 1e-12 > width else width))
        return max(lik, spatial, jump), r0, r1, r2, mean, diff, spatial

    def _raw(self, v: float, s: float) -> float:
        """The score of evidence ``s``: damped unless above every recent peak."""
        return 1.0 - 10.0 ** (-3.0 * self._damped(v, s))

    def _damped(self, v: float, s: float) -> float:
        """Evidence ``s`` damped unless above every recent peak (and the outlier channel)."""
        peaks = self.peak_s
        p = self.p
        if peaks and s <= peaks[0]:
            s *= p.damp
        # A gross outlier alarms undamped, so a second spike soon after a first is still
        # caught; only the first point of an excursion counts (level shifts are the other
        # channels' job).
        oz = p.outlier_z
        if oz:
            z = self._outlier_z(v)
            if z >= oz and not self.prev_outlier:
                s = max(s, 1.0 + (z - oz) / oz)
        return s

    def _outlier_z(self, v: float) -> float:
        """Distance beyond the ``outlier_rank``-th most extreme value of the history, in
        robust (IQR) units; 0 while the history is too short or flat."""
        p = self.p
        k = p.outlier_rank
        n = self.n if self.n < p.history else p.history
        if not p.outlier_z or self.n < p.warmup or n < 4 * k + 20:
            return 0.0
        buf, base = self.buf, 3 * self.cap  # channel 0's sorted values
        assert buf is not None
        iqr = float(buf[base + (3 * n) // 4]) - float(buf[base + n // 4])
        if iqr <= 0.0:
            return 0.0
        return max(v - float(buf[base + n - 1 - k]), float(buf[base + k]) - v, 0.0) * 1.349 / iqr

    def _allocate(self) -> None:
        self.local, self.rec0, self.rec1, self.rec2 = [], [], [], []
        self.peak_n, self.peak_s = [], []

    def _learn(self, v: float, ev: _Evidence) -> None:
        s, r0, r1, r2, mean, diff, spatial = ev
        if self.local is None:
            self._allocate()
        p = self.p
        self.n = n = self.n + 1
        peak_n, peak_s = self.peak_n, self.peak_s
        while peak_s and peak_s[-1] <= s:
            peak_s.pop()
            peak_n.pop()
        peak_n.append(n)
        peak_s.append(s)
        while peak_n[0] <= n - p.refractory:
            del peak_n[0]
            del peak_s[0]
        # Likelihood channels: the long-run mean/variance of the short mean surprise.
        short = p.short_window
        rec0, rec1, rec2 = self.rec0, self.rec1, self.rec2
        rec0.append(r0)
        rec1.append(r1)
        rec2.append(r2)
        if len(rec0) > short:
            del rec0[0], rec1[0], rec2[0]
        if len(rec0) == short:
            self.count = count = self.count + 1
            # Until the long window has filled, a plain running average converges faster.
            a = 1.0 / count
            if not a > p.alpha:
                a = p.alpha
            d = sum(rec0) / short - self.mean0
            self.mean0 += a * d
            self.var0 = (1.0 - a) * (self.var0 + a * d * d)
            d = sum(rec1) / short - self.mean1
            self.mean1 += a * d
            self.var1 = (1.0 - a) * (self.var1 + a * d * d)
            d = sum(rec2) / short - self.mean2
            self.mean2 += a * d
            self.var2 = (1.0 - a) * (self.var2 + a * d * d)
        if p.outlier_z:
            self.prev_outlier = self._outlier_z(v) >= p.outlier_z
        local = self.local
        local.append(v)
        if len(local) > p.local:
            del local[0]
        self.prev = v
        forget = p.forget_spikes
        if forget and (spatial >= forget or self.excursion is not None):
            self._track_excursion(v, spatial)  # rarely: only around spikes
        if v < self.lo:
            self.lo = v
        if v > self.hi:
            self.hi = v
        if v < self.xlo:
            self.xlo = v
        if v > self.xhi:
            self.xhi = v

    def _track_excursion(self, v: float, spatial: float) -> None:
        """A short excursion far beyond the range (a spike of up to ``MAX_SPIKE_LEN`` points)
        does not widen the range once the series is back inside it, so a later spike as
        large alarms again; a longer one (a level shift) does."""
        exc = self.excursion
        if exc is None:
            if spatial >= self.p.forget_spikes:
                self.excursion = (self.lo, self.hi, 1)
                self.spikes += 1
            return
        lo0, hi0, length = exc
        if lo0 <= v <= hi0:
            self.lo, self.hi = lo0, hi0
            self.excursion = None
        elif length >= MAX_SPIKE_LEN:
            self.excursion = None
        else:
            self.excursion = (lo0, hi0, length + 1)

    def score_one(self, x: Features) -> float:
        v = float(next(iter(x.values()), 0.0))
        if v - v != 0.0:  # NaN or inf
            # Not learned either; an infinite reading is as extreme as it gets.
            return 0.0 if v != v else 1.0
        ev = self._evidence(v, False)
        self.pending = (v, ev)
        return self._raw(v, ev[0])

    def learn_one(self, x: Features) -> None:
        v = float(next(iter(x.values()), 0.0))
        if v - v != 0.0:
            return  # a NaN or inf would poison every window; such events are not learned
        pending, self.pending = self.pending, None
        if pending is not None and pending[0] == v:
            ev = pending[1]
            self._add(v, ev[5], ev[4])
        else:
            ev = self._evidence(v, True)
        self._learn(v, ev)

    def score_learn_one(self, x: Features) -> float:
        """``score_one(x)`` then ``learn_one(x)``, computing the evidence once."""
        for v in x.values():
            v = float(v)
            break
        else:
            v = 0.0
        if v - v != 0.0:
            return 0.0 if v != v else 1.0
        self.pending = None
        if self.p.outlier_z:  # its score reads the windows before this event is added
            ev = self._evidence(v, False)
            raw = self._raw(v, ev[0])
            self._add(v, ev[5], ev[4])
            self._learn(v, ev)
            return raw
        ev = self._evidence(v, True)
        s = ev[0]  # _raw, inlined: damped unless above every recent peak
        peaks = self.peak_s
        if peaks and s <= peaks[0]:
            s *= self.p.damp
        self._learn(v, ev)
        return 1.0 - 10.0 ** (-3.0 * s)

    def evidence_learn(self, value: float, ts: float | None = None) -> float:
        """Score then learn one value; the fused, damped evidence ``s >= 0`` (the score is
        ``1 - 10 ** (-3 * s)``). ``ts`` is the event time in Unix seconds, or None.
        A NaN is not learned and gives 0.0; an infinite value is not learned and gives inf.

        >>> det = RarityLikelihood(warmup=10, history=100, long_window=200)
        >>> calm = [det.evidence_learn(float(i % 7), None) for i in range(300)]
        >>> max(calm[50:]) < 1.0 < det.evidence_learn(60.0, None)
        True
        >>> det.evidence_learn(float("nan"), None), det.evidence_learn(float("-inf"), None)
        (0.0, inf)
        """
        v = float(value)
        if v - v != 0.0:
            return 0.0 if v != v else math.inf
        self.pending = None
        p = self.p
        if p.outlier_z:  # its score reads the windows before this event is added
            ev = self._evidence(v, False)
            self._add(v, ev[5], ev[4])
        else:
            ev = self._evidence(v, True)
        s = ev[0]
        if ts is not None and p.season_window and self.n >= p.warmup:
            # From the end of warm-up: a short-lived stream never allocates the profiles
            # (14 KB), and a season needs days of history anyway.
            season = self.season
            if season is None:
                season = self.season = SeasonalChannel(
                    window=p.season_window, lag=p.season_lag, margin=p.season_margin,
                    least=p.season_least, ratio=p.season_ratio)
            seasonal = season.score_learn(v, ts)
            if seasonal > s:
                s = seasonal
        s = self._damped(v, s)
        self._learn(v, ev)
        return s

    def expected(self, coverage: float = 0.99) -> tuple[float, float] | None:
        """A causal band ``(low, high)`` holding the next value with about ``coverage``
        probability: at the next phase of the stream's season when it has one (daily or
        weekly, from event times), else the central quantiles of the recent values. None
        while the stream has fewer than ``warmup`` values.

        >>> det = RarityLikelihood(warmup=10, history=100, long_window=200)
        >>> det.expected() is None
        True
        >>> for i in range(300):
        ...     det.learn_one({"value": float(i % 10)})
        >>> det.expected(0.6)
        (1.0, 8.0)
        """
        if not 0.0 < coverage < 1.0:
            raise ValueError(f"coverage must be in (0, 1), got {coverage!r}")
        season = self.season
        if season is not None and self.n >= self.p.warmup:
            # A stream with a season: its prediction for the next phase, +- the normal
            # quantile of its residual spread.
            center = season.expected()
            if center is not None:
                half = _normal_quantile(0.5 + 0.5 * coverage) * season.spread()
                return center - half, center + half
        n = self.n
        if n < self.p.warmup or n < 2 or self.buf is None:
            return None
        m = n if n < self.p.history else self.p.history
        base = 3 * self.cap  # channel 0's sorted values
        tail = 0.5 * (1.0 - coverage) * (m - 1)
        lo = int(math.floor(tail))
        hi = int(math.ceil((m - 1) - tail))
        return float(self.buf[base + lo]), float(self.buf[base + hi])

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        # Protocol 5 (checkpoints) writes full windows straight from the buffer, no copy.
        return copyreg.__newobj__, (type(self),), self._state(int(protocol) >= 5)  # type: ignore[attr-defined]

    def __getstate__(self) -> tuple[Any, ...]:
        return self._state(False)

    def _state(self, zero_copy: bool) -> tuple[Any, ...]:
        """Compact state: scalars, the short lists, the windows as raw bytes (8 B/value)."""
        season = self.season
        state = (STATE_VERSION, self.p.key, self.n, self.count, self.pos, self.prev_outlier,
                 self.excursion, self.pending, self.lo, self.hi, self.prev, self.xlo, self.xhi,
                 self.spikes, None if season is None else season.state())
        if self.buf is None:
            return state
        m = self.n if self.n < self.p.history else self.p.history
        return (*state, self.mean0, self.mean1, self.mean2, self.var0, self.var1, self.var2,
                self.local, self.rec0, self.rec1, self.rec2, self.peak_n, self.peak_s,
                pickle.PickleBuffer(self.buf) if zero_copy and m == self.cap  # type: ignore[arg-type]
                else pack(self.buf, self.cap, m))

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or not state or state[0] != STATE_VERSION:
            raise StateVersionError(
                "rarity_likelihood state from another version of the detector; "
                "the stream starts over")
        (_, key, self.n, self.count, self.pos, self.prev_outlier, self.excursion,
         self.pending, self.lo, self.hi, self.prev, self.xlo, self.xhi, self.spikes, season,
         *rest) = state
        self.season = None if season is None else SeasonalChannel.from_state(season)
        self.p = p = params(key)
        if not rest:  # nothing learned yet
            self.mean0 = self.mean1 = self.mean2 = self.var0 = self.var1 = self.var2 = 0.0
            self.local = self.rec0 = self.rec1 = self.rec2 = self.peak_s = None  # type: ignore[assignment]
            self.peak_n = None  # type: ignore[assignment]
            self.buf = None  # type: ignore[assignment]
            self.cap = 0
            return
        (self.mean0, self.mean1, self.mean2, self.var0, self.var1, self.var2, self.local,
         self.rec0, self.rec1, self.rec2, self.peak_n, self.peak_s, windows) = rest
        m = self.n if self.n < p.history else p.history
        self.buf, self.cap = unpack(windows, m, p.history)


@functools.lru_cache(maxsize=16)
def _normal_quantile(q: float) -> float:
    """The standard normal quantile (cached: expected() asks for the same one per event)."""
    return NormalDist().inv_cdf(q)


class _Retired:
    """Names of the pre-2026-11-27 state layout: a checkpoint that still holds one is
    refused with StateVersionError (the stream re-warms), not an AttributeError."""

    def __setstate__(self, state: Any) -> None:
        raise StateVersionError("rarity_likelihood state from another version of the "
                                "detector; the stream starts over")


RankWindow = Likelihood = _Retired
