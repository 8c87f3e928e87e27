"""Windowed PyOD: refits off the caller's thread, atomic swaps, versions, batch scoring."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from detectors.windowed_pyod import WindowedPyOD, fit_model


def _events(n: int, seed: int = 0) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    return [{"a": float(rng.normal()), "b": float(rng.normal())} for _ in range(n)]


def test_scoring_continues_while_a_slow_refit_runs_in_the_pool() -> None:
    release = threading.Event()
    started = threading.Event()

    def slow_fit(algorithm, params, seed, X):
        if started.is_set():  # the first fit is quick, every later one blocks until released
            release.wait(10)
        started.set()
        return fit_model(algorithm, params, seed, X)

    fit_model("knn", {}, 0, np.ones((8, 2)))  # pay the import (seconds) before timing
    with ThreadPoolExecutor(max_workers=1) as pool:
        det = WindowedPyOD("knn", window=40, refit_every=20, min_fit=20, executor=pool,
                           fitter=slow_fit)
        events = _events(200)
        for x in events[:20]:
            det.learn_one(x)
        deadline = time.monotonic() + 30
        while det.warming_up and time.monotonic() < deadline:
            det.score_one(events[0])  # polls the finished first fit
            time.sleep(0.01)
        assert det.model_version == 1 and not det.warming_up
        for x in events[20:40]:  # the 20th event submits the (slow) second refit
            det.learn_one(x)
        assert det.future is not None and not det.future.done()
        for x in events[40:140]:  # 100 events scored and learned while the refit blocks
            det.score_one(x)
            det.learn_one(x)
        # Nothing waited for the fit: it cannot finish before release (or its 10 s timeout),
        # so a score_one that blocked on it would find it done here. No wall-clock bound:
        # that depends on the machine (the speed figure is in benchmarks/).
        assert not det.future.done() and not release.is_set()
        assert det.model_version == 1  # still the old model
        release.set()
        det.future.result(timeout=5)
        det.score_one(events[0])
        assert det.model_version == 2  # swapped in on the caller's thread


def test_failed_refit_keeps_the_old_model() -> None:
    calls = []

    def flaky(algorithm, params, seed, X):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("boom")
        return fit_model(algorithm, params, seed, X)

    with ThreadPoolExecutor(max_workers=1) as pool:
        det = WindowedPyOD("pca", window=40, refit_every=10, min_fit=20, executor=pool,
                           fitter=flaky)
        for x in _events(40):
            det.learn_one(x)
            if det.future is not None:
                det.future.exception(timeout=5)
        det.score_one({"a": 0.0, "b": 0.0})
        assert det.model_version == 1
        assert det.last_error is not None and "boom" in det.last_error


def test_refit_by_clock_time() -> None:
    now = [0.0]
    det = WindowedPyOD("pca", window=64, refit_every=10_000, refit_seconds=60.0, min_fit=20,
                       clock=lambda: now[0])
    events = _events(60)
    for x in events[:30]:
        det.learn_one(x)
    assert det.model_version == 1
    det.learn_one(events[30])
    assert det.model_version == 1
    now[0] = 61.0
    det.learn_one(events[31])
    assert det.model_version == 2


def test_score_many_matches_score_one() -> None:
    # (ECOD/COPOD are transductive: their batch scores include the batch in the ECDF.)
    det = WindowedPyOD("knn", window=64, refit_every=64, min_fit=32)
    events = _events(64)
    for x in events:
        det.learn_one(x)
    X = np.array([[x["a"], x["b"]] for x in events[:10]])
    batch = det.score_many(X)
    single = [det.score_one(x) for x in events[:10]]
    assert np.allclose(batch, single)


def test_refits_in_a_process_pool() -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    fit_model("pca", {}, 0, np.ones((8, 2)) + np.eye(8, 2))  # imported before forking
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        det = WindowedPyOD("pca", window=40, refit_every=20, min_fit=20, executor=pool)
        events = _events(60)
        for x in events[:40]:
            det.learn_one(x)
            if det.future is not None:
                det.future.result(timeout=30)
        det.score_one(events[0])
        assert det.model_version == 2  # two fits made in the child and swapped in here
        assert det.score_one({"a": 9.0, "b": 9.0}) > det.score_one({"a": 0.0, "b": 0.0})
