"""The default pipeline's verdicts are pinned: a change of behaviour is made on purpose.

Every case runs the default pipeline (the worker's own settings) over a synthetic series
and hashes every verdict field (floats by their bits). ``golden_digests.txt`` holds the
hashes; a detector change that moves any verdict fails here until the digests are
regenerated on purpose (``PYNOMALY_UPDATE_GOLDEN=1 pytest tests/detectors/test_golden_pipeline.py``)
with the reason in the commit message. The same runs check two invariants that need no
reference: pickling a pipeline mid-stream does not change what follows, and the verdicts
of a prefix equal the verdicts of that prefix run alone (causality).
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import pickle
import random
import struct
from pathlib import Path
from typing import Any

import pytest

from detectors.pipeline import PipelineConfig, StreamPipeline
from detectors.rules import PipelineFactory
from streams.settings import Settings

# ../shared beside the checkout (as tests/detectors_quality finds it); skipped when absent.
NAB = Path(__file__).resolve().parents[2].parent / "shared" / "nab" / "data"
NAB_FILES = ("artificialWithAnomaly/art_daily_jumpsup.csv",
             "realKnownCause/rogue_agent_key_hold.csv",
             "realKnownCause/ec2_request_latency_system_failure.csv",
             "realKnownCause/nyc_taxi.csv")
DIGESTS_FILE = Path(__file__).with_name("golden_digests.txt")
UPDATE = os.environ.get("PYNOMALY_UPDATE_GOLDEN") == "1"

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
        elif kind == "multivariate":
            out.append({"a": v + (15.0 if rng.random() < 0.01 else 0.0),
                        "b": rng.gauss(5.0, 0.3), "c": float(i % 7)})
            continue
        out.append({"value": v})
    return out


def _nab(rel: str) -> list[tuple[Event, float]]:
    from detectors.evaluate import parse_time

    with (NAB / rel).open() as f:
        return [({"value": float(row["value"])}, parse_time(row["timestamp"]) or 0.0)
                for row in csv.DictReader(f)]


def _fields(v: Any) -> tuple[Any, ...]:
    """Every verdict field; floats as their IEEE bits so -0.0/NaN/rounding all count."""
    def bits(x: float) -> bytes:
        return struct.pack("<d", x)
    contrib = None if v.contributions is None else tuple(
        (k, bits(c)) for k, c in sorted(v.contributions.items()))
    expected = None if v.expected is None else tuple(
        (k, bits(lo), bits(hi)) for k, (lo, hi) in sorted(v.expected.items()))
    return (bits(v.score), bits(v.threshold), v.is_anomaly, v.severity, v.warming_up,
            v.detector, v.version, contrib, v.anomaly_state, bits(v.raw_score), expected)


def _run(config: PipelineConfig, events: list[tuple[Event, float]],
         pickle_at: int | None = None) -> list[tuple[Any, ...]]:
    p = StreamPipeline(config)
    out = []
    for i, (x, ts) in enumerate(events):
        if i == pickle_at:
            p = pickle.loads(pickle.dumps(p, protocol=pickle.HIGHEST_PROTOCOL))  # noqa: S301
        out.append(_fields(p.process(x, ts)))
    return out


def _timed(events: list[Event]) -> list[tuple[Event, float]]:
    return [(x, 1.7e9 + 60.0 * i) for i, x in enumerate(events)]


def _default() -> PipelineConfig:
    return PipelineFactory.from_settings(Settings()).default


def _digest(rows: list[tuple[Any, ...]]) -> str:
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


SYNTHETIC = [(k, s) for k in ("spikes", "shifts", "nonfinite", "constant", "quantized", "scale",
                              "multivariate") for s in (1, 2)]


def _digests() -> dict[str, str]:
    lines = DIGESTS_FILE.read_text().split() if DIGESTS_FILE.exists() else []
    return dict(zip(lines[::2], lines[1::2], strict=True))


def _record(name: str, digest: str) -> None:
    known = _digests()
    known[name] = digest
    DIGESTS_FILE.write_text("".join(f"{k} {v}\n" for k, v in sorted(known.items())))


@pytest.mark.parametrize(("kind", "seed"), SYNTHETIC)
def test_default_pipeline_verdicts_are_pinned(kind: str, seed: int) -> None:
    events = _timed(_synthetic(kind, seed))
    ref = _run(_default(), events)
    assert _run(_default(), events, pickle_at=1234) == ref, "a mid-stream pickle changed verdicts"
    name = f"{kind}-{seed}"
    if UPDATE:
        _record(name, _digest(ref))
    assert _digest(ref) == _digests().get(name), (
        f"the default pipeline's verdicts on {name} changed: if on purpose, regenerate with "
        "PYNOMALY_UPDATE_GOLDEN=1 and say why in the commit")
    assert any(r[2] for r in ref) or kind in ("constant", "nonfinite", "scale"), \
        "the case no longer exercises anomalies"


@pytest.mark.parametrize("kind", ["spikes", "multivariate"])
def test_prefix_runs_alone_score_the_same(kind: str) -> None:
    events = _timed(_synthetic(kind, 3, n=2000))
    full = _run(_default(), events)
    for cut in (37, 400, 1111, 1999):
        assert _run(_default(), events[:cut]) == full[:cut], f"prefix of {cut} events differs"


@pytest.mark.parametrize("rel", NAB_FILES)
def test_nab_prefixes_score_the_same(rel: str) -> None:
    if not (NAB / rel).exists():
        pytest.skip("NAB corpus not present (../shared beside the checkout)")
    events = _nab(rel)
    full = _run(_default(), events, pickle_at=1500)
    for cut in (len(events) // 3, len(events) // 2 + 17):
        assert _run(_default(), events[:cut]) == full[:cut], f"{rel}: prefix of {cut} differs"


def test_a_checkpoint_from_another_version_is_refused_not_misread() -> None:
    """A pipeline pickle of another state version raises StateVersionError (the stream
    re-warms) instead of loading into an object that fails on first use."""
    from detectors.rarity_params import StateVersionError

    pipe = StreamPipeline(_default())
    for x, ts in _timed(_synthetic("spikes", 1, n=300)):
        pipe.process(x, ts)
    state = list(pipe.__getstate__())
    state[0] = -1
    fresh = StreamPipeline.__new__(StreamPipeline)
    with pytest.raises(StateVersionError):
        fresh.__setstate__(tuple(state))
    det_state = list(pipe.detector.__getstate__())  # type: ignore[attr-defined]
    det_state[0] = -1
    with pytest.raises(StateVersionError):
        type(pipe.detector).__new__(type(pipe.detector)).__setstate__(tuple(det_state))
