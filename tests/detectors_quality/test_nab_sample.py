"""The NAB path on a sample that ships with the tests: runs in a fresh clone without ../shared.

tests/detectors_quality/nab_sample/ holds three synthetic series in NAB's CSV format and
their labelled windows in NAB's combined_windows.json format (written by generate.py;
no NAB data). ``pynomaly evaluate --labels`` scores them with the worker's default
detector and prints NAB scores (detectors/nab.py); the figures below can fail.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from detectors import evaluate, nab
from tests.detectors_quality.nab_sample import generate

SAMPLE = Path(__file__).resolve().parent / "nab_sample"
DATA, LABELS = SAMPLE / "data", SAMPLE / "labels" / "combined_windows.json"
# Measured with the default detector (rarity_likelihood): standard 92.99, low-FP 92.99,
# low-FN 95.33, all 4 windows hit, 0 false-positive rows. The bounds leave room for
# detector tuning, not for a broken scorer or evaluate path.
MIN_STANDARD = 85.0


def test_committed_sample_matches_its_generator():
    for rel, text in generate.render().items():
        assert (SAMPLE / rel).read_text() == text, f"{rel} differs: run the generator"


def test_evaluate_scores_the_sample_end_to_end(tmp_path, capsys):
    out = tmp_path / "out"
    assert evaluate.main([str(DATA), "--out", str(out), "--labels", str(LABELS), "--jobs", "1"]) == 0
    printed = capsys.readouterr().out
    rows = {m.group(1): m for m in re.finditer(
        r"^(\S+)\s+(\S+)\s+(-?[\d.]+)\s+(\d+)/(\d+), (\d+)$", printed, re.M)}
    assert set(rows) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}, printed
    standard = rows["standard"]
    assert float(standard.group(3)) >= MIN_STANDARD, printed
    assert (standard.group(4), standard.group(5)) == ("4", "4"), printed  # every window hit
    assert int(standard.group(6)) <= 5, printed  # false-positive rows at the chosen threshold
    # One output row per input row, scores in [0, 1], highest inside the labelled windows.
    windows = json.loads(LABELS.read_text())
    corpus = nab.load_corpus(DATA, LABELS)
    for rel, geo in corpus.items():
        with open(out / rel, newline="") as fh:
            res = list(csv.DictReader(fh))
        assert len(res) == geo.n
        scores = np.array([float(r["anomaly_score"]) for r in res])
        assert ((scores >= 0) & (scores <= 1)).all()
        inside = geo.win >= 0
        assert scores[inside].max() > scores[~inside & geo.scored].max(), rel
        assert len(windows[rel]) == len(set(geo.win[inside].tolist()))


def test_scorer_wiring_perfect_null_and_late_detectors():
    """The NAB rules on the sample's geometry: a detector firing at each window's start
    scores 100, one that never fires 0, one firing at each window's end less than the
    early one, and one firing everywhere below 0."""
    corpus = nab.load_corpus(DATA, LABELS)

    def score(fire) -> dict[str, nab.ProfileResult]:
        scores = {}
        for rel, geo in corpus.items():
            s = np.zeros(geo.n)
            for w in set(geo.win[geo.win >= 0].tolist()):
                rows = np.flatnonzero(geo.win == w)
                s[fire(rows)] = 1.0
            scores[rel] = s
        return nab.score_corpus(corpus, scores)

    assert score(lambda rows: rows[0])["standard"].normalized == pytest.approx(100.0)
    late = score(lambda rows: rows[-1])["standard"].normalized
    assert 0.0 < late < 100.0
    assert score(lambda rows: [])["standard"].normalized == pytest.approx(0.0)
    always = {rel: np.ones(geo.n) for rel, geo in corpus.items()}
    # at its best threshold a detector that always fires is no better than never firing
    assert nab.score_corpus(corpus, always)["standard"].normalized <= 0.0 + 1e-9
    # probation: NAB ignores the first 15% of each file (300 of 2,000 rows here)
    assert all(int((~geo.scored).sum()) == 300 for geo in corpus.values())
