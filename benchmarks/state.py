"""Per-stream state: memory per stream, cost of creating a stream's pipeline, and
checkpoint + restore time of the StreamScorer's pipelines dict (pickle).

``python -m benchmarks.state --streams N [--detector NAME]`` prints one JSON object; the
runner starts it in a fresh process so RSS deltas are not polluted by earlier runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import pickle
import sys
import time
from pathlib import Path

import orjson

from streams.scoring import StreamScorer, default_pipeline_factory
from streams.settings import Settings


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def measure(streams: int, detector: str, checkpoint: bool) -> dict[str, float | int | str]:
    settings = dataclasses.replace(Settings(), detector=detector)
    scorer = StreamScorer(default_pipeline_factory(settings))
    factory = scorer.factory
    scorer.pipelines["warm"] = factory("warm", None)  # imports and first-use costs
    gc.collect()
    before = rss_mb()
    started = time.perf_counter()
    for k in range(streams):
        scorer.pipelines[f"s{k:07d}"] = factory(f"s{k:07d}", None)
    created = time.perf_counter() - started
    x = {"value": 1.0}
    for p in scorer.pipelines.values():  # one event each, so the state is not pristine
        p.process(x)
    gc.collect()
    result: dict[str, float | int | str] = {
        "detector": detector,
        "streams": streams,
        "create_us_per_stream": created / streams * 1e6,
        "memory_kb_per_stream": (rss_mb() - before) * 1024.0 / streams,
    }
    if checkpoint:
        # The collector walks every tracked object on each generation-2 pass; millions of
        # small objects made pickling ~3x slower, so checkpointing runs with it paused.
        gc.disable()
        try:
            started = time.perf_counter()
            blob = pickle.dumps(scorer.pipelines, protocol=pickle.HIGHEST_PROTOCOL)
            dumped = time.perf_counter()
            restored = pickle.loads(blob)
            loaded = time.perf_counter()
        finally:
            gc.enable()
        assert len(restored) == len(scorer.pipelines)
        result.update(
            checkpoint_s=dumped - started,
            restore_s=loaded - dumped,
            checkpoint_bytes_per_stream=len(blob) / len(restored),
        )
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, required=True)
    ap.add_argument("--detector", default="zscore")
    ap.add_argument("--no-checkpoint", action="store_true")
    a = ap.parse_args(argv)
    sys.stdout.write(orjson.dumps(measure(a.streams, a.detector, not a.no_checkpoint)).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
