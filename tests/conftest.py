"""Session-wide fixtures: a real Kafka-API broker on 127.0.0.1.

When PYNOMALY_KAFKA_BOOTSTRAP is set the tests use that broker; otherwise the session
starts the embedded Tansu broker on a free port and stops it at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.broker import EmbeddedBroker, free_port
from tests.support.kafka import WorkerProcess, topic_env, unique


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    existing = os.environ.get("PYNOMALY_KAFKA_BOOTSTRAP")
    if existing:
        yield existing
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap


@pytest.fixture
def app_env() -> dict[str, str]:
    """Unique app id (consumer group) and topic names for one test."""
    return topic_env(unique("pyn"))


@pytest.fixture
def start_worker(kafka_bootstrap: str, tmp_path: Path) -> Iterator:
    """Factory: start_worker(env) -> a running WorkerProcess; all are stopped at teardown."""
    workers: list[WorkerProcess] = []

    def start(env: dict[str, str], wait_ready: float = 60.0, web_port: int | None = None) -> WorkerProcess:
        w = WorkerProcess(kafka_bootstrap, env, tmp_path, web_port or free_port())
        workers.append(w)
        return w.start(wait_ready)

    yield start
    for w in workers:
        w.stop()
