"""Measure each detector's cost per event and memory per stream: ``python -m detectors.bench``.

Cost is the wall time of ``StreamPipeline.process`` (score, learn, calibrate, threshold) per
event on a seeded 2-feature stream after warm-up, refits inline (no executor), so windowed
detectors include their amortised refit cost. Memory is what one warmed-up pipeline keeps
alive (tracemalloc), and its checkpoint size (signed pickle bytes).
"""

from __future__ import annotations

import argparse
import gc
import math
import pickle
import time
import tracemalloc
import warnings
from typing import Any

import numpy as np

from detectors.pipeline import PipelineConfig, StreamPipeline
from detectors.registry import names
from detectors.windowed_pyod import warm_up_compilers


def stream(n: int, d: int = 2, seed: int = 0) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    return [{f"f{j}": float(10 + math.sin(i / 8 + j) + 0.2 * rng.normal()) for j in range(d)}
            for i in range(n)]


def measure(name: str, events: list[dict[str, float]], timed: int,
            params: dict[str, Any] | None = None) -> dict[str, float]:
    throwaway = StreamPipeline(PipelineConfig(detector=name, params=params or {}))
    for x in events[:100]:  # lazy imports and caches must not count as per-stream memory
        throwaway.process(x)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    p = StreamPipeline(PipelineConfig(detector=name, params=params or {}))
    warm = len(events) - timed
    for x in events[:warm]:
        p.process(x)
    gc.collect()
    mem = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    t0 = time.perf_counter()
    for x in events[warm:]:
        p.process(x)
    us = (time.perf_counter() - t0) / timed * 1e6
    return {"us_per_event": us, "mem_kib": mem / 1024, "state_kib": len(pickle.dumps(p)) / 1024}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--features", type=int, default=2)
    ap.add_argument("--events", type=int, default=2000, help="warm-up events before timing")
    ap.add_argument("--timed", type=int, default=2000)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    print(f"warm_up_compilers: {warm_up_compilers():.1f} s")
    events = stream(args.events + args.timed, args.features)
    print("| detector | µs/event | memory/stream KiB | checkpoint KiB |")
    print("|---|---:|---:|---:|")
    for name in args.only or names():
        timed = args.timed if not name.startswith("pyod.") else min(args.timed, 300)
        r = measure(name, events[: args.events + timed], timed)
        print(f"| {name} | {r['us_per_event']:.0f} | {r['mem_kib']:.0f} | {r['state_kib']:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
