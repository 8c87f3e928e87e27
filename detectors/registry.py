"""Detectors looked up by name, PyOD-style: ``create("zscore", alpha=0.02)``."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from detectors.errors import DetectorError, UnknownDetectorError
from detectors.protocol import Detector

Factory = Callable[..., Detector]

_REGISTRY: dict[str, Factory] = {}
_TEST_PARAMS: dict[str, dict[str, Any]] = {}


def register(name: str, test_params: dict[str, Any] | None = None) -> Callable[[Factory], Factory]:
    """Class decorator: make a detector available by ``name``.

    ``test_params`` are the parameters the contract suite uses (small windows, seeds).
    """

    def deco(factory: Factory) -> Factory:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise DetectorError(f"detector name {name!r} is registered twice")
        _REGISTRY[name] = factory
        _TEST_PARAMS[name] = dict(test_params or {})
        return factory

    return deco


# Modules imported for their @register side effect; lazy so importing the registry is cheap.
BUILTIN_MODULES: tuple[str, ...] = (
    "detectors.zscore",
    "detectors.sad",
    "detectors.gaussian",
    "detectors.hst",
    "detectors.ocsvm",
    "detectors.loda",
    "detectors.pad",
    "detectors.windowed_pyod",
)
# Registered when present (built in parallel by another module owner).
OPTIONAL_MODULES: tuple[str, ...] = ("detectors.rarity",)
_loaded = False


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    for module in OPTIONAL_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def test_params(name: str) -> dict[str, Any]:
    _load_builtins()
    return dict(_TEST_PARAMS[name])


def create(name: str, **params: Any) -> Detector:
    """Build the detector registered as ``name`` with ``params``."""
    _load_builtins()
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise UnknownDetectorError(
            f"unknown detector {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}"
        ) from None
    try:
        return factory(**params)
    except TypeError as exc:
        raise DetectorError(f"bad parameters for detector {name!r}: {exc}") from None
