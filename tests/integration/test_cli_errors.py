"""Configuration errors end in one line, "pynomaly: error: ...", and exit 2: no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.kafka import REPO


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=60, cwd=REPO)


def test_a_typo_in_detector_rules_is_a_one_line_error(tmp_path: Path) -> None:
    config = tmp_path / "pynomaly.toml"
    config.write_text('[[detectors.rules]]\nmatch = "x*"\ndetectr = "zscore"\n')
    # No broker is needed: the rules are built before anything connects.
    res = _cli("worker", "--config", str(config), env={"PYNOMALY_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    assert res.returncode == 2, res.stderr[-2000:]
    assert "pynomaly: error:" in res.stderr and "detectr" in res.stderr and "known:" in res.stderr
    assert "Traceback" not in res.stderr


def test_an_unknown_detector_names_the_valid_ones(tmp_path: Path) -> None:
    config = tmp_path / "pynomaly.toml"
    config.write_text('[detectors.default]\ndetector = "zscroe"\n')
    res = _cli("evaluate", str(tmp_path), "--out", str(tmp_path / "out"), "--config", str(config))
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "zscroe" in res.stderr and "rarity_likelihood" in res.stderr
