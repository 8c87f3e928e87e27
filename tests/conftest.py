"""Session-wide fixtures: a real Kafka-API broker on 127.0.0.1.

When PYNOMALY_KAFKA_BOOTSTRAP is set the tests use that broker; otherwise the session
starts the embedded Tansu broker on a free port and stops it at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from detectors.windowed_pyod import deep_extra_installed
from streams.broker import EmbeddedBroker, free_port
from tests.support.kafka import WorkerProcess, topic_env, unique

DEEP_NOT_RUN = pytest.StashKey[int]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without the deep extra (torch), the `deep` tests are deselected, counted and reported in
    the summary (below): never skipped-as-passed, never silent."""
    if deep_extra_installed():
        return
    deep = [item for item in items if item.get_closest_marker("deep")]
    if not deep:
        return
    config.hook.pytest_deselected(items=deep)
    items[:] = [item for item in items if not item.get_closest_marker("deep")]
    config.stash[DEEP_NOT_RUN] = len(deep)
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: tell the controller, which prints the line
        workeroutput["deep_not_run"] = len(deep)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    # Every xdist worker collects (and deselects) the same tests: keep one count.
    n = getattr(node, "workeroutput", {}).get("deep_not_run", 0)
    node.config.stash[DEEP_NOT_RUN] = max(node.config.stash.get(DEEP_NOT_RUN, 0), n)


@pytest.hookimpl(trylast=True)  # after the durations and the short summary: near the last line
def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    n = config.stash.get(DEEP_NOT_RUN, 0)
    if n:
        terminalreporter.write_line(
            f"deep extra not installed: {n} deep-model tests not run (make test-deep installs it)",
            yellow=True, bold=True,
        )


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
