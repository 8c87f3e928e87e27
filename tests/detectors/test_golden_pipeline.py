"""The optimised default pipeline gives bit-identical verdicts to the frozen original.

``tests/detectors/frozen`` holds the pre-optimisation code (commit 18d097d). Every case runs
both pipelines on the same events and compares every verdict field exactly (floats by their
bits); pickling the new pipeline mid-stream must not change what follows. A digest of the
frozen outputs guards the frozen copy itself against edits.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import math
import pickle
import random
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.pipeline import PipelineConfig, StreamPipeline
from detectors.rules import PipelineFactory
from streams.settings import Settings
from tests.detectors.frozen.pipeline import PipelineConfig as OldConfig
from tests.detectors.frozen.pipeline import StreamPipeline as OldPipeline

# ../shared beside the checkout (as tests/detectors_quality finds it); skipped when absent.
NAB = Path(__file__).resolve().parents[2].parent / "shared" / "nab" / "data"
NAB_FILES = ("artificialWithAnomaly/art_daily_jumpsup.csv",
             "realKnownCause/rogue_agent_key_hold.csv",
             "realKnownCause/ec2_request_latency_system_failure.csv")
# sha256 of the frozen implementation's verdicts per synthetic case (default config).
DIGESTS_FILE = Path(__file__).with_name("golden_digests.txt")

Event = dict[str, float]


def _synthetic(kind: str, seed: int, n: int = 2500) -> list[Event]:
    rng = random.Random(seed)
    out: list[Event] = []
    level = 0.0
    for i in range(n):
        v = level + math.sin(i / 15.0) + rng.gauss(0.0, 0.25)
        if kind == "spikes" and rng.random() < 0.01:
            v += rng.choice((-1, 1)) * rng.uniform(3.0, 40.0)
        elif kind == "shifts" and rng.random() < 0.003:
            level += rng.gauss(0.0, 8.0)
        elif kind == "nonfinite" and rng.random() < 0.02:
            v = rng.choice((math.nan, math.inf, -math.inf))
        elif kind == "constant":
            v = 3.0 if (i // 400) % 2 == 0 else v
        elif kind == "quantized":
            v = float(round(v * 2) + (50 if rng.random() < 0.004 else 0))
        elif kind == "scale":
            v = 1e12 + 1e9 * v if i < n // 2 else 1e-9 * v
        out.append({"value": v})
    return out


def _multivariate(seed: int, n: int = 1500) -> list[Event]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a = math.sin(i / 10.0) + rng.gauss(0.0, 0.2) + (15.0 if rng.random() < 0.01 else 0.0)
        out.append({"a": a, "b": rng.gauss(5.0, 0.3)})
    return out


def _nab(rel: str) -> list[Event]:
    with (NAB / rel).open() as f:
        return [{"value": float(row["value"])} for row in csv.DictReader(f)]


def _fields(v: Any) -> tuple[Any, ...]:
    """Every verdict field; floats as their IEEE bits so -0.0/NaN/rounding all count."""
    def bits(x: float) -> bytes:
        return struct.pack("<d", x)
    contrib = None if v.contributions is None else tuple(
        (k, bits(c)) for k, c in sorted(v.contributions.items()))
    return (bits(v.score), bits(v.threshold), v.is_anomaly, v.severity, v.warming_up,
            v.detector, v.version, contrib, v.anomaly_state, bits(v.raw_score))


def _run(p: Any, events: list[Event], pickle_at: int | None = None) -> list[tuple[Any, ...]]:
    out = []
    for i, x in enumerate(events):
        if i == pickle_at:
            p = pickle.loads(pickle.dumps(p, protocol=pickle.HIGHEST_PROTOCOL))  # noqa: S301
        out.append(_fields(p.process(x, 1.7e9 + 60.0 * i)))
    return out


def _default() -> PipelineConfig:
    return PipelineFactory.from_settings(Settings()).default


def _compare(config: PipelineConfig, events: list[Event], pickle_at: int | None = None
             ) -> list[tuple[Any, ...]]:
    old = OldPipeline(OldConfig(**dataclasses.asdict(config)))
    ref = _run(old, events)
    new = _run(StreamPipeline(config), events, pickle_at)
    for i, (a, b) in enumerate(zip(ref, new, strict=True)):
        assert a == b, f"event {i} ({events[i]}): frozen {a} != new {b}"
    return ref


def _digest(rows: list[tuple[Any, ...]]) -> str:
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


SYNTHETIC = [(k, s) for k in ("spikes", "shifts", "nonfinite", "constant", "quantized", "scale")
             for s in (1, 2)]


def _digests() -> dict[str, str]:
    lines = DIGESTS_FILE.read_text().split()
    return dict(zip(lines[::2], lines[1::2], strict=True))


@pytest.mark.parametrize(("kind", "seed"), SYNTHETIC)
def test_default_pipeline_matches_frozen(kind: str, seed: int) -> None:
    ref = _compare(_default(), _synthetic(kind, seed), pickle_at=1234)
    assert _digest(ref) == _digests()[f"{kind}-{seed}"], "the frozen reference changed"


@pytest.mark.parametrize("rel", NAB_FILES)
def test_nab_series_match_frozen(rel: str) -> None:
    if not (NAB / rel).exists():
        pytest.skip("NAB corpus not present")
    _compare(_default(), _nab(rel), pickle_at=1500)


VARIANTS: dict[str, dict[str, Any]] = {
    "small-windows": {"warmup": 10, "params": {"history": 100, "long_window": 200}},
    "outlier-z": {"params": {"outlier_z": 3.0, "forget_spikes": 0.0, "jump_weight": 0.0}},
    "hysteresis-rebaseline": {"lower_threshold": 0.9, "min_duration": 3,
                              "rebaseline_after": 5, "threshold": 0.99},
    "quantile-lognormal": {"threshold_mode": "quantile", "quantile": 0.99,
                           "calibration": "lognormal"},
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("kind", ["spikes", "shifts"])
def test_configured_pipelines_match_frozen(variant: str, kind: str) -> None:
    config = dataclasses.replace(_default(), **VARIANTS[variant])
    _compare(config, _synthetic(kind, 7, n=1500), pickle_at=700)


def test_multivariate_events_and_explanations_match_frozen() -> None:
    ref = _compare(_default(), _multivariate(3), pickle_at=600)
    assert any(r[7] is not None for r in ref)  # explanations were exercised


@settings(max_examples=25, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                          st.integers(-3, 3).map(float)), min_size=1, max_size=300),
       st.integers(0, 300))
def test_arbitrary_values_match_frozen(values: list[float], cut: int) -> None:
    config = dataclasses.replace(_default(), warmup=5,
                                 params={"history": 20, "long_window": 30, "short_window": 3})
    _compare(config, [{"value": v} for v in values], pickle_at=cut)


def test_detector_api_matches_frozen() -> None:
    """score_one / learn_one called separately (evaluation, explanations, rebaselines),
    with extra probes scored in between and values learned without being scored."""
    from detectors.ensemble import RarityLikelihood
    from tests.detectors.frozen.ensemble import RarityLikelihood as Old

    rng = random.Random(11)
    for params in ({}, {"outlier_z": 3.0, "history": 50}):
        old, new = Old(**params), RarityLikelihood(**params)
        for i, x in enumerate(_synthetic("spikes", 5, n=1600)):
            if i % 7 == 0:
                probe = {"value": rng.gauss(0.0, 3.0)}
                assert old.score_one(probe) == new.score_one(probe)
            if i % 11 != 0:
                assert old.score_one(x) == new.score_one(x), i
            old.learn_one(x)
            new.learn_one(x)
            if i == 900:
                new = pickle.loads(pickle.dumps(new))  # noqa: S301


def test_a_checkpoint_from_the_old_layout_is_refused_not_misread() -> None:
    """Pickles of the pre-optimisation classes raise StateVersionError (the stream
    re-warms) instead of loading into an object that fails on first use."""
    from detectors.rarity_params import StateVersionError

    old = OldPipeline(OldConfig(**dataclasses.asdict(_default())))
    for x in _synthetic("spikes", 1, n=300):
        old.process(x)
    blob = pickle.dumps(old, protocol=2)  # GLOBAL opcodes: module names are plain lines
    for name in (b"pipeline", b"ensemble", b"calibration", b"thresholds"):
        blob = blob.replace(b"tests.detectors.frozen." + name, b"detectors." + name)
    assert b"tests.detectors" not in blob
    with pytest.raises(StateVersionError):
        pickle.loads(blob)  # noqa: S301 (our own bytes)
