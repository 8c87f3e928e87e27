"""The Numenta Anomaly Benchmark (NAB v1) scoring rules, in numpy only.

Written from the NAB rules (Lavin & Ahmad 2015): a probationary prefix of
``min(floor(0.15 n), 750)`` rows is ignored; each labelled window rewards only its
earliest detection, scaled by how early it came; a missed window costs ``fn``; a
detection outside every window costs ``fp`` scaled by its distance from the
preceding window. One threshold per profile is chosen to maximise the corpus score,
by an exact sweep over every distinct anomaly score, and the result is normalised so
that the never-firing detector scores 0 and the perfect one 100.

>>> import numpy as np
>>> ts = np.arange(100).astype("datetime64[m]")
>>> geo = FileGeometry("f.csv", ts, [(ts[50], ts[59])])
>>> s = np.zeros(100); s[50] = 1.0
>>> round(score_corpus({"f.csv": geo}, {"f.csv": s})["standard"].normalized, 6)
100.0
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

PROFILES: dict[str, dict[str, float]] = {
    "standard": {"tp": 1.0, "fp": 0.11, "fn": 1.0},
    "reward_low_FP_rate": {"tp": 1.0, "fp": 0.22, "fn": 1.0},
    "reward_low_FN_rate": {"tp": 1.0, "fp": 0.11, "fn": 2.0},
}
PROBATION_FRACTION = 0.15
PROBATION_CAP = 5000


def scaled_sigmoid(y: np.ndarray | float) -> np.ndarray:
    """NAB's scaled sigmoid ``2 / (1 + exp(5y)) - 1``, pinned to -1 beyond y = 3."""
    y = np.asarray(y, dtype=float)
    with np.errstate(over="ignore"):
        out = 2.0 / (1.0 + np.exp(5.0 * y)) - 1.0
    return np.where(y > 3.0, -1.0, out)


_MAX_TP = float(scaled_sigmoid(-1.0))


def probation_rows(n: int) -> float:
    """Rows with index below this are ignored by the scorer."""
    return min(math.floor(PROBATION_FRACTION * n), PROBATION_FRACTION * PROBATION_CAP)


def _locate(ts: np.ndarray, stamp: np.datetime64, start: bool) -> int:
    hit = np.flatnonzero(ts == stamp)
    if len(hit):
        return int(hit[0])
    # A window edge between rows is clipped to the rows inside the window, as NAB does.
    if start:
        return int(np.flatnonzero(ts >= stamp)[0])
    return int(np.flatnonzero(ts <= stamp)[-1])


class FileGeometry:
    """Per-row facts of one data file: scored or not, window id, TP and FP weights."""

    def __init__(self, name: str, timestamps: np.ndarray, windows: Sequence[Sequence]) -> None:
        ts = np.asarray(timestamps, dtype="datetime64[ns]")
        n = len(ts)
        self.name = name
        self.n = n
        self.scored = np.arange(n) >= probation_rows(n)
        bounds = sorted(
            (_locate(ts, np.datetime64(a, "ns"), True), _locate(ts, np.datetime64(b, "ns"), False))
            for a, b in windows
        )
        self.win = np.full(n, -1, dtype=np.int64)
        self.tp_val = np.zeros(n)
        self.fp_val = np.full(n, -1.0)  # before the first window a detection costs fp in full
        prev_end: int | None = None
        prev_width = 1
        cursor = 0
        for k, (left, right) in enumerate(bounds):
            width = right - left + 1
            if prev_end is not None and cursor < left:
                gap = np.arange(cursor, left)
                self.fp_val[gap] = scaled_sigmoid((gap - prev_end) / max(prev_width - 1, 1))
            rows = np.arange(left, right + 1)
            self.win[rows] = k
            self.tp_val[rows] = scaled_sigmoid(-(right - rows + 1) / width) / _MAX_TP
            prev_end, prev_width, cursor = right, width, right + 1
        if prev_end is not None and cursor < n:
            gap = np.arange(cursor, n)
            self.fp_val[gap] = scaled_sigmoid((gap - prev_end) / max(prev_width - 1, 1))
        self.n_windows = len(bounds)
        self.n_scored_windows = len(set(self.win[self.scored & (self.win >= 0)].tolist()))


@dataclasses.dataclass(frozen=True)
class ProfileResult:
    """The best single threshold of one profile and what it scores."""

    threshold: float | None  # None: the best is never to fire
    raw: float
    normalized: float
    windows: int
    windows_detected: int
    fp_rows: int


def _flatten(
    corpus: Mapping[str, FileGeometry], scores: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]:
    s_all, w_all, tp_all, fp_all = [], [], [], []
    offset = n_win = n_scored = 0
    for rel, s in scores.items():
        geo = corpus[rel]
        s = np.asarray(s, dtype=float)
        if len(s) != geo.n:
            raise ValueError(f"{rel}: {len(s)} scores for {geo.n} data rows; write one per row")
        m = geo.scored
        w = geo.win[m]
        s_all.append(np.where(np.isnan(s[m]), -np.inf, s[m]))
        w_all.append(np.where(w >= 0, w + offset, -1))
        tp_all.append(geo.tp_val[m])
        fp_all.append(geo.fp_val[m])
        offset += geo.n_windows
        n_win += geo.n_windows
        n_scored += geo.n_scored_windows
    cat = np.concatenate
    return cat(s_all), cat(w_all), cat(tp_all), cat(fp_all), n_win, n_scored


def sweep(
    corpus: Mapping[str, FileGeometry], scores: Mapping[str, np.ndarray], w: Mapping[str, float]
) -> tuple[list[float | None], np.ndarray]:
    """Raw corpus score at every candidate threshold; ``thresholds[0]`` is None (never fire)."""
    s, win, tp, fp, _, n_scored = _flatten(corpus, scores)
    order = np.argsort(-s, kind="stable")
    s, win, tp, fp = s[order], win[order], tp[order], fp[order]
    delta = np.where(win < 0, w["fp"] * fp, 0.0)
    idx = np.flatnonzero(win >= 0)
    if len(idx):
        # Per window, the credited value is the best (earliest) detection so far; a grouped
        # running max (groups offset far apart) gives each detection's marginal gain.
        g = win[idx]
        by_group = idx[np.argsort(g, kind="stable")]
        grp = win[by_group]
        vals = np.maximum(w["tp"] * tp[by_group], -w["fn"])
        span = 4.0 * (w["tp"] + w["fn"]) + 1.0
        run = np.maximum.accumulate(vals + grp * span) - grp * span
        first = np.r_[True, grp[1:] != grp[:-1]]
        prev = np.where(first, -w["fn"], np.r_[0.0, run[:-1]])
        delta[by_group] = run - prev
    base = -w["fn"] * n_scored
    total = base + np.cumsum(delta)
    last = np.r_[s[1:] != s[:-1], True] & np.isfinite(s)
    return [None, *s[last].tolist()], np.r_[base, total[last]]


def score_corpus(
    corpus: Mapping[str, FileGeometry],
    scores: Mapping[str, np.ndarray],
    profiles: Mapping[str, Mapping[str, float]] = PROFILES,
) -> dict[str, ProfileResult]:
    """Best-threshold NAB score of ``scores`` (file -> per-row scores) for each profile."""
    out: dict[str, ProfileResult] = {}
    _, _, _, _, n_win, n_scored = _flatten(corpus, scores)
    for pname, w in profiles.items():
        thr, raw = sweep(corpus, scores, w)
        k = int(np.argmax(raw))  # the first maximum is the highest threshold among ties
        t = thr[k]
        detected = fp_rows = 0
        for rel, s in scores.items():
            geo = corpus[rel]
            hit = (np.asarray(s) >= t) & geo.scored if t is not None else np.zeros(geo.n, bool)
            detected += len(set(geo.win[hit & (geo.win >= 0)].tolist()))
            fp_rows += int((hit & (geo.win < 0)).sum())
        perfect, null = w["tp"] * n_win, -w["fn"] * n_scored
        out[pname] = ProfileResult(
            threshold=t,
            raw=float(raw[k]),
            normalized=100.0 * (float(raw[k]) - null) / (perfect - null),
            windows=n_scored,
            windows_detected=detected,
            fp_rows=fp_rows,
        )
    return out


def read_timestamps(path: Path) -> np.ndarray:
    """The timestamp column of a NAB-format CSV as datetime64[ns]."""
    with open(path, newline="") as fh:
        return np.array([row["timestamp"] for row in csv.DictReader(fh)], dtype="datetime64[ns]")


def load_profiles(path: Path | None) -> dict[str, dict[str, float]]:
    """NAB's config/profiles.json (CostMatrix weights), or the built-in three profiles."""
    if path is None or not path.exists():
        return {k: dict(v) for k, v in PROFILES.items()}
    raw = json.loads(path.read_text())
    out = {}
    for name, p in raw.items():
        cm = p.get("CostMatrix", p)
        out[name] = {"tp": float(cm["tpWeight"]), "fp": float(cm["fpWeight"]),
                     "fn": float(cm["fnWeight"])}
    return out


def load_corpus(data_dir: Path, windows_file: Path, only: Sequence[str] | None = None
                ) -> dict[str, FileGeometry]:
    """Geometry of every labelled file (or of ``only`` those relative paths)."""
    windows = json.loads(Path(windows_file).read_text())
    rels = sorted(windows) if only is None else sorted(only)
    missing = [r for r in rels if r not in windows]
    if missing:
        raise ValueError(f"no labels for {missing[:3]} in {windows_file}; is it the right file?")
    return {r: FileGeometry(r, read_timestamps(Path(data_dir) / r), windows[r]) for r in rels}
