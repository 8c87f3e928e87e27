"""Per-stream tail calibration: a detector's evidence -> the probability that a normal event
of *this* stream scores at least as high (peaks over threshold, O(1) per event).

A fixed mapping from evidence to probability is right only for the noise it was derived
on: the same rank evidence is rarer on Gaussian noise than on a spiky or seasonal stream,
so a shared threshold pages some streams far more often than it promises. Here each stream
learns its own tail. The ``1 - q`` quantile ``u`` of its evidence is tracked by stochastic
approximation; the excesses over ``u`` are fitted by a generalised Pareto distribution
(method of moments on exponentially weighted moments, as in SPOT/DSPOT, Siffer et al.,
KDD 2017). The probability of evidence ``e > u`` is ``P(E > u) * GPD_sf(e - u)``; below
``u`` it is interpolated log-linearly between 1 at ``e = 0`` and ``P(E > u)`` at ``u``.

Until a stream has its own tail, a prior stands in (``prior`` pseudo-exceedances of an
exponential tail, the shape of a well-calibrated rank detector's evidence on i.i.d. noise):
the estimate moves from the prior to the stream's own data as exceedances accumulate.
Learning winsorises an excess at ``clip`` scale units, so one gross spike cannot widen the
tail and hide the next.

>>> import random
>>> rng = random.Random(7)
>>> cal = TailCalibrator()
>>> for _ in range(20_000):
...     _ = cal(rng.expovariate(1 / 0.12))
>>> p = cal.p_value(0.12 * 6.9)  # about 1e-3 for this exponential evidence
>>> 0.0005 < p < 0.002, cal.p_value(5.0) < 1e-12
(True, True)
"""

from __future__ import annotations

import math
from typing import Any

from detectors.errors import DetectorError

_exp = math.exp
_log = math.log


class TailParams:
    """One parameter set, shared by every calibrator built from it."""

    __slots__ = ("key", "q", "window", "prior", "u0", "beta0", "clip", "step", "alpha",
                 "min_scale", "max_shape", "shape_prior")

    def __init__(self, q: float = 0.02, window: int = 10_000, prior: float = 20.0,
                 u0: float = 0.22, beta0: float = 0.12, clip: float = 6.0,
                 step: float = 0.02, min_scale: float = 0.08, max_shape: float = 0.45,
                 shape_prior: float = 100.0) -> None:
        if not 0.0 < q < 0.5:
            raise DetectorError(f"tail fraction q must be in (0, 0.5), got {q!r}")
        if window < 10:
            raise DetectorError(f"tail window must be at least 10 events, got {window!r}")
        if prior <= 0.0 or beta0 <= 0.0 or clip <= 0.0 or step <= 0.0:
            raise DetectorError("tail prior, beta0, clip and step must be positive")
        self.key = (q, window, prior, u0, beta0, clip, step, min_scale, max_shape, shape_prior)
        self.shape_prior = shape_prior
        self.min_scale = min_scale
        self.max_shape = max_shape
        self.q, self.window, self.prior, self.u0 = q, window, prior, u0
        self.beta0, self.clip, self.step = beta0, clip, step
        self.alpha = 1.0 / window


_PARAMS: dict[tuple[Any, ...], TailParams] = {}


def tail_params(**kwargs: Any) -> TailParams:
    """The shared parameter object for these settings (validated once)."""
    probe = TailParams(**kwargs)
    known = _PARAMS.get(probe.key)
    if known is not None:
        return known
    if len(_PARAMS) > 1024:  # ad-hoc parameter sets (tests, sweeps), as rarity_params does
        _PARAMS.clear()
    _PARAMS[probe.key] = probe
    return probe


DEFAULT = tail_params()


class EvidenceMap:
    """A fixed monotone map from evidence to p-value, from knots ``(evidence, -log10 p)``;
    beyond the last knot the tail continues at the slope of the last ``4`` knots.

    For a rank-based detector the distribution of evidence on i.i.d. noise is nearly the
    same whatever the noise (ranks are distribution-free), so one table, measured once on
    simulated noise, calibrates every stationary stream (detectors/rarity_table.py).

    >>> m = EvidenceMap(((0.0, 0.0), (1.0, 2.0), (2.0, 4.0)))
    >>> m(0.5), m(1.5), m(3.0)
    (0.1, 0.001, 1e-06)
    """

    __slots__ = ("xs", "ys", "slope")

    def __init__(self, knots: tuple[tuple[float, float], ...]) -> None:
        if len(knots) < 2 or any(b[0] <= a[0] or b[1] < a[1] for a, b in zip(knots, knots[1:], strict=False)):
            raise DetectorError("evidence map knots must increase in evidence and not "
                                "decrease in -log10 p")
        self.xs = tuple(k[0] for k in knots)
        self.ys = tuple(k[1] for k in knots)
        tail = knots[-5:] if len(knots) >= 5 else knots
        self.slope = (tail[-1][1] - tail[0][1]) / (tail[-1][0] - tail[0][0])

    def log_p(self, e: float) -> float:
        """-log10 of the p-value of evidence ``e``."""
        xs, ys = self.xs, self.ys
        if e <= xs[0]:
            return ys[0]
        if e >= xs[-1]:
            return ys[-1] + (e - xs[-1]) * self.slope
        lo, hi = 0, len(xs) - 1
        while hi - lo > 1:
            mid = (lo + hi) >> 1
            if xs[mid] <= e:
                lo = mid
            else:
                hi = mid
        t = (e - xs[lo]) / (xs[hi] - xs[lo])
        return ys[lo] + t * (ys[hi] - ys[lo])

    def __call__(self, e: float) -> float:
        if e != e:
            return 1.0
        return 10.0 ** -self.log_p(e)


class TailCalibrator:
    """Evidence (>= 0, higher = rarer) -> p-value under this stream's own tail.

    ``p_value`` reads the past only; ``learn`` adds one event; ``__call__`` does both and
    returns the p-value. State is six floats (pickles small).
    """

    __slots__ = ("p", "u", "rate", "m1", "m2", "n", "k", "xi", "sigma")

    def __init__(self, params: TailParams = DEFAULT) -> None:
        self.p = params
        self.u = params.u0
        self.rate = params.q  # P(E > u), exponentially weighted, starts at its target
        self.m1 = params.beta0  # E[excess], E[excess^2] of an exponential(beta0) prior
        self.m2 = 2.0 * params.beta0 * params.beta0
        self.n = 0
        self.k = 0  # exceedances seen (not decayed: how much evidence the shape rests on)
        self.xi, self.sigma = self.shape()  # cached: they change only on an exceedance

    def shape(self) -> tuple[float, float]:
        """(xi, sigma) of the fitted generalised Pareto tail (method of moments)."""
        m1, m2 = self.m1, self.m2
        var = m2 - m1 * m1
        if var <= 0.0 or m1 <= 0.0:
            return 0.0, max(m1, self.p.min_scale)
        ratio = m1 * m1 / var
        xi = 0.5 * (1.0 - ratio)
        # Bounded: a handful of exceedances can suggest absurd shapes.
        # Never a bounded tail (xi < 0): it would put an end to the evidence a stream
        # can produce and score anything beyond it 1.
        xi = 0.0 if xi < 0.0 else self.p.max_shape if xi > self.p.max_shape else xi
        # A heavy tail is believed only once this stream has shown enough exceedances: a
        # few dozen from light-tailed noise can look heavy and would hide real anomalies.
        xi *= self.k / (self.k + self.p.shape_prior)
        sigma = m1 * (1.0 - xi)
        floor = self.p.min_scale
        return xi, floor if sigma < floor else sigma

    def p_value(self, e: float) -> float:
        if e != e:
            return 1.0
        u, rate = self.u, self.rate
        if e <= u:
            if u <= 0.0:
                return 1.0
            return rate ** (e / u) if e > 0.0 else 1.0
        if e == math.inf:
            return 0.0
        xi = self.xi
        y = (e - u) / self.sigma
        if abs(xi) < 1e-6:
            return rate * _exp(-y)
        base = 1.0 + xi * y
        if base <= 0.0:  # beyond a bounded tail's end
            return 0.0
        return rate * _exp(-_log(base) / xi)

    def learn(self, e: float) -> None:
        if e != e or e == math.inf:
            return
        p = self.p
        self.n = n = self.n + 1
        # Running average while young (the prior counts as ``prior / q`` events), then EW.
        a = 1.0 / (n + p.prior / p.q)
        if a < p.alpha:
            a = p.alpha
        u = self.u
        above = e > u
        self.rate += a * ((1.0 if above else 0.0) - self.rate)
        sigma = self.sigma
        if above:
            self.k += 1
            y = e - u
            cap = p.clip * sigma
            if y > cap:
                y = cap
            b = a / p.q  # excess moments learn from exceedances only, at their own rate
            if b > 1.0:
                b = 1.0
            self.m1 += b * (y - self.m1)
            self.m2 += b * (y * y - self.m2)
            self.xi, self.sigma = self.shape()
        # Track the 1 - q quantile: zero drift where P(E > u) = q; larger steps while young.
        self.u = u + p.step * (a * p.window) * sigma * ((1.0 if above else 0.0) - p.q)

    def __call__(self, e: float) -> float:
        out = self.p_value(e)
        self.learn(e)
        return out

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.p.key, self.u, self.rate, self.m1, self.m2, self.n, self.k)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        key, self.u, self.rate, self.m1, self.m2, self.n, self.k = state
        q, window, prior, u0, beta0, clip, step, min_scale, max_shape, shape_prior = key
        self.p = tail_params(q=q, window=window, prior=prior, u0=u0, beta0=beta0, clip=clip,
                             step=step, min_scale=min_scale, max_shape=max_shape,
                             shape_prior=shape_prior)
        self.xi, self.sigma = self.shape()
