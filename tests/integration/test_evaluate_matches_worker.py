"""`pynomaly evaluate` and a streaming worker give the same scores for the same series."""

from __future__ import annotations

import csv
import math
import random
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from detectors import evaluate
from tests.support.kafka import producer, read_all

pytestmark = pytest.mark.integration


def write_series(path: Path, n: int = 600) -> list[tuple[str, float]]:
    rng = random.Random(21)
    rows = []
    for i in range(n):
        ts = datetime.fromtimestamp(1_700_000_000 + 300 * i, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
        value = 10 + 2 * math.sin(i / 20) + rng.gauss(0, 0.3) + (8 if i in (250, 420) else 0)
        rows.append((ts, round(value, 5)))
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "value"])
        w.writerows(rows)
    return rows


def test_offline_and_streaming_scores_are_identical(kafka_bootstrap, app_env, start_worker, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rows = write_series(data / "series.csv")
    out = tmp_path / "out"
    assert evaluate.main([str(data), "--out", str(out), "--jobs", "1"]) == 0
    with (out / "series.csv").open() as fh:
        offline = [float(r["anomaly_score"]) for r in csv.DictReader(fh)]
    assert len(offline) == len(rows)

    start_worker(app_env)
    p = producer(kafka_bootstrap)
    for ts, value in rows:
        doc = {"stream": "series.csv", "ts": ts.replace(" ", "T") + "Z", "value": value}
        p.produce(app_env["PYNOMALY_TOPIC_EVENTS"], key="series.csv", value=orjson.dumps(doc))
    p.flush(30)
    scored = read_all(kafka_bootstrap, app_env["PYNOMALY_TOPIC_SCORES"], expect=len(rows), timeout=60)
    by_offset = {d["source"]["offset"]: d["score"] for d in scored}
    streaming = [by_offset[k] for k in sorted(by_offset)]
    assert len(streaming) == len(rows)
    assert streaming == offline
    assert max(offline) >= 0.999  # the injected spikes are there to be found
