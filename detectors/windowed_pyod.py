"""Windowed PyOD detectors: a batch model refitted on a sliding window, off the event loop.

Each stream keeps its last ``window`` events. Every ``refit_every`` events (or
``refit_seconds`` of clock time) a copy of the window is fitted in the injected executor
(a ``concurrent.futures`` Thread- or ProcessPoolExecutor), so the caller never blocks on a
fit. Events are scored by the current model; a finished fit is swapped in on the caller's
thread by one attribute assignment (atomic for the event loop) and ``model_version``
increments. Without an executor fits run inline (offline evaluation, tests).
Until the first fit, ``warming_up`` is True.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import time
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future
from typing import Any

import numpy as np

from detectors.errors import DetectorError
from detectors.protocol import Features
from detectors.registry import register

log = logging.getLogger(__name__)

# name -> (module, class, defaults, accepts random_state)
ALGORITHMS: dict[str, tuple[str, str, dict[str, Any], bool]] = {
    "iforest": ("pyod.models.iforest", "IForest", {"n_estimators": 50}, True),
    "ecod": ("pyod.models.ecod", "ECOD", {}, False),
    "copod": ("pyod.models.copod", "COPOD", {}, False),
    "hbos": ("pyod.models.hbos", "HBOS", {}, False),
    "lof": ("pyod.models.lof", "LOF", {"n_neighbors": 20}, False),
    "knn": ("pyod.models.knn", "KNN", {"n_neighbors": 5}, False),
    "pca": ("pyod.models.pca", "PCA", {}, True),
    "mcd": ("pyod.models.mcd", "MCD", {}, True),
    "gmm": ("pyod.models.gmm", "GMM", {"n_components": 1}, True),
    # Deep models (the optional `deep` extra: torch). Small networks, a high learning rate, no
    # dropout or batch norm, few epochs: a 256-row window trains in ~0.1-0.2 s of one core, and
    # on synthetic non-linear shapes these beat PyOD's defaults (near chance at this training
    # budget) by far; measured in docs/detectors.md.
    "autoencoder": ("detectors.deep_pyod", "AutoEncoder",
                    {"hidden_neuron_list": [16, 4], "epoch_num": 30, "lr": 1e-2,
                     "dropout_rate": 0.0, "batch_norm": False}, True),
    "vae": ("detectors.deep_pyod", "VAE",
            {"encoder_neuron_list": [32, 16], "decoder_neuron_list": [16, 32], "epoch_num": 20,
             "lr": 1e-2, "dropout_rate": 0.0}, True),
    "deepsvdd": ("detectors.deep_pyod", "DeepSVDD",
                 {"hidden_neurons": [16, 8], "epochs": 20, "learning_rate": 1e-2,
                  "dropout_rate": 0.0}, True),
}
DEEP = frozenset({"autoencoder", "vae", "deepsvdd"})


def deep_extra_installed() -> bool:
    """Whether torch (the `deep` extra) is importable, without importing it."""
    return importlib.util.find_spec("torch") is not None


def fit_model(algorithm: str, params: dict[str, Any], seed: int | None, X: np.ndarray) -> Any:
    """Fit one PyOD model on ``X``. Module-level so a ProcessPoolExecutor can pickle it."""
    module, cls_name, defaults, seeded = ALGORITHMS[algorithm]
    cls = getattr(importlib.import_module(module), cls_name)
    kwargs = {**defaults, **params}
    if seeded and seed is not None:
        kwargs.setdefault("random_state", seed)
    if "n_neighbors" in kwargs:  # cannot exceed the window
        kwargs["n_neighbors"] = max(1, min(kwargs["n_neighbors"], len(X) - 1))
    with warnings.catch_warnings():  # sklearn/pyod warn on small or constant windows
        warnings.simplefilter("ignore")
        return cls(**kwargs).fit(X)


def warm_up_compilers(algorithms: Iterable[str] | None = None) -> float:
    """Fit each algorithm once on tiny data so one-off compile costs (numba: HBOS ~2-7 s)
    are paid at worker start-up, not on a stream's first refit. Returns seconds spent.

    By default every algorithm whose dependencies are installed: the deep ones when the deep
    extra is (importing torch and a first fit: ~7 s, ~300 MiB, better at start-up than on the
    event loop when a deep checkpoint is restored)."""
    start = time.perf_counter()
    X = np.random.default_rng(0).normal(size=(64, 3))
    if algorithms is None:
        algorithms = [n for n in ALGORITHMS if n not in DEEP or deep_extra_installed()]
    for name in algorithms:
        model = fit_model(name, {}, 0, X)
        model.decision_function(X[:2])
    return time.perf_counter() - start


class WindowedPyOD:
    """A PyOD model over a stream's sliding window (see the module docstring).

    >>> from detectors import create
    >>> det = create("pyod.knn", window=64, refit_every=32, min_fit=32)
    >>> det.warming_up
    True
    >>> for i in range(64):
    ...     det.learn_one({"a": (i % 7) / 7, "b": (i % 5) / 5})
    >>> det.warming_up, det.model_version
    (False, 2)
    >>> det.score_one({"a": 0.5, "b": 0.5}) < det.score_one({"a": 9.0, "b": 9.0})
    True
    """

    calibration = "lognormal"

    def __init__(
        self,
        algorithm: str,
        window: int = 256,
        refit_every: int = 64,
        refit_seconds: float | None = None,
        min_fit: int = 64,
        seed: int | None = 0,
        warmup: int = 0,
        executor: Executor | None = None,
        clock: Callable[[], float] = time.monotonic,
        fitter: Callable[..., Any] = fit_model,
        **params: Any,
    ) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown PyOD algorithm {algorithm!r}; one of {sorted(ALGORITHMS)}")
        if algorithm in DEEP and not deep_extra_installed():
            raise DetectorError(
                f"detector pyod.{algorithm} needs torch, which comes with the optional deep extra: "
                "pip install -c constraints.txt -e '.[deep]' (or make test-deep); see docs/detectors.md"
            )
        if not 2 <= min_fit <= window:
            raise ValueError(f"need 2 <= min_fit <= window, got {min_fit} and {window}")
        self.name = f"pyod.{algorithm}"
        self.algorithm = algorithm
        self.window, self.refit_every, self.refit_seconds = window, refit_every, refit_seconds
        self.min_fit, self.seed, self.warmup, self.params = min_fit, seed, warmup, params
        self.executor, self.clock, self.fitter = executor, clock, fitter
        self.columns: dict[str, int] = {}  # feature -> column
        self.buf = np.zeros((window, 0))
        self.last = np.zeros(0)  # each feature's last value fills gaps
        self.pos = self.count = self.since_fit = self.n = 0
        self.last_fit = 0.0
        self.model: tuple[Any, int] | None = None  # (fitted model, its column count)
        self.model_version = 0
        self.last_error: str | None = None
        self.future: Future[Any] | None = None
        self.future_cols = 0  # column count of the window the pending fit sees

    def bind(self, executor: Executor | None, clock: Callable[[], float] | None = None) -> None:
        """Attach the refit executor (and clock) after construction or a state restore."""
        self.executor = executor
        if clock is not None:
            self.clock = clock

    def __getstate__(self) -> dict[str, Any]:
        # Executors, futures and clocks belong to the process, not the checkpoint.
        state = self.__dict__.copy()
        state.update(executor=None, future=None, clock=None, fitter=None)
        if self.future is not None:  # the pending refit is lost: refit at the next event
            state["since_fit"] = self.refit_every
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.clock = time.monotonic
        self.fitter = fit_model

    @property
    def warming_up(self) -> bool:
        return self.model is None or self.n < self.warmup

    def _row(self, x: Features, grow: bool) -> np.ndarray:
        cols = self.columns
        if grow:
            for k, v in x.items():
                if k not in cols:  # a new feature: past rows take its first value
                    cols[k] = len(cols)
                    self.buf = np.hstack([self.buf, np.full((self.window, 1), v)])
                    self.last = np.append(self.last, v)
        row = self.last.copy()
        for k, v in x.items():
            j = cols.get(k)
            if j is not None:
                row[j] = v
        return row

    def _poll(self) -> None:
        fut = self.future
        if fut is None or not fut.done():
            return
        self.future = None
        try:
            self._install(fut.result(), self.future_cols)
        except Exception as exc:  # keep scoring with the old model; the next refit retries
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("refit of %s failed: %s", self.name, self.last_error)

    def _install(self, model: Any, cols: int) -> None:
        self.model = (model, cols)
        self.model_version += 1

    def score_one(self, x: Features) -> float:
        self._poll()
        current = self.model
        if current is None:
            return 0.0
        row = self._row(x, grow=False)
        if not np.isfinite(row).all():
            return float("inf")
        model, d = current
        return float(model.decision_function(row[None, :d])[0])

    def score_many(self, X: np.ndarray) -> np.ndarray:
        """Score a batch (rows in this detector's column order) with the current model."""
        self._poll()
        if self.model is None:
            return np.zeros(len(X))
        model, d = self.model
        return np.asarray(model.decision_function(np.asarray(X, float)[:, :d]))

    def learn_one(self, x: Features) -> None:
        row = self._row(x, grow=True)
        if not np.isfinite(row).all():
            return
        self.n += 1
        self.last = row
        self.buf[self.pos] = row
        self.pos = (self.pos + 1) % self.window
        self.count = min(self.count + 1, self.window)
        self.since_fit += 1
        self._poll()
        if self.future is None and self.count >= self.min_fit and self._due():
            self._refit()

    def _due(self) -> bool:
        if self.model is None or self.since_fit >= self.refit_every:
            return True
        return self.refit_seconds is not None and (
            self.clock() - self.last_fit >= self.refit_seconds
        )

    def _refit(self) -> None:
        X = self.buf[: self.count].copy()  # a snapshot: the window moves on while it fits
        self.since_fit = 0
        self.last_fit = self.clock()
        if self.executor is None:
            try:
                model = self.fitter(self.algorithm, self.params, self.seed, X)
            except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
                # e.g. PCA on a constant window: keep the current model, as a pooled refit does
                log.debug("refit of %s failed (%s); keeping model v%d", self.algorithm, exc, self.model_version)
                return
            self._install(model, X.shape[1])
        else:
            self.future_cols = X.shape[1]
            self.future = self.executor.submit(
                self.fitter, self.algorithm, self.params, self.seed, X
            )


# Small windows and models keep the contract suite fast.
_TEST = {"window": 48, "refit_every": 64, "min_fit": 32, "seed": 0}
_TEST_EXTRA: dict[str, dict[str, Any]] = {"iforest": {"n_estimators": 10}, "lof": {"n_neighbors": 8}}
for _name in ALGORITHMS:
    register(f"pyod.{_name}", test_params={**_TEST, **_TEST_EXTRA.get(_name, {})})(
        functools.partial(WindowedPyOD, _name)  # type: ignore[arg-type]
    )
