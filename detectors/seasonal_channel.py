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

    __slots__ = ("window", "lag", "margin", "least", "clip", "ratio", "profile_rate", "level_tau",
                 "error_tau", "t0", "t_prev", "level", "err", "nres", "prof", "visits",
                 "rec", "record", "lagged", "chosen")

    def __init__(self, window: int = 12, lag: int = 0, margin: float = 0.2, least: float = 3.0,
                 clip: float = math.inf, ratio: float = 0.7, profile_rate: float = 0.25, level_tau: float = DAY,
                 error_tau: float = 3 * DAY) -> None:
        self.window = window
        self.lag = lag
        self.margin = margin
        self.least = least
        self.clip = clip
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

    def period_name(self) -> str:
        return "none" if self.chosen == 0 else NAMES[self.chosen - 1]

    def _slot(self, k: int, ts: float) -> int:
        period, width = SEASONS[k]
        return int((ts % period) // width)

    def expected(self, ts: float) -> float | None:
        """The seasonal model's prediction for time ``ts`` (None without a season)."""
        k = self.chosen
        if k == 0:
            return None
        slot = self._slot(k - 1, ts)
        if not self.visits[k - 1][slot]:
            return None
        return self.level + self.prof[k - 1][slot]

    def spread(self) -> float:
        """The chosen model's residual sd (the no-season one without a season)."""
        return SIGMA_PER_MAE * self.err[self.chosen]

    def score_learn(self, v: float, ts: float | None) -> float:
        """Evidence (>= 0) that ``v`` is unusual for its phase, then learn it."""
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
        a_err = dt / (self.error_tau + dt)
        r_none = v - level
        # Residuals of each season (None while its slot has never been visited).
        res: list[float | None] = [r_none, None, None]
        slots = [0, 0]
        rate = self.profile_rate
        age = ts - self.t0
        for k in (0, 1):
            slot = slots[k] = self._slot(k, ts)
            # Only once a whole cycle is known: its first errors say nothing of the season.
            if self.visits[k][slot] and age >= SEASONS[k][0]:
                res[k + 1] = r_none - self.prof[k][slot]
        # Choose the season from the errors before this event (causal).
        chosen = 0
        best = self.ratio * err[0]
        for k in (0, 1):
            if age >= 2.5 * SEASONS[k][0] and self.nres[k + 1] and err[k + 1] < best:
                chosen, best = k + 1, err[k + 1]
        self.chosen = chosen
        # Each season's short mean of standardised residuals, and its record so far.
        evidence = 0.0
        floor = 0.01 * err[0] + 1e-12  # a noise-free season still has a scale
        for k in (1, 2):
            r = res[k]
            if r is None:
                continue
            e = err[k]
            z = r / (SIGMA_PER_MAE * (e if e > floor else floor))
            # Clipped: a lone spike is the other channels' business, and must not set a
            # record that hides a day out of pattern.
            z = self.clip if z > self.clip else -self.clip if z < -self.clip else z
            m = self._short_mean(k - 1, z)
            if m is None:
                continue
            if k != chosen:  # records count only while the season explains the stream
                continue
            m = abs(m)
            record = self.record[k - 1]
            # A new record by a clear margin. The record takes each short mean only once it
            # is ``window`` events old, so a change of context that builds up over a few
            # hours does not raise its own bar on the way up.
            if m >= self.least:
                bar = record * (1.0 + self.margin)
                if m > bar:
                    evidence = 1.0 + (m - bar) / (record if record > 1.0 else 1.0)
            lag = self.lagged[k - 1]
            lag.append(m)
            if len(lag) > self.lag:
                old = lag.pop(0)
                if old > record:
                    self.record[k - 1] = old
        # Learn: errors (winsorised so an anomaly does not widen them much), profiles, level.
        nres = self.nres
        for k in range(3):
            rk = res[k]
            if rk is None:
                continue
            a = abs(rk)
            if nres[k] > 10 and a > 4.0 * err[k] > 0.0:
                a = 4.0 * err[k]
            nres[k] += 1
            rate_k = 1.0 / nres[k]
            err[k] += (rate_k if rate_k > a_err else a_err) * (a - err[k])
        for k in (0, 1):
            slot = slots[k]
            vis = self.visits[k]
            if vis[slot] < 65535:
                vis[slot] += 1
            a = 1.0 / vis[slot]
            if a < rate:
                a = rate
            self.prof[k][slot] += a * (r_none - self.prof[k][slot])
        self.level = level + (dt / (self.level_tau + dt)) * r_none
        self.t_prev = ts
        return evidence

    def _short_mean(self, k: int, z: float) -> float | None:
        """Mean of season ``k``'s last ``window`` standardised residuals (None until full)."""
        rec = self.rec[k]
        rec.append(z)
        if len(rec) > self.window:
            del rec[0]
            return sum(rec) / len(rec)
        return sum(rec) / len(rec) if len(rec) == self.window else None

    def state(self) -> tuple[Any, ...]:
        return (self.window, self.lag, self.margin, self.least, self.clip, self.ratio, self.profile_rate,
                self.level_tau, self.error_tau, self.t0, self.t_prev, self.level, self.err,
                self.nres, self.prof, self.visits, self.rec, self.record, self.lagged, self.chosen)

    @classmethod
    def from_state(cls, state: tuple[Any, ...]) -> SeasonalChannel:
        ch = cls.__new__(cls)
        (ch.window, ch.lag, ch.margin, ch.least, ch.clip, ch.ratio, ch.profile_rate, ch.level_tau,
         ch.error_tau, ch.t0, ch.t_prev, ch.level, ch.err, ch.nres, ch.prof, ch.visits,
         ch.rec, ch.record, ch.lagged, ch.chosen) = state
        return ch
