"""Fault-suite fixtures: each test's first worker is started ahead of the test.

A worker takes ~8 s to become ready (imports, topic creation, group join), most of it
waiting. A live test module may declare the environment of the worker its test starts
first (``PRESTART = [env]``, or ``{test name: env}``); the session starts those of the
selected tests one at a time in the background, in test order, at most two ahead of the
test that will use them, and ``start_worker(env)`` hands over the prestarted process for
an identical env. The
workers are the same fresh processes the tests would start: nothing has been produced to
their topics before the test. Restarts inside a scenario (after kill -9, after a
tampered checkpoint) are started and timed by the test itself.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.broker import free_port
from tests.support.kafka import WorkerProcess

Key = frozenset[tuple[str, str]]
AHEAD = 2  # workers started before the test that claims them (idle ones cost CPU too)


class Prestarted:
    """Workers started in a background thread, in the order the tests will want them."""

    def __init__(self, bootstrap: str, envs: list[dict[str, str]], log_dir: Path) -> None:
        self.bootstrap, self.log_dir = bootstrap, log_dir
        self.slots: dict[Key, dict[str, Any]] = {
            frozenset(e.items()): {"env": e, "ready": threading.Event(), "worker": None,
                                   "error": None, "claimed": False}
            for e in envs}
        self.order = list(self.slots)
        self._claimed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prestart", daemon=True)

    def start(self) -> Prestarted:
        self._thread.start()
        return self

    def _run(self) -> None:
        for i, key in enumerate(self.order):
            # At most AHEAD started, unclaimed workers: idle workers cost CPU too.
            with self._claimed:
                self._claimed.wait_for(lambda: self._stop.is_set() or i < AHEAD
                                       or self.slots[self.order[i - AHEAD]]["claimed"])
            if self._stop.is_set():
                return
            slot = self.slots[key]
            try:
                w = WorkerProcess(self.bootstrap, slot["env"], self.log_dir, free_port())
                slot["worker"] = w
                w.start(90.0)
            except Exception as exc:  # the test that wanted it reports it
                slot["error"] = exc
            slot["ready"].set()

    def claim(self, env: dict[str, str]) -> WorkerProcess | None:
        slot = self.slots.get(frozenset(env.items()))
        if slot is None or slot["claimed"]:
            return None
        with self._claimed:
            slot["claimed"] = True
            self._claimed.notify_all()
        if not slot["ready"].wait(120):
            raise TimeoutError("prestarted worker not ready in 120 s")
        if slot["error"] is not None:
            raise slot["error"]
        return slot["worker"]

    def stop(self) -> None:
        self._stop.set()
        with self._claimed:
            self._claimed.notify_all()
        self._thread.join(120)
        for slot in self.slots.values():
            if not slot["claimed"] and slot["worker"] is not None:
                slot["worker"].stop()


@pytest.fixture(scope="session")
def prestarted(request: pytest.FixtureRequest, kafka_bootstrap: str,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prestarted]:
    envs: list[dict[str, str]] = []
    for item in request.session.items:
        module = getattr(item, "module", None)
        declared = getattr(module, "PRESTART", None)
        # a list: for the module's first test; a dict: test function name -> env
        if isinstance(declared, dict):
            env = declared.get(getattr(item, "originalname", item.name))
        else:
            env = declared[0] if declared else None
        if env is not None and env not in envs:
            envs.append(env)
    pool = Prestarted(kafka_bootstrap, envs, tmp_path_factory.mktemp("prestart")).start()
    yield pool
    pool.stop()


@pytest.fixture(autouse=True)
def _prestart_early(prestarted: Prestarted) -> None:
    """Every fault test pulls the pool in, so it starts with the first test of the session."""


@pytest.fixture
def start_worker(kafka_bootstrap: str, tmp_path: Path, prestarted: Prestarted) -> Iterator:
    """Factory: start_worker(env) -> a running WorkerProcess (prestarted when declared)."""
    workers: list[WorkerProcess] = []

    def start(env: dict[str, str], wait_ready: float = 60.0, web_port: int | None = None) -> WorkerProcess:
        w = prestarted.claim(env) if web_port is None else None
        if w is not None:
            workers.append(w)
            return w
        w = WorkerProcess(kafka_bootstrap, env, tmp_path, web_port or free_port())
        workers.append(w)
        return w.start(wait_ready)

    yield start
    for w in workers:
        w.stop()


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    """The broker-stall test brings its own broker and worker: run it last, when the
    prestarted workers are up and idle, not while they are still importing (its worker
    took 33 s to become ready instead of ~8 s when it ran first)."""
    items.sort(key=lambda item: item.path.name == "test_broker_stall.py")
