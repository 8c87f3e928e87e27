"""Every registered detector as a pytest parameter; the deep models carry the `deep` marker
(they need the optional deep extra: torch; see tests/conftest.py and `make test-deep`)."""

from __future__ import annotations

import pytest

from detectors import registry
from detectors.windowed_pyod import DEEP


def is_deep(name: str) -> bool:
    return name.startswith("pyod.") and name.removeprefix("pyod.") in DEEP


def detector_params() -> list:
    return [pytest.param(n, marks=pytest.mark.deep) if is_deep(n) else n for n in registry.names()]
