"""The contract every registered detector keeps (parametrized over the whole registry)."""

from __future__ import annotations

import doctest
import importlib
import math
import pickle

import numpy as np
import pytest

from detectors import create, registry
from tests.detectors.names import detector_params
from tests.detectors.streams import roc_auc, spiky_stream

NAMES = detector_params()
EVENTS, LABELS = spiky_stream(n=400, start=150, every=60)


def build(name: str):
    return create(name, **registry.test_params(name))


def run(det, events) -> list[float]:
    out = []
    for x in events:
        out.append(det.score_one(x))
        det.learn_one(x)
    return out


def test_registry_is_broad() -> None:
    for name in ("zscore", "hst", "ocsvm", "gaussian", "sad", "loda", "pad", "pyod.iforest",
                 "pyod.ecod", "pyod.copod", "pyod.hbos", "pyod.lof", "pyod.knn", "pyod.pca",
                 "pyod.mcd", "pyod.gmm", "pyod.autoencoder", "pyod.vae", "pyod.deepsvdd"):
        assert name in registry.names()


@pytest.mark.parametrize("name", NAMES)
def test_pickle_round_trip_scores_identically(name: str) -> None:
    det = build(name)
    run(det, EVENTS[:120])
    clone = pickle.loads(pickle.dumps(det))
    tail = EVENTS[120:150]
    assert run(clone, tail) == run(det, tail)


@pytest.mark.parametrize("name", NAMES)
def test_fixed_seed_is_deterministic(name: str) -> None:
    assert run(build(name), EVENTS[:150]) == run(build(name), EVENTS[:150])


@pytest.mark.parametrize("name", NAMES)
def test_spikes_rank_above_normal_events(name: str) -> None:
    det = build(name)
    scores = np.array(run(det, EVENTS))
    judged = slice(120, None)
    auc = roc_auc(scores[judged], LABELS[judged])
    assert auc > 0.5, f"{name}: ROC-AUC {auc:.3f}"


@pytest.mark.parametrize("name", NAMES)
def test_warm_up_is_reported(name: str) -> None:
    det = build(name)
    assert det.warming_up is True
    run(det, EVENTS[:110])
    assert det.warming_up is False


@pytest.mark.parametrize("name", NAMES)
def test_features_may_appear_and_disappear(name: str) -> None:
    det = build(name)
    rng = np.random.default_rng(1)
    for i in range(150):
        x = {"a": float(rng.normal())}
        if i % 3:
            x["b"] = float(rng.normal())
        if i > 60 and i % 5 == 0:
            x["c"] = float(rng.normal())
        if i == 100:
            x = {"z": 1.0}
        s = det.score_one(x)
        det.learn_one(x)
        assert not math.isnan(s), f"{name} scored NaN at event {i}: {x}"


@pytest.mark.parametrize("name", NAMES)
def test_bad_values_do_not_raise(name: str) -> None:
    det = build(name)
    run(det, EVENTS[:110])
    for x in ({"a": float("nan"), "b": 5.0}, {"a": float("inf"), "b": 5.0}):
        det.score_one(x)
        det.learn_one(x)
    s = det.score_one(EVENTS[110])
    assert math.isfinite(s), f"{name} was poisoned by a NaN/inf event: {s}"


@pytest.mark.parametrize("name", NAMES)
def test_docstring_example_runs(name: str) -> None:
    cls = create(name, **registry.test_params(name)).__class__
    module = importlib.import_module(cls.__module__)
    tests = [t for t in doctest.DocTestFinder().find(module) if t.examples]
    assert any(t.name.endswith(cls.__name__) for t in tests), f"{cls.__name__} has no example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for t in tests:
        runner.run(t)
    assert runner.summarize(verbose=False).failed == 0
