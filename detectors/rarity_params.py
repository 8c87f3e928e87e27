"""rarity_likelihood's shared pieces: its parameter sets (one object per distinct set,
shared by every stream built from it), the normal tail in log10, and its state error."""

from __future__ import annotations

import math
from typing import Any

from detectors.errors import DetectorError

_SQRT2 = math.sqrt(2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_LN10 = math.log(10.0)
_log10 = math.log10
_erfc = math.erfc


class StateVersionError(DetectorError):
    """Pickled state from another version of the code (a pipeline or rarity_likelihood
    checkpoint): refuse it, and the stream re-warms."""

    retriable = False


def log_tail(z: float) -> float:
    """-log10 of the upper normal tail Q(z); asymptotic beyond z = 8 (no underflow).

    >>> round(log_tail(0.0), 4), round(log_tail(3.0), 3), log_tail(40.0) > 300
    (0.301, 2.87, True)
    """
    if z < 8.0:
        return -_log10(0.5 * _erfc(z / _SQRT2))
    # Mills ratio: Q(z) ~ phi(z) / z.
    return (0.5 * z * z + math.log(z) + _LOG_SQRT_2PI) / _LN10


class Params:
    """One parameter set, shared by every stream built from it (interned: one per config)."""

    __slots__ = ("key", "warmup", "history", "long_window", "short_window", "local",
                 "log_scale", "refractory", "damp", "std_floor", "jump_weight", "margin",
                 "outlier_z", "outlier_rank", "forget_spikes", "spike_rate", "season_window", "season_lag",
                 "season_margin",
                 "season_least", "season_ratio", "alpha", "log_norm", "lik_ready")

    def __init__(self, key: tuple[Any, ...]) -> None:
        self.key = key
        (self.warmup, self.history, self.long_window, self.short_window, self.local,
         self.log_scale, self.refractory, self.damp, self.std_floor, self.jump_weight,
         self.margin, self.outlier_z, self.outlier_rank, self.forget_spikes,
         self.spike_rate, self.season_window, self.season_lag, self.season_margin, self.season_least, self.season_ratio) = key
        self.alpha = 1.0 / self.long_window
        self.log_norm = _log10(self.history + 2)  # the surprise of the rarest rank is 1
        # A channel's likelihood is 0 until its short mean has been learned this often.
        self.lik_ready = 2 * self.short_window


_PARAMS: dict[tuple[Any, ...], Params] = {}


def params(key: tuple[Any, ...]) -> Params:
    p = _PARAMS.get(key)
    if p is None:
        if len(_PARAMS) > 1024:  # many ad-hoc configs (tests, evaluation sweeps)
            _PARAMS.clear()
        p = _PARAMS[key] = Params(key)
    return p
