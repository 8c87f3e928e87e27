"""Writes the synthetic NAB-format sample beside this file (data/, labels/); deterministic.

Three series of 2,000 rows at 5-minute steps, in NAB's CSV format (``timestamp,value``),
each with labelled anomaly windows in NAB's ``combined_windows.json`` format. Windows
follow NAB's rule: 10% of the file's rows shared by its anomalies, centred on each one.
Nothing here is NAB data; run ``python -m tests.detectors_quality.nab_sample.generate``
to rewrite the files (tests check that the committed files match this generator).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROWS = 2000
START = datetime(2026, 3, 1)
STEP = timedelta(minutes=5)


def stamp(i: int) -> str:
    return (START + i * STEP).strftime("%Y-%m-%d %H:%M:%S")


def series() -> dict[str, tuple[np.ndarray, list[int]]]:
    """name -> (values, rows where an anomaly starts)."""
    rng = np.random.default_rng(20261206)
    t = np.arange(ROWS)
    daily = 10 * np.sin(2 * np.pi * t / 288)  # 288 five-minute steps a day
    spikes = 100 + daily + rng.normal(0, 1.0, ROWS)
    spikes[900] += 45
    spikes[1600] -= 40
    shift = 50 + rng.normal(0, 1.0, ROWS)
    shift[1200:] += 15
    burst = 20 + rng.normal(0, 0.5, ROWS)
    burst[1400:1450] = 20 + rng.normal(0, 6.0, 50)
    return {
        "synthetic/daily_spikes.csv": (np.round(spikes, 3), [900, 1600]),
        "synthetic/level_shift.csv": (np.round(shift, 3), [1200]),
        "synthetic/variance_burst.csv": (np.round(burst, 3), [1400]),
    }


def windows(starts: list[int]) -> list[list[str]]:
    half = ROWS // 10 // len(starts) // 2
    return [[stamp(max(0, a - half)) + ".000000", stamp(min(ROWS - 1, a + half - 1)) + ".000000"]
            for a in starts]


def render() -> dict[str, str]:
    """Relative path -> file text of every file of the sample."""
    files: dict[str, str] = {}
    labels: dict[str, list[list[str]]] = {}
    for rel, (values, starts) in series().items():
        files[f"data/{rel}"] = "timestamp,value\n" + "".join(
            f"{stamp(i)},{v:.3f}\n" for i, v in enumerate(values))
        labels[rel] = windows(starts)
    files["labels/combined_windows.json"] = json.dumps(labels, indent=4, sort_keys=True) + "\n"
    return files


def main() -> None:
    for rel, text in render().items():
        path = HERE / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


if __name__ == "__main__":
    main()
