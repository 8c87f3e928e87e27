"""Seasonal channel of rarity_likelihood: is this value unusual for this time of day (or of
the week)? The period comes from the stream's own event times.

The stream is modelled as ``level + profile[phase]``: ``level`` an exponentially weighted
mean over about a day of event time, ``profile`` the EW mean of ``value - level`` per phase
slot of a day and of a week (5-minute slots). Each model, and "no season"
(``value - level``), keeps an EW mean absolute error over about three days of event time,
counted from the end of its first cycle. A season is used only while it explains the recent past clearly better than no
season (its error below ``ratio`` times the no-season error); the better of day and week
wins. So a random walk or a flat noisy stream has no seasonal channel, a daily square wave
has a daily one, and a taxi count with weekends has a weekly one, each found causally.

The evidence, like Numenta's anomaly likelihood, is about the last ``window`` events: the
mean of the standardised residuals (signed, so a day that stays low adds up) against the
long-run distribution of that mean, as ``-log10`` of its two-sided normal tail over
``scale``. Without event times (``ts`` None) the channel gives 0 and learns nothing.

>>> ch = SeasonalChannel()
>>> day = 86400.0
>>> noise = [((i * 7919) % 13 - 6) / 3 for i in range(288 * 8)]
>>> ev = [ch.score_learn((50.0 if (i % 288) < 144 else 10.0) + noise[i], i * 300.0)
...       for i in range(288 * 8)]
>>> ch.period_name(), max(ev[-288:]) < 0.5
('daily', True)
>>> late = [ch.score_learn(10.0, 8 * day + i * 300.0) for i in range(60)]  # a missing day-half
>>> max(late) > 1.0
True
"""

from __future__ import annotations

import math
from array import array
from typing import Any

_SQRT2 = math.sqrt(2.0)
_erfc = math.erfc
_log10 = math.log10
DAY = 86400.0
# (period in seconds, slot width in seconds) of the two candidate seasons.
SEASONS = ((DAY, 300.0), (7 * DAY, 300.0))
_DAY_S, _DAY_W = SEASONS[0]
_WEEK_S, _WEEK_W = SEASONS[1]
NAMES = ("daily", "weekly")
SIGMA_PER_MAE = math.sqrt(math.pi / 2.0)  # a normal's sd over its mean absolute deviation


def _tail(z: float) -> float:
    """-log10 of the two-sided normal tail beyond |z| (asymptotic far out: no underflow)."""
    z = abs(z)
    if z < 8.0:
        return -_log10(_erfc(z / _SQRT2))
    return (0.5 * z * z + math.log(z) + 0.5 * math.log(math.pi / 2.0)) / math.log(10.0)


class SeasonalChannel:
    """Per-stream daily/weekly profiles, the choice between them, and the evidence."""

    __slots__ = ("window", "lag", "margin", "least", "ratio", "profile_rate", "level_tau",
                 "error_tau", "t0", "t_prev", "level", "err", "nres", "prof", "visits",
                 "rec", "record", "lagged", "chosen", "dt")

    def __init__(self, window: int = 12, lag: int = 0, margin: float = 0.2, least: float = 3.0,
                 ratio: float = 0.7, profile_rate: float = 0.25, level_tau: float = DAY,
                 error_tau: float = 3 * DAY) -> None:
        self.window = window
        self.lag = lag
        self.margin = margin
        self.least = least
        self.ratio = ratio
        self.profile_rate = profile_rate
        self.level_tau = level_tau
        self.error_tau = error_tau
        self.t0 = self.t_prev = math.nan
        self.level = math.nan
        self.err = [0.0, 0.0, 0.0]  # EW mean |residual|: none, daily, weekly
        self.nres = [0, 0, 0]  # residuals each error has learned (a plain mean at first)
        self.prof: list[array[float]] = []  # allocated on the first event with a time
        self.visits: list[array[int]] = []
        self.rec: list[list[float]] = [[], []]  # last standardised residuals per season
        self.record = [0.0, 0.0]  # the largest |short mean| each season has seen
        self.lagged: list[list[float]] = [[], []]  # the short means not yet in the record
        self.chosen = 0  # 0 none, 1 daily, 2 weekly
        self.dt = 0.0  # the last step between event times

    def period_name(self) -> str:
        return "none" if self.chosen == 0 else NAMES[self.chosen - 1]

    def _slot(self, k: int, ts: float) -> int:
        period, width = SEASONS[k]
        return int((ts % period) // width)

    def expected(self, ts: float | None = None) -> float | None:
        """The seasonal model's prediction for time ``ts`` (default: one step after the
        last event); None without a season."""
        k = self.chosen
        if k == 0:
            return None
        if ts is None:
            ts = self.t_prev + self.dt
        slot = self._slot(k - 1, ts)
        if not self.visits[k - 1][slot]:
            return None
        return self.level + self.prof[k - 1][slot]

    def spread(self) -> float:
        """The chosen model's residual sd (the no-season one without a season)."""
        return SIGMA_PER_MAE * self.err[self.chosen]

    def score_learn(self, v: float, ts: float | None) -> float:
        """Evidence (>= 0) that ``v`` is unusual for its phase, then learn it.

        Written out for the two seasons (no per-event lists or calls): this runs on every
        event of every stream.
        """
        if ts is None or ts != ts:
            return 0.0
        if not self.prof:
            # float32 profiles and uint16 visit counts: 6 bytes per slot (2,304 slots)
            self.prof = [array("f", bytes(4 * int(p // w))) for p, w in SEASONS]
            self.visits = [array("H", bytes(2 * int(p // w))) for p, w in SEASONS]
            self.t0 = self.t_prev = ts
            self.level = v
        dt = ts - self.t_prev
        if dt < 0.0:
            dt = 0.0
        level = self.level
        err = self.err
        e0, e1, e2 = err
        r0 = v - level
        age = ts - self.t0
        prof_d, prof_w = self.prof
        vis_d, vis_w = self.visits
        slot_d = int((ts % _DAY_S) // _DAY_W)
        slot_w = int((ts % _WEEK_S) // _WEEK_W)
        # Residuals of each season: only once a whole cycle is known (None before).
        r1 = r0 - prof_d[slot_d] if age >= _DAY_S and vis_d[slot_d] else None
        r2 = r0 - prof_w[slot_w] if age >= _WEEK_S and vis_w[slot_w] else None
        # Choose the season from the errors before this event (causal).
        nres = self.nres
        chosen = 0
        best = self.ratio * e0
        if age >= 2.5 * _DAY_S and nres[1] and e1 < best:
            chosen, best = 1, e1
        if age >= 2.5 * _WEEK_S and nres[2] and e2 < best:
            chosen = 2
        self.chosen = chosen
        evidence = 0.0
        floor = 0.01 * e0 + 1e-12  # a noise-free season still has a scale
        if r1 is not None:
            m = self._short_mean(0, r1 / (SIGMA_PER_MAE * (e1 if e1 > floor else floor)))
            if m is not None and chosen == 1:
                evidence = self._record(0, m)
        if r2 is not None:
            m = self._short_mean(1, r2 / (SIGMA_PER_MAE * (e2 if e2 > floor else floor)))
            if m is not None and chosen == 2:
                evidence = self._record(1, m)
        # Learn: errors (winsorised so an anomaly does not widen them much), profiles, level.
        a_err = dt / (self.error_tau + dt)
        err[0] = self._error(0, e0, r0, a_err)
        if r1 is not None:
            err[1] = self._error(1, e1, r1, a_err)
        if r2 is not None:
            err[2] = self._error(2, e2, r2, a_err)
        rate = self.profile_rate
        n = vis_d[slot_d]
        if n < 65535:
            vis_d[slot_d] = n = n + 1
        a = 1.0 / n
        prof_d[slot_d] += (a if a > rate else rate) * (r0 - prof_d[slot_d])
        n = vis_w[slot_w]
        if n < 65535:
            vis_w[slot_w] = n = n + 1
        a = 1.0 / n
        prof_w[slot_w] += (a if a > rate else rate) * (r0 - prof_w[slot_w])
        self.level = level + (dt / (self.level_tau + dt)) * r0
        self.t_prev = ts
        self.dt = dt
        return evidence

    def _error(self, k: int, e: float, r: float, a_err: float) -> float:
        """Model ``k``'s mean absolute error after residual ``r``: a plain mean at first,
        then EW over ``error_tau``; winsorised at 4 errors."""
        a = r if r >= 0.0 else -r
        n = self.nres[k]
        if n > 10 and a > 4.0 * e > 0.0:
            a = 4.0 * e
        self.nres[k] = n = n + 1
        rate = 1.0 / n
        return e + (rate if rate > a_err else a_err) * (a - e)

    def _record(self, k: int, m: float) -> float:
        """Evidence of short mean ``m`` of season ``k``: a new record by a clear margin.
        The record takes each short mean once it is ``lag`` events old (0: at once)."""
        m = m if m >= 0.0 else -m
        record = self.record[k]
        evidence = 0.0
        if m >= self.least:
            bar = record * (1.0 + self.margin)
            if m > bar:
                evidence = 1.0 + (m - bar) / (record if record > 1.0 else 1.0)
        if self.lag:
            lag = self.lagged[k]
            lag.append(m)
            if len(lag) <= self.lag:
                return evidence
            m = lag.pop(0)
        if m > record:
            self.record[k] = m
        return evidence

    def _short_mean(self, k: int, z: float) -> float | None:
        """Mean of season ``k``'s last ``window`` standardised residuals (None until full)."""
        rec = self.rec[k]
        rec.append(z)
        n = len(rec)
        if n > self.window:
            del rec[0]
            return sum(rec) / (n - 1)
        return sum(rec) / n if n == self.window else None

    def state(self) -> tuple[Any, ...]:
        return (self.window, self.lag, self.margin, self.least, self.ratio, self.profile_rate,
                self.level_tau, self.error_tau, self.t0, self.t_prev, self.level, self.err,
                self.nres, self.prof, self.visits, self.rec, self.record, self.lagged, self.chosen, self.dt)

    @classmethod
    def from_state(cls, state: tuple[Any, ...]) -> SeasonalChannel:
        ch = cls.__new__(cls)
        (ch.window, ch.lag, ch.margin, ch.least, ch.ratio, ch.profile_rate, ch.level_tau,
         ch.error_tau, ch.t0, ch.t_prev, ch.level, ch.err, ch.nres, ch.prof, ch.visits,
         ch.rec, ch.record, ch.lagged, ch.chosen, ch.dt) = state
        return ch
