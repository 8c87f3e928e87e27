"""Deep PyOD models (AutoEncoder, VAE, DeepSVDD) for the windowed PyOD detector.

Needs the optional ``deep`` extra (torch, CPU build): ``pip install -c constraints.txt -e
'.[deep]'``. ``WindowedPyOD`` fits these like any PyOD model (``fit_model`` in a refit
executor); this module adds what a streaming detector needs and PyOD does not give:

- Determinism: a fit seeds torch, numpy and ``random`` from the detector's seed under a lock,
  then restores the global generators. PyOD draws from process-global generators (DeepSVDD
  shuffles with numpy's unseeded one, so two fits with one seed differed) and reseeds them as a
  side effect; refit threads of different streams would interleave their draws.
- Scoring draws no random numbers and takes no lock, so the event loop never waits for a refit
  and never shifts a refit's draws: the networks run directly (PyOD's scoring builds a
  DataLoader, whose iterator draws a seed from torch's global generator on every call), and
  the VAE decodes its latent mean (PyOD samples the latent at scoring time, so one event
  scored twice, or by a restored checkpoint, scored differently).
- One torch thread per fit: many streams share 2 cores; tiny networks gain nothing from more.
- Checkpoints by ``state_dict``: a pickle holds the fitted estimator's attributes and the
  network weights as numpy arrays, not the torch module, its optimizer (Adam's moments), the
  training scores or any torch object; unpickling builds the network on torch's meta device
  (no random initialisation, no lock) and loads the weights, so a restored model scores
  exactly as the one saved, without a refit.

>>> import numpy as np
>>> X = np.random.default_rng(0).normal(size=(128, 2))
>>> model = AutoEncoder(random_state=0, hidden_neuron_list=[8, 4], epoch_num=2).fit(X)
>>> scores = model.decision_function(np.array([[0.0, 0.0], [8.0, -8.0]]))
>>> bool(scores[1] > scores[0])
True
>>> import pickle
>>> bool((pickle.loads(pickle.dumps(model)).decision_function(X) == model.decision_function(X)).all())
True
"""

from __future__ import annotations

import os
import random
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import torch
from pyod.models.auto_encoder import AutoEncoder as PyODAutoEncoder
from pyod.models.deep_svdd import DeepSVDD as PyODDeepSVDD
from pyod.models.deep_svdd import InnerDeepSVDD
from pyod.models.vae import VAE as PyODVAE

_EPS = 1e-8  # PyOD's TorchDataset: (x - mean) / (std + eps)

# torch's, numpy's and random's global generators are process-wide: one seeded fit at a time.
_RNG_LOCK = threading.Lock()


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed every generator PyOD draws from; restore them (and PYTHONHASHSEED) afterwards."""
    with _RNG_LOCK, torch.random.fork_rng(devices=[]):
        np_state, py_state = np.random.get_state(), random.getstate()
        hash_seed = os.environ.get("PYTHONHASHSEED")  # PyOD's _set_seed overwrites it
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        torch.set_num_threads(1)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
            if hash_seed is None:
                os.environ.pop("PYTHONHASHSEED", None)
            else:
                os.environ["PYTHONHASHSEED"] = hash_seed


class DeepModel:
    """A deep PyOD estimator fitted on one window: seeded fits, pickles by ``state_dict``."""

    net_attr: ClassVar[str] = "model"  # the estimator's attribute holding the torch network
    # fitted attributes a restored model does not need: the optimizer, training scores, copies
    _dropped: ClassVar[tuple[str, ...]] = ("optimizer", "criterion", "best_model_dict",
                                           "decision_scores_", "labels_")

    def __init__(self, random_state: int | None = None, **params: Any) -> None:
        self.random_state = random_state
        self.params = params
        self.estimator: Any = None

    def _seed(self) -> int:
        if self.random_state is None:  # unseeded on purpose: a fresh seed per fit
            return int(np.random.SeedSequence().generate_state(1)[0])
        return int(self.random_state)

    def _new_estimator(self, n_features: int, seed: int) -> Any:
        raise NotImplementedError

    def _new_network(self) -> torch.nn.Module:
        """An untrained network shaped like the fitted estimator's (for restores)."""
        self.estimator.build_model()
        return self.estimator.model

    def fit(self, X: np.ndarray) -> DeepModel:
        X = np.asarray(X, dtype=float)
        seed = self._seed()
        with seeded(seed):
            self.estimator = self._new_estimator(X.shape[1], seed)
            self.estimator.batch_size = max(2, min(self.estimator.batch_size, len(X)))
            self.estimator.fit(X)
            getattr(self.estimator, self.net_attr).eval()
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self._score(np.asarray(X, dtype=float)).numpy().astype(float)

    def _standardised(self, X: np.ndarray) -> torch.Tensor:
        est = self.estimator
        if est.preprocessing:
            X = (X - est.X_mean) / (est.X_std + _EPS)
        return torch.as_tensor(X, dtype=torch.float32)

    def _score(self, X: np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    def __getstate__(self) -> dict[str, Any]:
        est = self.estimator
        state: dict[str, Any] = {"random_state": self.random_state, "params": self.params}
        if est is None:
            return state
        fitted = {k: v for k, v in vars(est).items() if k not in (*self._dropped, self.net_attr)}
        state["tensors"] = [k for k, v in fitted.items() if isinstance(v, torch.Tensor)]
        for k in state["tensors"]:
            fitted[k] = fitted[k].detach().cpu().numpy().copy()
        state["devices"] = [k for k, v in fitted.items() if isinstance(v, torch.device)]
        for k in state["devices"]:
            fitted[k] = str(fitted[k])
        state["estimator"] = (type(est), fitted)
        net = getattr(est, self.net_attr)
        state["weights"] = {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.random_state, self.params = state["random_state"], state["params"]
        self.estimator = None
        if "estimator" not in state:
            return
        cls, fitted = state["estimator"]
        est = cls.__new__(cls)
        est.__dict__.update(fitted)
        for k in state["tensors"]:
            setattr(est, k, torch.from_numpy(fitted[k]))
        for k in state["devices"]:
            setattr(est, k, torch.device(fitted[k]))
        self.estimator = est
        with torch.device("meta"):  # shapes only: no initial weights drawn from the generators
            net = self._new_network()
        net = net.to_empty(device="cpu")
        net.load_state_dict({k: torch.from_numpy(v) for k, v in state["weights"].items()})
        setattr(est, self.net_attr, net.eval())


class AutoEncoder(DeepModel):
    """PyOD's AutoEncoder: the score is the reconstruction error of the standardised row."""

    def _new_estimator(self, n_features: int, seed: int) -> Any:
        return PyODAutoEncoder(random_state=seed, verbose=0, **self.params)

    def _score(self, X: np.ndarray) -> torch.Tensor:
        x = self._standardised(X)
        return torch.linalg.vector_norm(x - self.estimator.model(x), dim=1)


class VAE(DeepModel):
    """PyOD's VAE: the reconstruction error of the decoded latent mean (not a sampled latent)."""

    def _new_estimator(self, n_features: int, seed: int) -> Any:
        return PyODVAE(random_state=seed, verbose=0, **self.params)

    def _score(self, X: np.ndarray) -> torch.Tensor:
        x = self._standardised(X)
        net = self.estimator.model
        z_mu, _ = net.encode(x)
        return torch.linalg.vector_norm(x - net.decode(z_mu), dim=1)


class DeepSVDD(DeepModel):
    """PyOD's DeepSVDD: squared distance of the embedding from the hypersphere centre."""

    net_attr = "model_"

    def _new_estimator(self, n_features: int, seed: int) -> Any:
        return PyODDeepSVDD(n_features=n_features, random_state=seed, verbose=0, **self.params)

    def _score(self, X: np.ndarray) -> torch.Tensor:
        est = self.estimator
        x = est.scaler_.transform(X) if est.preprocessing else X
        out = est.model_(torch.as_tensor(x, dtype=torch.float32))
        return torch.sum((out - est.c_) ** 2, dim=-1)

    def _new_network(self) -> torch.nn.Module:
        est = self.estimator
        return InnerDeepSVDD(est.n_features, use_ae=est.use_ae, hidden_neurons=est.hidden_neurons,
                             hidden_activation=est.hidden_activation,
                             output_activation=est.output_activation,
                             dropout_rate=est.dropout_rate, l2_regularizer=est.l2_regularizer)
