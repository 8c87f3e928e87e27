"""Synthetic streams with injected spikes, level shifts and drifts (demo and tests)."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Iterator
from typing import Any


@dataclasses.dataclass
class Injection:
    stream: str
    kind: str  # spike, level_shift or drift
    tick: int
    ts: float


@dataclasses.dataclass
class _Stream:
    name: str
    base: float
    amp: float
    period: float
    noise: float
    phase: float
    shift: float = 0.0
    drift_per_tick: float = 0.0


class SyntheticStreams:
    """Deterministic given ``seed``: one value per stream per tick, some anomalies injected.

    ``anomaly_rate`` is the chance per stream per tick (after ``warmup_ticks``) of an
    injection; ``injections`` records what was injected, the ground truth.
    """

    def __init__(
        self,
        n_streams: int = 50,
        seed: int = 7,
        anomaly_rate: float = 0.002,
        warmup_ticks: int = 60,
        prefix: str = "demo",
    ) -> None:
        self.rng = random.Random(seed)
        self.anomaly_rate = anomaly_rate
        self.warmup_ticks = warmup_ticks
        self.tick = 0
        self.injections: list[Injection] = []
        kinds = ["cpu", "latency", "orders", "temp", "errors"]
        self.streams = [
            _Stream(
                name=f"{prefix}-{i:03d}.{kinds[i % len(kinds)]}",
                base=self.rng.uniform(10, 100),
                amp=self.rng.uniform(0, 5),
                period=self.rng.uniform(60, 600),
                noise=self.rng.uniform(0.5, 2.0),
                phase=self.rng.uniform(0, 2 * math.pi),
            )
            for i in range(n_streams)
        ]

    def _value(self, s: _Stream) -> float:
        seasonal = s.amp * math.sin(2 * math.pi * self.tick / s.period + s.phase)
        s.shift += s.drift_per_tick
        return s.base + seasonal + s.shift + self.rng.gauss(0, s.noise)

    def next_tick(self, ts: float) -> Iterator[dict[str, Any]]:
        """Events of every stream for one tick at event time ``ts``."""
        self.tick += 1
        for s in self.streams:
            value = self._value(s)
            if self.tick > self.warmup_ticks and self.rng.random() < self.anomaly_rate:
                kind = self.rng.choice(["spike", "spike", "level_shift", "drift"])
                self.injections.append(Injection(s.name, kind, self.tick, ts))
                if kind == "spike":
                    value += self.rng.choice([-1, 1]) * s.noise * self.rng.uniform(8, 15)
                elif kind == "level_shift":
                    s.shift += s.noise * self.rng.uniform(6, 10)
                    value += s.noise * 8
                else:
                    s.drift_per_tick = s.noise * 0.5
            elif s.drift_per_tick and self.rng.random() < 0.05:
                s.drift_per_tick = 0.0  # drifts end after a while
            yield {"stream": s.name, "ts": ts, "value": round(value, 4)}
