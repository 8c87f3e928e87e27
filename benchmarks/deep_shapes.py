"""Deep PyOD models on non-linear normal regions: ROC-AUC of one window fit, ours against
PyOD's own defaults and the classic models. ``python -m benchmarks.deep_shapes`` (needs the
deep extra; ~1-2 min on 2 cores).

``--calm`` prints false alarms instead: the fraction of events of a calm 3-feature stream
(3,000 one-minute events, two features correlated, the first 300 not counted) whose
calibrated pipeline score exceeds 0.99, 0.999 and 0.99999 (the default threshold).

Each shape draws a 256-row training window of normal points and a 300-row test set where 30
points are moved off the normal region but kept inside the features' ranges (so a per-feature
range check cannot find them): ``curve`` (x, x² and sines of x), ``clusters`` (two regimes,
anomalies between them), ``circle`` (anomalies inside or outside the ring). Three seeded
trials per shape and feature count; the table prints the mean AUC and the fit's CPU time.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from detectors.pipeline import PipelineConfig, StreamPipeline
from detectors.windowed_pyod import fit_model

Shape = Callable[[np.random.Generator, int, int], np.ndarray]

# PyOD 3.6's own defaults, for comparison with ours (detectors/windowed_pyod.py's ALGORITHMS).
PYOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "autoencoder": {"hidden_neuron_list": [64, 32], "epoch_num": 10, "lr": 1e-3,
                    "dropout_rate": 0.2, "batch_norm": True},
    "vae": {"encoder_neuron_list": [128, 64, 32], "decoder_neuron_list": [32, 64, 128],
            "epoch_num": 30, "lr": 1e-3, "dropout_rate": 0.2},
    "deepsvdd": {"hidden_neurons": [64, 32], "epochs": 100, "learning_rate": 1e-4,
                 "dropout_rate": 0.2},
}


def curve(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    t = rng.uniform(-2, 2, size=n)
    cols = [t, t**2] + [np.sin(t * (k + 1)) for k in range(d - 2)]
    return np.column_stack(cols) + 0.05 * rng.normal(size=(n, d))


def clusters(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    side = rng.integers(0, 2, size=n)
    X = rng.normal(scale=0.3, size=(n, d))
    X[:, 0] += np.where(side, 3, -3)
    X[:, 1] += np.where(side, 1, -1)
    return X


def circle(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    a = rng.uniform(0, 2 * np.pi, n)
    X = 0.05 * rng.normal(size=(n, d))
    X[:, 0] += np.cos(a)
    X[:, 1] += np.sin(a)
    return X


def displace(shape: Shape, rng: np.random.Generator, X: np.ndarray, idx: np.ndarray) -> None:
    """Move the rows ``idx`` off the normal region, inside the features' ranges."""
    if shape is curve:
        X[idx, 1] = rng.uniform(0, 4, size=len(idx))
    elif shape is clusters:
        X[idx, 0] = rng.uniform(-1.5, 1.5, size=len(idx))
    else:
        X[idx, :2] *= rng.choice([0.4, 1.6], size=(len(idx), 1))


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC-AUC by the rank-sum formula (no ties in continuous scores)."""
    ranks = np.empty(len(scores))
    ranks[np.argsort(scores, kind="mergesort")] = np.arange(1, len(scores) + 1)
    pos = labels.sum()
    neg = len(labels) - pos
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def calm_false_alarms(names: list[str], n: int = 3000, skip: int = 300) -> None:
    levels = (0.99, 0.999, 0.99999)
    print(f"fraction of calm events above each score (events {skip}..{n})")
    print("| detector | " + " | ".join(f"> {t}" for t in levels) + " |")
    print("|---|" + "---:|" * len(levels))
    for name in names:
        rng = np.random.default_rng(1)
        p = StreamPipeline(PipelineConfig(detector=name, warmup=50))
        scores = []
        for i in range(n):
            a = 100 + 2 * rng.normal()
            x = {"a": a, "b": 0.5 * a + rng.normal(), "c": 20 + rng.normal()}
            scores.append(p.process(x, 1_764_151_200 + 60 * i).score)
        s = np.array(scores[skip:])
        print(f"| {name} | " + " | ".join(f"{np.mean(s > t):.5f}" for t in levels) + " |",
              flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--calm", action="store_true", help="false alarms on a calm stream instead")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    if args.calm:
        calm_false_alarms(["pyod.pca", "pyod.knn", "pyod.iforest", "pyod.autoencoder",
                           "pyod.vae", "pyod.deepsvdd"])
        return
    candidates: list[tuple[str, str, dict[str, Any]]] = [
        ("pyod.pca", "pca", {}), ("pyod.iforest", "iforest", {}), ("pyod.knn", "knn", {})]
    for name, params in PYOD_DEFAULTS.items():
        candidates += [(f"pyod.{name} (PyOD defaults)", name, params), (f"pyod.{name}", name, {})]
    fit_model("autoencoder", {}, 0, np.zeros((8, 2)) + np.eye(8, 2))  # import torch untimed
    cells: dict[str, list[str]] = {label: [] for label, _, _ in candidates}
    heads = []
    for i, shape in enumerate((curve, clusters, circle)):
        for d in (3, 8):
            heads.append(f"{shape.__name__} d={d}")
            rng = np.random.default_rng(100 * i + d)
            sets = []
            for _ in range(args.trials):
                train, test = shape(rng, 256, d), shape(rng, 300, d)
                labels = np.zeros(300, bool)
                idx = rng.choice(300, 30, replace=False)
                labels[idx] = True
                displace(shape, rng, test, idx)
                sets.append((train, test, labels))
            for label, algorithm, params in candidates:
                aucs, cpu = [], []
                for seed, (train, test, labels) in enumerate(sets):
                    t0 = time.thread_time()
                    model = fit_model(algorithm, params, seed, train)
                    cpu.append(time.thread_time() - t0)
                    aucs.append(auc(model.decision_function(test), labels))
                cells[label].append(f"{np.mean(aucs):.2f} ({np.mean(cpu) * 1e3:.0f} ms)")
    print("ROC-AUC, mean of", args.trials, "trials (fit CPU time)")
    print("| model | " + " | ".join(heads) + " |")
    print("|---|" + "---:|" * len(heads))
    for label, row in cells.items():
        print(f"| {label} | " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
