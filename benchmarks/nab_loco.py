"""NAB per category and leave-one-category-out, candidate against baseline (offline tool).

A parameter chosen on the NAB development split is kept only if it helps on categories it
was not tuned on. For each of the 5 categories this scores the held-out category at the
threshold that is best on the other 4 (NAB picks one threshold per detector, so that
threshold is the only thing fitted), for the baseline and for the candidate.

``python -m benchmarks.nab_loco [--nab ../shared/nab] [--base JSON] [--cand JSON]``

``--base``/``--cand`` are detector parameter overrides (JSON objects) for the default
detector, run through the worker's own ``StreamPipeline`` with event times; each prints the
whole-split NAB of the three profiles, then the per-category table (held-out NAB, standard
profile, and low-FP) and how many categories gained.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from detectors import nab
from detectors.evaluate import load_factory, parse_time
from detectors.pipeline import StreamPipeline

CATEGORIES = ("artificialNoAnomaly", "artificialWithAnomaly", "realAWSCloudwatch",
              "realKnownCause", "realTraffic")


def score_file(path: str, detector: str | None, params: dict[str, Any],
               knots: tuple[tuple[float, float], ...] | None = None) -> np.ndarray:
    """Scores of one NAB CSV through the worker's pipeline (its default settings, as
    ``pynomaly evaluate`` builds it), event by event, with event times. ``knots``: the
    default detector's i.i.d. evidence table for these parameters (see ``retable``)."""
    if knots is not None:
        import detectors.rarity as rarity
        from detectors.tail import EvidenceMap

        rarity.IID = EvidenceMap(knots)
    if detector == "core":  # the univariate core alone, as the pre-calibrator pipeline ran it
        return _core_scores(path, load_factory(None, None).default.warmup, params)
    config = load_factory(None, detector).default
    pipe = StreamPipeline(dataclasses.replace(config, params={**config.params, **params}))
    out = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            out.append(pipe.process({"value": float(row["value"])},
                                    parse_time(row["timestamp"])).score)
    return np.asarray(out)


def _core_scores(path: str, warmup: int, params: dict[str, Any]) -> np.ndarray:
    """Scores ``1 - 10 ** (-3 s)`` of the core's evidence, 0 while it warms up (the
    identity calibration the default detector had before the per-stream tail)."""
    from detectors.ensemble import RarityLikelihood

    core = RarityLikelihood(**{"warmup": warmup, **params})
    out = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            young = core.warming_up
            e = core.evidence_learn(float(row["value"]), parse_time(row["timestamp"]))
            out.append(0.0 if young else 1.0 - 10.0 ** (-3.0 * e))
    return np.asarray(out)


def retable(params: dict[str, Any], streams: int = 12, events: int = 30_000
            ) -> tuple[tuple[float, float], ...]:
    """The i.i.d. evidence table (detectors/rarity_table.py) of the core with ``params``:
    a candidate that changes the core's evidence must be scored with its own table, as it
    would ship with it."""
    import functools

    import detectors.rarity as rarity
    import detectors.rarity_table as table
    from detectors.ensemble import RarityLikelihood

    core = {k: v for k, v in params.items() if k not in rarity._OWN}
    saved = table.RarityLikelihood
    table.RarityLikelihood = functools.partial(RarityLikelihood, **core)  # type: ignore[misc,assignment]
    try:
        return table.measure(streams, events)
    finally:
        table.RarityLikelihood = saved  # type: ignore[misc]


def score_split(data: Path, rels: list[str], detector: str | None, params: dict[str, Any],
                jobs: int, knots: tuple[tuple[float, float], ...] | None = None
                ) -> dict[str, np.ndarray]:
    with cf.ProcessPoolExecutor(max_workers=jobs) as pool:
        futs = {r: pool.submit(score_file, str(data / r), detector, params, knots)
                for r in rels}
        return {r: f.result() for r, f in futs.items()}


def at_threshold(corpus: Mapping[str, nab.FileGeometry], scores: Mapping[str, np.ndarray],
                 w: Mapping[str, float], thr: float | None) -> float:
    """Normalised NAB of ``scores`` at a fixed threshold (None: never fire)."""
    thresholds, raw = nab.sweep(corpus, scores, w)
    if thr is None:
        k = 0
    else:  # the sweep's entries are distinct scores, descending: the last one >= thr
        vals = np.array([np.inf, *thresholds[1:]])
        k = int(np.flatnonzero(vals >= thr)[-1])
    n_win = sum(corpus[r].n_windows for r in scores)
    n_scored = sum(corpus[r].n_scored_windows for r in scores)
    perfect, null = w["tp"] * n_win, -w["fn"] * n_scored
    if perfect == null:  # no windows (artificialNoAnomaly): raw points, 0 = no false alarm
        return float(raw[k])
    return 100.0 * (float(raw[k]) - null) / (perfect - null)


def loco(corpus: Mapping[str, nab.FileGeometry], scores: Mapping[str, np.ndarray],
         w: Mapping[str, float]) -> dict[str, float]:
    """Held-out NAB of each category at the best threshold of the other four."""
    out = {}
    for cat in CATEGORIES:
        rest = {r: s for r, s in scores.items() if not r.startswith(cat + "/")}
        held = {r: s for r, s in scores.items() if r.startswith(cat + "/")}
        thresholds, raw = nab.sweep(corpus, rest, w)
        thr = thresholds[int(np.argmax(raw))]
        out[cat] = at_threshold(corpus, held, w, thr)
    return out


def report(name: str, corpus: Mapping[str, nab.FileGeometry],
           scores: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    whole = nab.score_corpus(corpus, scores)
    print(f"{name}: " + ", ".join(
        f"{p} {r.normalized:.2f} ({r.windows_detected}/{r.windows}, {r.fp_rows} FP)"
        for p, r in whole.items()))
    return {p: {"all": whole[p].normalized, **loco(corpus, scores, w)}
            for p, w in nab.PROFILES.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.nab_loco", description=__doc__)
    ap.add_argument("--nab", type=Path, default=Path("../shared/nab"))
    ap.add_argument("--detector", default=None,
                    help="default: the worker's; 'core': the univariate core alone, "
                         "scored 1 - 10 ** (-3 s) as before the per-stream calibrator")
    ap.add_argument("--base", default="{}", help="baseline parameter overrides (JSON)")
    ap.add_argument("--cand", default=None, help="candidate parameter overrides (JSON)")
    ap.add_argument("--jobs", type=int, default=min(os.cpu_count() or 1, 2))
    ap.add_argument("--retable", action="store_true",
                    help="score each run with the i.i.d. evidence table of its own parameters")
    a = ap.parse_args(argv)
    windows = a.nab / "labels" / "combined_windows.json"
    rels = sorted(json.loads(windows.read_text()))
    corpus = nab.load_corpus(a.nab / "data", windows, rels)
    runs = {"base": json.loads(a.base)}
    if a.cand is not None:
        runs["cand"] = json.loads(a.cand)
    tables = {k: report(k, corpus, score_split(a.nab / "data", rels, a.detector, v, a.jobs,
                                               retable(v) if a.retable else None))
              for k, v in runs.items()}
    if "cand" not in tables:
        return 0
    for prof in ("standard", "reward_low_FP_rate"):
        b, c = tables["base"][prof], tables["cand"][prof]
        print(f"\n{prof}: held-out category | base | cand | gain")
        gains = 0
        for cat in CATEGORIES:
            gains += c[cat] > b[cat] + 1e-9
            print(f"| {cat} | {b[cat]:.2f} | {c[cat]:.2f} | {c[cat] - b[cat]:+.2f} |")
        print(f"| whole split | {b['all']:.2f} | {c['all']:.2f} | {c['all'] - b['all']:+.2f} |")
        print(f"categories gained: {gains} of {len(CATEGORIES)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
