"""Deep PyOD models (the `deep` extra): refits off the caller's thread, seeded fits that leave the
process's global generators alone, and checkpoints that hold weights, not torch objects."""

from __future__ import annotations

import multiprocessing
import pickle
import pickletools
import random
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest

from detectors import create, windowed_pyod
from detectors.errors import DetectorError
from detectors.windowed_pyod import DEEP, WindowedPyOD, fit_model

DEEP_NAMES = sorted(DEEP)


def _window(n: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([10 + np.sin(np.arange(n) / 8) + 0.2 * rng.normal(size=n),
                            5 + 0.3 * rng.normal(size=n)])


def _events(n: int, seed: int = 0) -> list[dict[str, float]]:
    return [{"a": float(a), "b": float(b)} for a, b in _window(n, seed)]


def test_deep_models_without_the_extra_say_how_to_install_it(monkeypatch) -> None:
    monkeypatch.setattr(windowed_pyod, "deep_extra_installed", lambda: False)
    for name in DEEP_NAMES:
        with pytest.raises(DetectorError, match=r"needs torch.*deep extra.*\[deep\]"):
            create(f"pyod.{name}")
    create("pyod.pca")  # the other PyOD models do not need it


deep = pytest.mark.deep  # the deep extra (torch): see tests/conftest.py


@deep
@pytest.mark.parametrize("name", DEEP_NAMES)
def test_a_fit_leaves_the_global_generators_alone(name: str) -> None:
    import torch

    fit_model(name, {}, 0, _window())  # importing torch and PyOD may draw: not the fit's doing
    np.random.seed(123)
    random.seed(123)
    torch.manual_seed(123)
    expected = (np.random.random(), random.random(), torch.rand(1).item())
    np.random.seed(123)
    random.seed(123)
    torch.manual_seed(123)
    fit_model(name, {}, 0, _window())
    assert (np.random.random(), random.random(), torch.rand(1).item()) == expected
    assert torch.get_num_threads() == 1  # 2 cores shared by many streams


@deep
@pytest.mark.parametrize("name", DEEP_NAMES)
def test_a_fit_does_not_depend_on_the_global_generators(name: str) -> None:
    import torch

    probe = _window(32, seed=9)
    scores = []
    for other in (1, 2):  # whatever other code did with the globals before this refit
        np.random.seed(other)
        random.seed(other)
        torch.manual_seed(other)
        scores.append(fit_model(name, {}, 0, _window()).decision_function(probe))
    assert np.array_equal(scores[0], scores[1])


@deep
@pytest.mark.parametrize("name", DEEP_NAMES)
def test_refits_stay_deterministic_while_other_streams_refit_and_score(name: str) -> None:
    X = _window()
    probe = _window(32, seed=9)
    alone = fit_model(name, {}, 0, X).decision_function(probe)
    scorer = fit_model(name, {}, 1, _window(seed=5))
    with ThreadPoolExecutor(max_workers=2) as pool:  # the worker's refit pool: 2 threads
        futures = [pool.submit(fit_model, name, {}, 0, X) for _ in range(4)]
        while not all(f.done() for f in futures):  # the event loop scores other streams
            scorer.decision_function(probe[:1])
        for f in futures:
            assert np.array_equal(f.result().decision_function(probe), alone)


@deep
@pytest.mark.parametrize("name", DEEP_NAMES)
def test_checkpoint_holds_weights_as_arrays_not_torch_objects(name: str) -> None:
    model = fit_model(name, {}, 0, _window())
    blob = pickle.dumps(model)
    names = [str(arg) for op, arg, _ in pickletools.genops(blob) if isinstance(arg, str)]
    assert not [n for n in names if n.startswith("torch")], "a torch object in the checkpoint"
    assert "optimizer" not in names, "the optimizer (Adam's moments) is in the checkpoint"
    assert len(blob) < 16 * 1024, f"{name}: {len(blob)} bytes"
    probe = _window(32, seed=9)
    restored = pickle.loads(blob)
    assert np.array_equal(restored.decision_function(probe), model.decision_function(probe))
    # the weights are really in the checkpoint: a fresh network's scores differ
    from detectors.deep_pyod import seeded

    fresh = pickle.loads(blob)
    with seeded(7):
        net = fresh._new_network()
    setattr(fresh.estimator, fresh.net_attr, net.eval())
    assert not np.allclose(fresh.decision_function(probe), model.decision_function(probe))


@deep
def test_scoring_continues_while_a_real_deep_refit_runs_in_the_pool() -> None:
    events = _events(400, seed=3)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # a long refit (200 epochs, a few seconds) so scoring demonstrably overlaps it
        det = WindowedPyOD("autoencoder", window=256, refit_every=128, min_fit=64, executor=pool,
                           epoch_num=200)
        for x in events[:64]:
            det.learn_one(x)
        det.future.result(timeout=120)  # the first fit
        det.score_one(events[0])
        assert det.model_version == 1
        for x in events[64:192]:  # the 128th event after the first fit submits the second
            det.learn_one(x)
        fut = det.future
        assert fut is not None
        scored, slowest = 0, 0.0
        deadline = time.monotonic() + 120
        while not fut.done() and time.monotonic() < deadline:
            t0 = time.perf_counter()
            det.score_one(events[192 + scored % 200])
            slowest = max(slowest, time.perf_counter() - t0)
            scored += 1
        assert fut.done()
        assert scored >= 100, f"only {scored} events scored during the refit"
        assert slowest < 0.25, f"an event waited {slowest:.3f} s on the refit"
        det.score_one(events[0])
        assert det.model_version == 2


@deep
def test_deep_refits_in_a_process_pool_match_inline_fits() -> None:
    X = _window()
    probe = _window(32, seed=9)
    inline = fit_model("vae", {}, 0, X).decision_function(probe)
    ctx = multiprocessing.get_context("spawn")  # torch's thread pools are not fork-safe
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        child = pool.submit(fit_model, "vae", {}, 0, X).result(timeout=180)
    assert np.array_equal(child.decision_function(probe), inline)
