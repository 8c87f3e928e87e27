"""Synthetic streams with injected spikes, level shifts and drifts (demo and tests)."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Iterator
from typing import Any

# A level shift or drift lasts this many ticks, then the stream recovers.
EPISODE_TICKS = 40
# How long an injection's effect lasts, in ticks from its start (a shift or drift: its
# episode and the recovery). An anomaly of the same stream in that span belongs to it.
EFFECT_TICKS = {"spike": 3, "level_shift": EPISODE_TICKS + 10, "drift": EPISODE_TICKS + 10}


@dataclasses.dataclass
class Injection:
    stream: str
    kind: str  # spike, level_shift or drift
    tick: int
    ts: float
    until: float  # event time its effect lasts to

    def covers(self, stream: str, ts: float) -> bool:
        return stream == self.stream and self.ts <= ts <= self.until


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
    episode: Injection | None = None  # a level shift or drift under way
    episode_end: int = 0  # the tick it ends
    busy_until: int = 0  # no new injection before this tick (the last one's effect lasts)


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

    def next_tick(self, ts: float, step_s: float = 1.0) -> Iterator[dict[str, Any]]:
        """Events of every stream for one tick at event time ``ts`` (``step_s`` after the last)."""
        self.tick += 1
        for s in self.streams:
            if s.episode is not None and self.tick >= s.episode_end:
                s.episode, s.shift, s.drift_per_tick = None, 0.0, 0.0  # back to normal
            value = self._value(s)
            if (self.tick > max(self.warmup_ticks, s.busy_until)
                    and self.rng.random() < self.anomaly_rate):
                kind = self.rng.choice(["spike", "spike", "level_shift", "drift"])
                inj = Injection(s.name, kind, self.tick, ts, ts + EFFECT_TICKS[kind] * step_s)
                self.injections.append(inj)
                s.busy_until = self.tick + EFFECT_TICKS[kind]
                # Sized against the stream's whole visible swing (season and noise), so
                # each one is plainly anomalous to a person looking at the chart; shifts
                # and drifts end (the stream recovers) within their effect span.
                swing = 2.0 * s.amp + 4.0 * s.noise
                sign = self.rng.choice([-1, 1])
                if kind == "spike":
                    value += sign * swing * self.rng.uniform(3.0, 5.0)
                elif kind == "level_shift":
                    s.shift = sign * swing * self.rng.uniform(1.5, 2.5)
                    value += s.shift
                    s.episode, s.episode_end = inj, self.tick + EPISODE_TICKS
                else:
                    s.drift_per_tick = sign * swing * 0.15
                    s.episode, s.episode_end = inj, self.tick + EPISODE_TICKS
            yield {"stream": s.name, "ts": ts, "value": round(value, 4)}
