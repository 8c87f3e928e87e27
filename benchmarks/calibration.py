"""Calibration of the default detector: fraction of events over s against 1 - s, and
incidents per 10^5 one-minute events, per noise shape and seed (figures for
docs/detectors.md, "Calibration and the false-alarm budget").

    python -m benchmarks.calibration [--events 100000] [--seeds 3]
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from detectors.pipeline import StreamPipeline
from detectors.rules import PipelineFactory
from streams.settings import Settings

SHAPES = {
    "gaussian": lambda rng, n: rng.normal(0.0, 1.0, n),
    "student_t3": lambda rng, n: rng.standard_t(3, n),
    "poisson3": lambda rng, n: rng.poisson(3, n).astype(float),
    "lognormal_1": lambda rng, n: rng.lognormal(0.0, 1.0, n),
    "lognormal_1.5": lambda rng, n: rng.lognormal(0.0, 1.5, n),
}
LEVELS = (0.99, 0.999, 0.9999, 0.99999)
SETTLE = 3000


def run(values: np.ndarray) -> tuple[list[float], int]:
    pipe = StreamPipeline(PipelineFactory.from_settings(Settings()).default)
    scores = np.empty(len(values))
    incidents, last = 0, -math.inf
    for i, v in enumerate(values):
        verdict = pipe.process({"value": float(v)}, 1.7e9 + 60.0 * i)
        scores[i] = verdict.score
        if verdict.is_anomaly:
            incidents += (i - last) * 60.0 > 90.0
            last = i
    settled = scores[SETTLE:]
    return [float((settled >= s).mean()) / (1.0 - s) for s in LEVELS], incidents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    print("| noise | " + " | ".join(f"s = {s}" for s in LEVELS) + " | incidents per seed |")
    print("|---|" + "---:|" * (len(LEVELS) + 1))
    for name, shape in SHAPES.items():
        ratios, incidents = [], []
        for seed in range(args.seeds):
            r, k = run(shape(np.random.default_rng(2026 + seed), args.events))
            ratios.append(r)
            incidents.append(k)
        mean = np.mean(np.array(ratios), axis=0)
        print(f"| {name} | " + " | ".join(f"{m:.2f}x" for m in mean)
              + f" | {', '.join(map(str, incidents))} |", flush=True)


if __name__ == "__main__":
    main()
