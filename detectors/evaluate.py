"""Offline evaluation: ``pynomaly evaluate DATA_DIR --out RESULTS_DIR [--labels WINDOWS_JSON]``.

Every CSV under DATA_DIR (columns timestamp,value) is one stream. Each is scored one
event at a time through :class:`detectors.pipeline.StreamPipeline`, the worker's own code
path, and written to RESULTS_DIR/<same relative path> with columns
timestamp,value,anomaly_score. With ``--labels`` the NAB score of the standard,
reward_low_FP_rate and reward_low_FN_rate profiles is printed (see detectors.nab).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import dataclasses
import json
import math
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

import detectors.rarity  # noqa: F401  (registers the default detector)
from detectors import nab
from detectors.rules import PipelineFactory

# The worker's default (streams.settings.Settings.detector): one source of truth.
DEFAULT_DETECTOR = "rarity_likelihood"


@dataclasses.dataclass
class StreamResult:
    """One scored file: its relative path, rows, and how long scoring took."""

    rel: str
    timestamps: list[str]
    values: list[float]
    scores: list[float]
    bad_rows: int
    seconds: float


def load_factory(path: Path | None, detector: str | None) -> PipelineFactory:
    """The worker's pipeline factory, from the same settings (TOML file and PYNOMALY_* env)."""
    from streams.errors import PynomalyError
    from streams.settings import load_settings

    try:
        settings = load_settings(path)
        if detector is not None:
            settings = settings.with_overrides(detector=detector)
        return PipelineFactory.from_settings(settings)
    except PynomalyError as exc:
        raise SystemExit(f"pynomaly evaluate: {exc}") from None


def parse_time(text: str) -> float | None:
    """A CSV timestamp (ISO 8601, read as UTC when it has no offset) as Unix seconds."""
    try:
        dt = datetime.fromisoformat(text.strip().replace(" ", "T"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _parse_value(text: str | None) -> float | None:
    try:
        v = float(text) if text is not None else math.nan
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def score_file(data_dir: str, rel: str, factory: PipelineFactory) -> StreamResult:
    """Score one CSV event by event; unparsable values get score 0 and are not learned."""
    t0 = time.perf_counter()
    pipe = factory(rel, None)
    ts: list[str] = []
    vals: list[float] = []
    scores: list[float] = []
    bad = 0
    with open(Path(data_dir) / rel, newline="") as fh:
        for row in csv.DictReader(fh):
            v = _parse_value(row.get("value"))
            ts.append(row.get("timestamp") or "")
            if v is None:
                bad += 1
                vals.append(math.nan)
                scores.append(0.0)
                continue
            vals.append(v)
            scores.append(pipe.process({"value": v}, parse_time(ts[-1])).score)
    return StreamResult(rel, ts, vals, scores, bad, time.perf_counter() - t0)


def write_result(out_dir: Path, res: StreamResult) -> None:
    path = out_dir / res.rel
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "value", "anomaly_score"])
        for t, v, s in zip(res.timestamps, res.values, res.scores, strict=True):
            w.writerow([t, repr(v) if math.isfinite(v) else "", repr(s)])


def run(data_dir: Path, factory: PipelineFactory, jobs: int) -> list[StreamResult]:
    """Score every CSV under ``data_dir`` (largest first, so the pool finishes evenly)."""
    rels = sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*.csv"))
    if not rels:
        raise SystemExit(f"no CSV files under {data_dir}; point DATA_DIR at NAB's data/ folder")
    rels.sort(key=lambda r: -(data_dir / r).stat().st_size)
    results: list[StreamResult] = []
    done_rows = 0
    t0 = time.perf_counter()

    def progress(res: StreamResult) -> None:
        nonlocal done_rows
        done_rows += len(res.scores)
        sys.stderr.write(
            f"[{len(results)}/{len(rels)}] {res.rel}: {len(res.scores)} rows in "
            f"{res.seconds:.2f}s ({done_rows / max(time.perf_counter() - t0, 1e-9):.0f} rows/s)"
            + (f", {res.bad_rows} bad values" if res.bad_rows else "") + "\n"
        )

    if jobs <= 1:
        for rel in rels:
            results.append(score_file(str(data_dir), rel, factory))
            progress(results[-1])
    else:
        with cf.ProcessPoolExecutor(max_workers=jobs) as pool:
            futs = [pool.submit(score_file, str(data_dir), rel, factory) for rel in rels]
            for fut in cf.as_completed(futs):
                results.append(fut.result())
                progress(results[-1])
    return sorted(results, key=lambda r: r.rel)


def label_key(rel: str, windows: dict[str, list]) -> str | None:
    """The labels entry of a scored file: its own path, or the one path ending in it.

    >>> label_key("speed_7578.csv", {"realTraffic/speed_7578.csv": []})
    'realTraffic/speed_7578.csv'
    """
    if rel in windows:
        return rel
    hits = [k for k in windows if k.endswith("/" + rel)]
    return hits[0] if len(hits) == 1 else None


def nab_report(data_dir: Path, labels: Path, results: list[StreamResult]
               ) -> dict[str, nab.ProfileResult]:
    """NAB scores of the labelled files among ``results``."""
    windows = json.loads(labels.read_text())
    corpus: dict[str, nab.FileGeometry] = {}
    scored: dict[str, np.ndarray] = {}
    for r in results:
        key = label_key(r.rel, windows)
        if key is None:
            continue
        stamps = np.array(r.timestamps, dtype="datetime64[ns]")
        corpus[key] = nab.FileGeometry(key, stamps, windows[key])
        scored[key] = np.asarray(r.scores)
    if not scored:
        raise SystemExit(f"none of the scored files is labelled in {labels}; "
                         "point DATA_DIR at the folder the label paths are relative to")
    profiles = nab.load_profiles(labels.parent.parent / "config" / "profiles.json")
    return nab.score_corpus(corpus, scored, profiles)


def write_plots(plot_dir: Path, results: list[StreamResult], threshold: float,
                labels: Path | None) -> int:
    """One PNG per series; needs matplotlib (optional extra). Returns how many were written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.stderr.write("--plots needs matplotlib: pip install 'pynomaly-stream[plots]'\n")
        return 0
    windows = json.loads(labels.read_text()) if labels is not None else {}
    windows = {r.rel: windows[k] for r in results if (k := label_key(r.rel, windows))}
    for res in results:
        t = np.array(res.timestamps, dtype="datetime64[ns]")
        s = np.asarray(res.scores)
        fig, (ax1, ax2) = plt.subplots(2, 1, sharex=True, figsize=(14, 6))
        ax1.plot(t, res.values, lw=0.7, color="tab:blue")
        for a, b in windows.get(res.rel, []):
            for ax in (ax1, ax2):
                ax.axvspan(np.datetime64(a, "ns"), np.datetime64(b, "ns"), color="gold", alpha=0.3)
        hit = s >= threshold
        ax1.scatter(t[hit], np.asarray(res.values)[hit], color="red", s=12, zorder=3)
        # "Nines" (-log10(1 - score)) spread out the interesting part near 1: 3 = 0.999.
        ax2.plot(t, -np.log10(np.clip(1.0 - s, 1e-12, 1.0)), lw=0.7, color="tab:purple")
        ax2.axhline(-math.log10(max(1.0 - threshold, 1e-12)), color="red", ls="--", lw=0.8)
        ax1.set_title(res.rel)
        ax2.set_ylabel("score, nines (3 = 0.999)")
        path = (plot_dir / res.rel).with_suffix(".png")
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=80, bbox_inches="tight")
        plt.close(fig)
    return len(results)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="pynomaly evaluate", description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", type=Path, help="folder of CSVs (timestamp,value), searched deeply")
    ap.add_argument("--out", type=Path, required=True, help="results folder (mirrors DATA_DIR)")
    ap.add_argument("--labels", type=Path, help="NAB combined_windows.json: print NAB scores")
    ap.add_argument("--config", type=Path, help="the worker's TOML settings file (detector rules)")
    ap.add_argument("--detector", help=f"detector name (default {DEFAULT_DETECTOR})")
    ap.add_argument("--plots", type=Path, help="write one PNG per series here")
    ap.add_argument("--jobs", type=int, default=min(os.cpu_count() or 1, 2),
                    help="worker processes (default: up to 2)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``pynomaly evaluate``; returns the process exit code."""
    a = parse_args(argv)
    if not a.data_dir.is_dir():
        sys.stderr.write(f"DATA_DIR {a.data_dir} is not a folder\n")
        return 2
    if a.labels is not None and not a.labels.is_file():
        sys.stderr.write(f"--labels {a.labels} is not a file; pass NAB's combined_windows.json\n")
        return 2
    factory = load_factory(a.config, a.detector)
    t0 = time.perf_counter()
    results = run(a.data_dir, factory, a.jobs)
    for res in results:
        write_result(a.out, res)
    rows = sum(len(r.scores) for r in results)
    sys.stderr.write(f"scored {len(results)} files, {rows} rows in "
                     f"{time.perf_counter() - t0:.1f}s with {factory.default.detector!r}\n")
    threshold = factory.default.threshold
    if a.labels is not None:
        report = nab_report(a.data_dir, a.labels, results)
        print(f"{'profile':<20} {'threshold':>10} {'NAB':>8}  windows hit/total, FP rows")
        for pname, r in report.items():
            t = "none" if r.threshold is None else f"{r.threshold:.6g}"
            print(f"{pname:<20} {t:>10} {r.normalized:8.2f}  "
                  f"{r.windows_detected}/{r.windows}, {r.fp_rows}")
        best = report.get("standard")
        if best is not None and best.threshold is not None:
            threshold = best.threshold
    if a.plots is not None:
        write_plots(a.plots, results, threshold, a.labels)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
