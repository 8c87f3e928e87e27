"""Figures from output records: throughput from their produce timestamps, latency from the
event time each one carries (``ts``, stamped when the input was produced)."""

from __future__ import annotations

import math


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    i = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[i]


def throughput(stamps_ms: list[int]) -> tuple[float, float]:
    """(steady events/s over the middle 80% of outputs, events/s from first to last output).

    The second includes cold start: the first events of every stream, which create its
    detector, and the consumer's first fetches.
    """
    t = sorted(stamps_ms)
    n = len(t)
    if n < 10:
        return math.nan, math.nan
    lo, hi = n // 10, (9 * n) // 10
    steady = (hi - lo) / max((t[hi] - t[lo]) / 1000.0, 1e-3)
    cold = n / max((t[-1] - t[0]) / 1000.0, 1e-3)
    return steady, cold


def latency_ms(records: list[tuple[int, float]], since: float = 0.0) -> tuple[float, float]:
    """(p50, p99) of output record time - event time, in ms, for events produced after
    ``since`` (Unix seconds)."""
    lat = sorted(ms - ts * 1000.0 for ms, ts in records if ts >= since)
    return percentile(lat, 0.50), percentile(lat, 0.99)
