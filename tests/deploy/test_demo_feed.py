"""deploy/compose/demo_feed.py: the compose stack's demo producer."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import orjson
import pytest

from streams.codec import DeadLetter, Event, decode_record
from streams.synthetic import SyntheticStreams
from tests.deploy.support import COMPOSE_DIR, ROOT
from tests.support.kafka import create_topics, read_all, topic_env, unique

SCRIPT = COMPOSE_DIR / "demo_feed.py"


def load_feed() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_feed", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_batch_is_valid_input_with_wall_clock_event_times(tmp_path: Path) -> None:
    feed = load_feed()
    synth = SyntheticStreams(n_streams=4, seed=1)
    path = tmp_path / "b.ndjson"
    start = time.time()
    next_ts = feed.write_batch(synth, path, ticks=10, start_ts=start, step_s=0.5)
    assert next_ts == pytest.approx(start + 5.0)
    lines = path.read_bytes().splitlines()
    assert len(lines) == 40
    seen: dict[str, list[float]] = {}
    for offset, line in enumerate(lines):
        doc = orjson.loads(line)
        decoded = decode_record(doc["stream"].encode(), line, None, "t", 0, offset, 1_000_000, 100)
        assert len(decoded) == 1 and isinstance(decoded[0], Event), decoded
        assert not isinstance(decoded[0], DeadLetter)
        seen.setdefault(decoded[0].stream, []).append(decoded[0].ts)
    assert len(seen) == 4
    for times in seen.values():
        assert times == sorted(times) and times[0] == pytest.approx(start)


@pytest.mark.parametrize("argv", [["--streams", "0"], ["--rate", "0"], ["--batches", "-1"],
                                  ["--ticks-per-batch", "0"]])
def test_bad_arguments_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        load_feed().parse_args(argv)
    assert info.value.code == 2


@pytest.mark.integration
def test_one_batch_reaches_the_events_topic(kafka_bootstrap: str) -> None:
    env = topic_env(unique("feed"), partitions=2)
    create_topics(kafka_bootstrap, [env["PYNOMALY_TOPIC_EVENTS"]], 2)
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--streams", "5", "--rate", "2000",
         "--ticks-per-batch", "4", "--batches", "1"],
        env={**os.environ, **env, "PYNOMALY_KAFKA_BOOTSTRAP": kafka_bootstrap,
             "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    docs = read_all(kafka_bootstrap, env["PYNOMALY_TOPIC_EVENTS"], expect=20, timeout=30, idle=1)
    assert len(docs) == 20
    assert len({d["stream"] for d in docs}) == 5
