"""Measure each detector's cost per event and memory per stream: ``python -m detectors.bench``.

Cost is the wall time of ``StreamPipeline.process`` (score, learn, calibrate, threshold) per
event on a seeded 2-feature stream after warm-up, refits inline (no executor), so windowed
detectors include their amortised refit cost. Memory is what one warmed-up pipeline keeps
alive (tracemalloc), and its checkpoint size (signed pickle bytes).

``--refit`` prints the windowed PyOD table instead: ``score_one`` and ``score_many`` cost and
the wall and CPU time of one refit of a full window (medians of ``--repeats`` fits, inline on
the calling thread: what a refit costs its executor thread).
Deep models (``pyod.autoencoder``, ``pyod.vae``, ``pyod.deepsvdd``) are measured only when
the ``deep`` extra is installed; otherwise a line says they were not.
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
from detectors.windowed_pyod import (
    DEEP,
    WindowedPyOD,
    deep_extra_installed,
    fit_model,
    warm_up_compilers,
)


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


def measure_refit(name: str, events: list[dict[str, float]], window: int, repeats: int
                  ) -> dict[str, float]:
    algorithm = name.removeprefix("pyod.")
    det = WindowedPyOD(algorithm, window=window, refit_every=10**9, min_fit=window)
    for x in events[:window]:
        det.learn_one(x)  # the window's first fit, inline
    fits, cpu = [], []
    for _ in range(repeats):  # what a refit runs in the executor
        t0, c0 = time.perf_counter(), time.thread_time()
        fit_model(algorithm, det.params, det.seed, det.buf.copy())
        fits.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    rows = events[window: 2 * window]
    t0 = time.perf_counter()
    for x in rows:
        det.score_one(x)
    one = (time.perf_counter() - t0) / len(rows)
    X = np.array([[x[k] for k in det.columns] for x in rows])
    t0 = time.perf_counter()
    det.score_many(X)
    many = (time.perf_counter() - t0) / len(rows)
    return {"score_one_us": one * 1e6, "score_many_us": many * 1e6,
            "refit_ms": float(np.median(fits)) * 1e3, "refit_cpu_ms": float(np.median(cpu)) * 1e3}


def runnable(candidates: list[str]) -> list[str]:
    """The detectors that can run here: deep models only with the deep extra (torch)."""
    deep = [n for n in candidates if n.removeprefix("pyod.") in DEEP]
    if deep and not deep_extra_installed():
        print(f"deep extra not installed: {', '.join(deep)} not measured "
              "(pip install -c constraints.txt -e '.[deep]')")
        return [n for n in candidates if n not in deep]
    return candidates


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--features", type=int, default=2)
    ap.add_argument("--events", type=int, default=2000, help="warm-up events before timing")
    ap.add_argument("--timed", type=int, default=2000)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--refit", action="store_true", help="the windowed PyOD refit table")
    ap.add_argument("--window", type=int, default=256, help="--refit: window (and batch) rows")
    ap.add_argument("--repeats", type=int, default=5, help="--refit: fits timed per detector")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    print(f"warm_up_compilers: {warm_up_compilers():.1f} s")
    if args.refit:
        events = stream(2 * args.window, args.features)
        chosen = runnable(args.only or [n for n in names() if n.startswith("pyod.")])
        print("| detector | score_one µs | score_many µs/row | refit ms | refit CPU ms |")
        print("|---|---:|---:|---:|---:|")
        for name in chosen:
            r = measure_refit(name, events, args.window, args.repeats)
            print(f"| {name} | {r['score_one_us']:.0f} | {r['score_many_us']:.1f} | "
                  f"{r['refit_ms']:.0f} | {r['refit_cpu_ms']:.0f} |", flush=True)
        return
    events = stream(args.events + args.timed, args.features)
    chosen = runnable(args.only or names())
    print("| detector | µs/event | memory/stream KiB | checkpoint KiB |")
    print("|---|---:|---:|---:|")
    for name in chosen:
        timed = args.timed if not name.startswith("pyod.") else min(args.timed, 300)
        r = measure(name, events[: args.events + timed], timed)
        print(f"| {name} | {r['us_per_event']:.0f} | {r['mem_kib']:.0f} | {r['state_kib']:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
