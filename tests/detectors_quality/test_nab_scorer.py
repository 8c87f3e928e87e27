"""detectors.nab agrees with the reference NAB scorer (shared/tools/nab_score.py)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np

from detectors import evaluate, nab
from tests.detectors_quality.conftest import SMALL_FILES

TOL = 0.01


def _both(reference: ModuleType, nab_root: Path, scores: dict[str, np.ndarray]) -> None:
    windows = nab_root / "labels" / "combined_windows.json"
    ours = nab.score_corpus(nab.load_corpus(nab_root / "data", windows, only=sorted(scores)), scores)
    full = reference.load_corpus(str(nab_root))
    ref_corpus = {rel: full[rel] for rel in scores}
    theirs, _ = reference.evaluate(ref_corpus, scores, reference.DEFAULT_PROFILES)
    assert set(ours) == set(theirs)
    for profile, r in theirs.items():
        assert abs(ours[profile].normalized - r["normalized"]) < TOL, profile
        assert ours[profile].windows_detected == r["windows_detected"], profile
        assert ours[profile].fp_rows == r["FP_rows"], profile


def test_random_scores_agree(reference: ModuleType, nab_root: Path) -> None:
    rng = np.random.default_rng(7)
    rels = [
        *SMALL_FILES,
        "artificialNoAnomaly/art_noisy.csv",
        "realKnownCause/ec2_request_latency_system_failure.csv",
    ]
    lengths = {rel: len(nab.read_timestamps(nab_root / "data" / rel)) for rel in rels}
    for trial in range(3):
        scores = {rel: rng.random(n) ** (1 + trial) for rel, n in lengths.items()}
        _both(reference, nab_root, scores)


def test_detector_output_agrees(reference: ModuleType, small_nab: tuple[Path, Path],
                                nab_root: Path) -> None:
    data, _ = small_nab
    config = evaluate.load_factory(None, None)
    scores = {rel: np.asarray(evaluate.score_file(str(data), rel, config).scores)
              for rel in SMALL_FILES}
    _both(reference, nab_root, scores)


def test_perfect_and_null_detectors(nab_root: Path) -> None:
    windows = nab_root / "labels" / "combined_windows.json"
    rel = "realKnownCause/rogue_agent_key_hold.csv"
    corpus = nab.load_corpus(nab_root / "data", windows, only=[rel])
    geo = corpus[rel]
    perfect = np.zeros(geo.n)
    for k in range(geo.n_windows):
        perfect[np.flatnonzero(geo.win == k)[0]] = 1.0  # first row of every window
    assert abs(nab.score_corpus(corpus, {rel: perfect})["standard"].normalized - 100.0) < 1e-9
    null = nab.score_corpus(corpus, {rel: np.zeros(geo.n)})
    assert all(r.threshold is None and r.normalized == 0.0 for r in null.values())
