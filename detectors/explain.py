"""Per-feature contributions of an anomalous multivariate event (shares summing to 1).

Detectors that know their own attribution set ``last_contributions`` in ``score_one``
(zscore, sad, gaussian, pad). For the others (trees, projections, PyOD models) we occlude:
replace one feature at a time by its value in the last normal event and measure how much
the raw score drops. It costs one extra ``score_one`` per feature, paid only on anomalies.

>>> class Sum:
...     def score_one(self, x):
...         return sum(abs(v) for v in x.values())
>>> occlusion(Sum(), {"a": 3.0, "b": 1.0}, {"a": 0.0, "b": 0.0}, 4.0)
{'a': 0.75, 'b': 0.25}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def shares(weights: Mapping[str, float]) -> dict[str, float]:
    """Normalise non-negative weights to shares summing to 1 (equal shares if all are 0)."""
    clean = {k: (w if w > 0.0 and w == w else 0.0) for k, w in weights.items()}
    infinite = [k for k, w in clean.items() if w == float("inf")]
    if infinite:  # infinitely surprising features share everything
        return {k: (1.0 / len(infinite) if k in infinite else 0.0) for k in clean}
    total = sum(clean.values())
    if total == float("inf"):  # finite weights whose sum overflows: scale them down first
        clean = {k: w * 1e-300 for k, w in clean.items()}
        total = sum(clean.values())
    if total <= 0.0:
        n = len(clean) or 1
        return {k: 1.0 / n for k in clean}
    return {k: w / total for k, w in clean.items()}


def occlusion(
    detector: Any, x: Mapping[str, float], reference: Mapping[str, float] | None, raw: float
) -> dict[str, float]:
    """Shares of the raw-score drop when each feature takes its reference value."""
    if not reference:
        return shares({k: 0.0 for k in x})
    drops: dict[str, float] = {}
    probe = dict(x)
    for key, value in x.items():
        ref = reference.get(key)
        if ref is None or ref == value:
            drops[key] = 0.0
            continue
        probe[key] = ref
        drops[key] = raw - float(detector.score_one(probe))
        probe[key] = value
    return shares(drops)


def explain(
    detector: Any, x: Mapping[str, float], reference: Mapping[str, float] | None, raw: float
) -> dict[str, float]:
    """The detector's own attribution if it has one for this event, else occlusion."""
    own = getattr(detector, "last_contributions", None)
    if own and own.keys() == x.keys():
        return shares(own)
    return occlusion(detector, x, reference, raw)
