"""``rarity_likelihood``, the default detector: every feature scored, calibrated per stream,
combined with a correction for the number of features.

Each feature of an event gets its own univariate core (detectors/ensemble.py: rank
channels, anomaly likelihood, extreme and step alarms). The core's evidence becomes a
p-value, the probability that a normal event is at least as surprising, in two ways, and
the larger (the more cautious) counts:

* a fixed table of the core's evidence on i.i.d. noise (detectors/rarity_table.py): the
  core ranks values against the stream's own past, so the table fits any noise shape;
* the stream's own tail (detectors/tail.py, ``guard``): a stream whose evidence is
  heavier-tailed than i.i.d. noise (spiky, bursty, badly modelled) learns that its big
  evidence is common, so one threshold suits spiky and smooth streams alike.

The event's p-value is the smallest feature p-value corrected by Sidak for the ``d``
features present, ``1 - (1 - p_min) ** d``, so 50 calm features raise no more false
alarms than one. The score is ``1 - p``: on a stationary stream about ``1 - s`` of the
events score above ``s``, whatever the noise (see docs/detectors.md, "Calibration and the
false-alarm budget").

A young feature has seen few values, so new extremes are common: until a feature's core has
learned ``settle`` values its p-values are multiplied by ``settle / n`` (its own ``n``: a
feature that appears late in an old stream is young too). On simulated noise a young core's
evidence beyond the table's 1e-4 point is 115 times too frequent at 50 events, 49 at 100,
20 at 200, 8 at 500, 4 at 1,000 and 1.5 at 2,000-5,000 (Gaussian), which ``settle = 3000``
covers; a gross spike still alarms at once.

Before scoring a value the band where it was expected is kept per feature
(``last_expected``: the central ``coverage`` quantiles of the feature's recent values, at
the same phase of its season when the core models one), and after scoring the share of
each feature in the event's surprise (``last_contributions``): a feature counts only by
how far its surprise exceeds what ``d`` calm features produce by chance.

"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from detectors.ensemble import RarityLikelihood
from detectors.errors import DetectorError
from detectors.protocol import Features
from detectors.rarity_params import StateVersionError
from detectors.rarity_table import KNOTS
from detectors.registry import register
from detectors.tail import EvidenceMap, TailCalibrator, TailParams, tail_params

STATE_VERSION = 1  # of the pickled wrapper state
_log10 = math.log10
_expm1 = math.expm1
_log1p = math.log1p

# Parameters of the wrapper itself; everything else goes to each feature's core.
_OWN = ("coverage", "max_features", "settle", "tail_q", "tail_window", "tail_prior", "guard",
        "tail_clip")
IID = EvidenceMap(KNOTS)  # the core's evidence on i.i.d. noise of any shape


class _Config:
    """What every stream of one parameter set shares (built and validated once)."""

    __slots__ = ("key", "proto", "tail", "coverage", "max_features", "settle", "guard")

    def __init__(self, key: tuple[Any, ...]) -> None:
        own, core = key
        coverage, max_features, settle, q, window, prior, guard, clip = own
        if not 0.0 < coverage < 1.0:
            raise DetectorError(f"coverage must be in (0, 1), got {coverage!r}")
        if max_features < 1:
            raise DetectorError(f"max_features must be at least 1, got {max_features!r}")
        if settle < 0:
            raise DetectorError(f"settle must be >= 0 events, got {settle!r}")
        self.key = key
        self.proto = RarityLikelihood(**dict(core))
        self.tail: TailParams = tail_params(q=q, window=window, prior=prior, clip=clip)
        self.coverage = coverage
        self.max_features = max_features
        self.settle = float(settle)
        self.guard = bool(guard)


_CONFIGS: dict[tuple[Any, ...], _Config] = {}


def _config(key: tuple[Any, ...]) -> _Config:
    cfg = _CONFIGS.get(key)
    if cfg is None:
        if len(_CONFIGS) > 1024:  # ad-hoc configs (tests, evaluation sweeps)
            _CONFIGS.clear()
        cfg = _CONFIGS[key] = _Config(key)
    return cfg


def _finite(band: tuple[float, float]) -> bool:
    """A band worth reporting: both ends finite (an overflowed season gives inf or NaN)."""
    return math.isfinite(band[0]) and math.isfinite(band[1])


def _evidence(score: float) -> float:
    """The core's evidence back from its ``1 - 10 ** (-3 s)`` score (score_one's path)."""
    if score >= 1.0:
        return math.inf
    return -_log10(1.0 - score) / 3.0 if score > 0.0 else 0.0


def sidak(p_min: float, d: int) -> float:
    """The probability that the smallest of ``d`` independent uniform p-values is at most
    ``p_min`` (exact for tiny ``p_min``, no cancellation).

    >>> sidak(0.01, 1), round(sidak(0.01, 50), 4), sidak(1e-300, 50) > 0
    (0.01, 0.395, True)
    """
    if d <= 1 or p_min >= 1.0:
        return p_min
    return -_expm1(d * _log1p(-p_min))


@register("rarity_likelihood", test_params={"warmup": 10, "history": 100, "long_window": 200})
class Rarity:
    """Per-feature rarity cores + per-stream tail calibration + Sidak (see module doc).

    >>> det = Rarity(warmup=10, history=100, long_window=200)
    >>> for i in range(400):
    ...     det.learn_one({"cpu": float(i % 7), "mem": float(i % 5)})
    >>> det.score_one({"cpu": 1.0, "mem": 0.0}) < 0.99
    True
    >>> det.score_one({"cpu": 3.0, "mem": 90.0}) > 0.99999
    True
    >>> max(det.last_contributions, key=det.last_contributions.get)
    'mem'
    """

    name = "rarity_likelihood"
    calibrated = True  # the score is a calibrated probability in [0, 1]
    uses_time = True  # score_learn_at(x, ts): the cores may use the event's time

    __slots__ = ("cfg", "cores", "cals", "n", "pending", "last_contributions",
                 "last_expected", "last_evidence", "ignored_features")

    def __init__(self, coverage: float = 0.99, max_features: int = 1000, settle: int = 3000,
                 tail_q: float = 0.02, tail_window: int = 10_000, tail_prior: float = 200.0,
                 guard: bool = True, tail_clip: float = 25.0, **core: Any) -> None:
        key = ((coverage, max_features, settle, tail_q, tail_window, tail_prior, guard,
                tail_clip),
               tuple(sorted(core.items())))
        try:
            self.cfg = _config(key)
        except TypeError as exc:  # unknown core parameter
            raise DetectorError(f"bad parameters for rarity_likelihood: {exc}") from None
        self._clear()

    def _clear(self) -> None:
        self.cores: dict[str, RarityLikelihood] = {}
        self.cals: dict[str, TailCalibrator] = {}
        self.n = 0
        self.pending: tuple[Mapping[str, float], dict[str, float]] | None = None
        self.last_contributions: dict[str, float] | None = None
        self.last_expected: dict[str, tuple[float, float]] | None = None
        self.last_evidence = 0.0
        self.ignored_features = 0  # names past max_features, never scored (counted)

    def fresh(self) -> Rarity:
        """A new, untrained detector with these parameters (no validation)."""
        det = Rarity.__new__(Rarity)
        det.cfg = self.cfg
        det._clear()
        return det

    @property
    def warmup(self) -> int:
        return self.cfg.proto.warmup

    @property
    def warming_up(self) -> bool:
        return self.n < self.cfg.proto.warmup

    def _core(self, name: str) -> tuple[RarityLikelihood, TailCalibrator] | None:
        core = self.cores.get(name)
        if core is None:
            if len(self.cores) >= self.cfg.max_features:
                self.ignored_features += 1
                return None
            core = self.cores[name] = self.cfg.proto.fresh()
            self.cals[name] = TailCalibrator(self.cfg.tail)
        return core, self.cals[name]

    def _pairs(self, x: Features) -> Iterator[tuple[str, float, RarityLikelihood, TailCalibrator]]:
        """Each feature of ``x`` with its core and calibrator (features past the cap skipped)."""
        for name, value in x.items():
            pair = self._core(name)
            if pair is not None:
                yield name, value, pair[0], pair[1]

    def _expect(self, x: Features) -> None:
        cov = self.cfg.coverage
        band: dict[str, tuple[float, float]] = {}
        for name in x:
            core = self.cores.get(name)
            rng = core.expected(cov) if core is not None else None
            if rng is not None and _finite(rng):
                band[name] = rng
        self.last_expected = band or None

    def _combine(self, pvals: dict[str, float], x: Features) -> float:
        """Event score from feature p-values; sets ``last_contributions``."""
        d = len(pvals)
        if d == 0:
            self.last_contributions = None
            return 0.0
        p = sidak(min(pvals.values()), d)
        if d == 1 and len(x) > 1:  # one feature scored (the others young or over the cap)
            (scored,) = pvals
            self.last_contributions = {k: (1.0 if k == scored else 0.0) for k in x}
        elif d > 1:
            # Surprise beyond what d calm features give by chance (-log10 of 1/(10 d)).
            floor = 1.0 + _log10(d)
            weights = {k: (math.inf if pv <= 0.0 else max(0.0, -_log10(pv) - floor))
                       for k, pv in pvals.items()}
            if not any(weights.values()):
                weights = {k: (math.inf if pv <= 0.0 else -_log10(pv)) for k, pv in pvals.items()}
            # Every feature of the event is named; those not scored (young, over the cap) get 0.
            self.last_contributions = {k: weights.get(k, 0.0) for k in x}
        else:
            self.last_contributions = None
        return 1.0 - p

    def _settled(self, p: float, age: int) -> float:
        """``p`` of a feature that has learned ``age`` values (this one included), corrected
        while the feature is young: a young core makes new extremes often (module doc)."""
        settle = self.cfg.settle
        if age < settle:
            p = p * settle / age if age > 0 else 1.0
            if p > 1.0:
                return 1.0
        return p

    def _p_value(self, cal: TailCalibrator, e: float) -> float:
        """The i.i.d. table's p-value of evidence ``e``, or the stream's own tail's when
        that is larger (the guard)."""
        p = IID(e)
        if self.cfg.guard:
            q = cal.p_value(e)
            if q > p:
                return q
        return p

    def score_learn_at(self, x: Features, ts: float | None) -> float:
        """Score ``x`` against the past, then learn it; ``ts`` is its event time (Unix s)."""
        if len(x) == 1:
            return self._score_learn_single(x, ts)
        self._expect(x)
        self.pending = None
        pvals: dict[str, float] = {}
        top = 0.0
        for name, value, core, cal in self._pairs(x):
            young = core.warming_up
            e = core.evidence_learn(value, ts)
            if young or value != value:
                continue  # not ready to judge the value, or nothing to judge (NaN)
            pvals[name] = self._settled(self._p_value(cal, e), core.n)
            cal.learn(e)
            if e > top:
                top = e
        self.n += 1
        self.last_evidence = top
        return self._combine(pvals, x)

    def _score_learn_single(self, x: Features, ts: float | None) -> float:
        """``score_learn_at`` for a one-feature event, the common case, without the
        per-event dicts of the general path (same results)."""
        ((name, value),) = x.items()
        self.pending = None
        self.last_contributions = None
        pair = self._core(name)
        if pair is None:
            self.n += 1
            self.last_expected, self.last_evidence = None, 0.0
            return 0.0
        core, cal = pair
        band = core.expected(self.cfg.coverage)
        self.last_expected = None if band is None or not _finite(band) else {name: band}
        young = core.warming_up
        e = core.evidence_learn(value, ts)
        self.n += 1
        if young or value != value:
            self.last_evidence = 0.0
            return 0.0
        p = self._settled(self._p_value(cal, e), core.n)
        cal.learn(e)
        self.last_evidence = e if e > 0.0 else 0.0
        return 1.0 - p

    def score_learn_one(self, x: Features) -> float:
        return self.score_learn_at(x, None)

    def score_one(self, x: Features) -> float:
        self._expect(x)
        pvals: dict[str, float] = {}
        evidence: dict[str, float] = {}
        for name, value in x.items():
            core = self.cores.get(name)
            if core is None or core.warming_up:
                continue
            e = _evidence(core.score_one({name: value}))
            evidence[name] = e
            pvals[name] = self._settled(self._p_value(self.cals[name], e), core.n + 1)
        self.pending = (x, evidence)
        self.last_evidence = max(evidence.values(), default=0.0)
        return self._combine(pvals, x)

    def learn_one(self, x: Features) -> None:
        pending, self.pending = self.pending, None
        known = pending[1] if pending is not None and pending[0] is x else None
        for name, value, core, cal in self._pairs(x):
            young = core.warming_up
            e = known.get(name) if known is not None else None
            if e is None and not young:  # learned without score_one: judge it first
                e = _evidence(core.score_one({name: value}))
            core.learn_one({name: value})
            if e is not None and value == value:
                cal.learn(e)
        self.n += 1

    def __getstate__(self) -> tuple[Any, ...]:
        return (STATE_VERSION, self.cfg.key, self.n, self.cores, self.cals, self.ignored_features)

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or not state or state[0] != STATE_VERSION:
            raise StateVersionError("rarity_likelihood state from another version of the "
                                    "detector; the stream starts over")
        _, key, n, cores, cals, ignored = state
        self._clear()
        self.cfg = _config(key)
        self.n, self.cores, self.cals, self.ignored_features = n, cores, cals, ignored
