"""The examples in the detectors package's docstrings run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["calibration", "thresholds", "explain", "pipeline", "rules", "state", "river_base",
           "windowed_pyod", "seasonality", "rank_windows", "rarity_params", "ensemble", "zscore",
           "sad", "gaussian", "hst", "ocsvm", "loda", "pad",
           pytest.param("deep_pyod", marks=pytest.mark.deep)]  # the deep extra: torch


@pytest.mark.parametrize("module", MODULES)
def test_module_examples(module: str) -> None:
    mod = importlib.import_module(f"detectors.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"detectors.{module} has no example"
    assert result.failed == 0
