"""Per-stream pipeline micro-benchmark: CPU per event, creation and checkpoint (pickle) cost.

Pipelines are built exactly as the worker builds them
(``PipelineFactory.from_settings(Settings())``) and driven the way ``BatchScorer.run`` drives
them (``pipelines[stream].process(features, ts)``, events interleaved across streams).

``python -m benchmarks.pipeline_micro [--repeat 3] [--json]`` prints the best of ``repeat``
runs of each figure. Times are process CPU time (the machine is shared: wall time
mostly measures the neighbours), and the minimum is the least noisy estimate.
"""

from __future__ import annotations

import argparse
import gc
import math
import pickle
import random
import sys
import time
from typing import Any

import orjson

from detectors.pipeline import StreamPipeline
from detectors.rules import PipelineFactory
from streams.settings import Settings


def series(seed: int, n: int) -> list[dict[str, float]]:
    """A noisy sine with occasional spikes and level shifts (what the worker sees)."""
    rng = random.Random(seed)
    out, level = [], 0.0
    for i in range(n):
        if rng.random() < 0.002:
            level += rng.gauss(0.0, 5.0)
        v = level + math.sin(i / 20.0) + rng.gauss(0.0, 0.3)
        if rng.random() < 0.005:
            v += rng.choice((-1.0, 1.0)) * 10.0
        out.append({"value": v})
    return out


def run_events(pipelines: list[StreamPipeline], data: list[list[dict[str, float]]],
               start: int, stop: int) -> float:
    """Seconds to push events ``start:stop`` of every stream, round-robin across streams."""
    pairs = list(zip(pipelines, data, strict=True))
    gc.collect()
    t0 = time.process_time()
    for i in range(start, stop):
        ts = 1.7e9 + i
        for p, d in pairs:
            p.process(d[i], ts)
    return time.process_time() - t0


def per_event(streams: int, events: int, warm: int, seed: int = 0) -> float:
    """µs per event over events ``warm:events`` of ``streams`` fresh streams."""
    factory = PipelineFactory.from_settings(Settings())
    pipelines = [factory(f"s{k}", None) for k in range(streams)]
    data = [series(seed + k, events) for k in range(streams)]
    if warm:
        run_events(pipelines, data, 0, warm)
    return run_events(pipelines, data, warm, events) / (streams * (events - warm)) * 1e6


def creation(streams: int) -> float:
    factory = PipelineFactory.from_settings(Settings())
    factory("warm", None)
    names = [f"s{k:07d}" for k in range(streams)]
    gc.collect()
    t0 = time.process_time()
    made = [factory(n, None) for n in names]
    elapsed = time.process_time() - t0
    assert len(made) == streams
    return elapsed / streams * 1e6


def pickling(streams: int, events: int) -> dict[str, float]:
    """Per-stream dumps/loads µs and bytes, one pickle per stream (as checkpoints do)."""
    factory = PipelineFactory.from_settings(Settings())
    pipelines = [factory(f"s{k}", None) for k in range(streams)]
    for k, p in enumerate(pipelines):
        for x in series(k, events):
            p.process(x)
    gc.disable()
    try:
        t0 = time.process_time()
        blobs = [pickle.dumps((k, p), protocol=pickle.HIGHEST_PROTOCOL)
                 for k, p in enumerate(pipelines)]
        t1 = time.process_time()
        restored = [pickle.loads(b) for b in blobs]  # noqa: S301 (our own bytes)
        t2 = time.process_time()
    finally:
        gc.enable()
    assert len(restored) == streams
    return {"dump_us": (t1 - t0) / streams * 1e6, "load_us": (t2 - t1) / streams * 1e6,
            "bytes": sum(map(len, blobs)) / streams}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--long-events", type=int, default=2200,
                    help="events per stream in the 100-stream run (the first 1,200 warm up)")
    a = ap.parse_args(argv)
    r = a.repeat
    res: dict[str, Any] = {}
    res["us_per_event_10k_streams_x20"] = min(per_event(10_000, 20, 0) for _ in range(r))
    res["us_per_event_100_streams_full"] = min(
        per_event(100, a.long_events, 1200) for _ in range(r))
    res["create_us_per_stream"] = min(creation(10_000) for _ in range(r))
    for label, n_streams, events in (("1_event", 10_000, 1), ("full", 200, 1500)):
        runs = [pickling(n_streams, events) for _ in range(r)]
        res[f"pickle_{label}"] = {k: min(x[k] for x in runs) for k in runs[0]}
    if a.json:
        sys.stdout.write(orjson.dumps(res).decode() + "\n")
    else:
        for k, v in res.items():
            if isinstance(v, dict):
                v = ", ".join(f"{kk} {vv:,.1f}" for kk, vv in v.items())
                print(f"{k:32s} {v}")
            else:
                print(f"{k:32s} {v:,.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
