"""Test helpers around an independent Kafka client (confluent-kafka) and worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

REPO = Path(__file__).resolve().parents[2]


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def topic_env(app_id: str, partitions: int = 4) -> dict[str, str]:
    """Unique topic names and group for one test, as PYNOMALY_* variables."""
    return {
        "PYNOMALY_APP_ID": app_id,
        "PYNOMALY_TOPIC_EVENTS": f"{app_id}.events",
        "PYNOMALY_TOPIC_SCORES": f"{app_id}.scores",
        "PYNOMALY_TOPIC_ANOMALIES": f"{app_id}.anomalies",
        "PYNOMALY_TOPIC_DEADLETTER": f"{app_id}.deadletter",
        "PYNOMALY_TOPIC_ALERTS": f"{app_id}.alerts",
        "PYNOMALY_TOPIC_FEEDBACK": f"{app_id}.feedback",
        "PYNOMALY_TOPIC_STATE": f"{app_id}.state",
        "PYNOMALY_TOPIC_PARTITIONS": str(partitions),
    }


def create_topics(bootstrap: str, names: Iterable[str], partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    for f in futures.values():
        try:
            f.result(10)
        except Exception as exc:  # already exists is fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise


def producer(bootstrap: str, **extra: Any) -> Producer:
    # murmur2_random: the Java client's partitioner, which Faust and aiokafka also use.
    return Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5, **extra})


def read_all(bootstrap: str, topic: str, expect: int | None = None, timeout: float = 30.0,
             idle: float = 3.0) -> list[Any]:
    """Every record of ``topic`` from the start (no consumer group), decoded as JSON.

    Stops when ``expect`` records were read and nothing more came for ``idle`` seconds,
    or at ``timeout``.
    """
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("reader"),
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        md = c.list_topics(topic, timeout=10)
        parts = md.topics[topic].partitions
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() < deadline:
            msgs = c.consume(1000, 0.5)
            got = [m for m in msgs if not m.error()]
            for m in got:
                out.append(orjson.loads(m.value()) if m.value() else None)
            if got:
                last = time.monotonic()
            reached = expect is None or len(out) >= expect
            if reached and time.monotonic() - last >= idle:
                break
        return out
    finally:
        c.close()


def checkpointed_offsets(bootstrap: str, env: dict[str, str]) -> dict[str, int]:
    """stream -> the events offset its latest checkpoint covers, read from the state topic of
    the app in ``env`` (signed with the dev broker's key, as the test workers sign them)."""
    from streams.checkpoints import PROGRESS_KEY, load_state, state_key
    from streams.settings import Settings

    key = state_key(Settings(app_id=env["PYNOMALY_APP_ID"], dev_broker=True))
    assert key is not None
    topic = env["PYNOMALY_TOPIC_STATE"]
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("state-reader"),
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        md = c.list_topics(topic, timeout=10)
        if topic not in md.topics or md.topics[topic].error is not None:
            return {}
        ends = {}
        for p in md.topics[topic].partitions:
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        c.assign([TopicPartition(topic, p, 0) for p in ends])
        latest: dict[str, int] = {}
        deadline = time.monotonic() + 30
        while ends and time.monotonic() < deadline:
            for m in c.consume(1000, 0.5):
                if m.error():
                    continue
                if m.offset() + 1 >= ends.get(m.partition(), 0):
                    ends.pop(m.partition(), None)
                if m.key() == PROGRESS_KEY or not m.value():
                    continue
                stream = m.key().decode()
                # signed for its events topic and partition (state partition p holds events partition p)
                offset = load_state(m.value(), key, env["PYNOMALY_TOPIC_EVENTS"], m.partition(), stream)[0]
                latest[stream] = offset
        return latest
    finally:
        c.close()


class WorkerProcess:
    """`pynomaly worker` as a subprocess with its own env; log captured to a file."""

    def __init__(self, bootstrap: str, env: dict[str, str], log_dir: Path, web_port: int) -> None:
        self.log_path = log_dir / f"worker-{web_port}-{uuid.uuid4().hex[:6]}.log"
        self.env = {
            **os.environ,
            "PYNOMALY_KAFKA_BOOTSTRAP": bootstrap,
            "PYNOMALY_DEV_BROKER": "true",
            "PYNOMALY_WEB_PORT": str(web_port),
            "PYNOMALY_DATA_DIR": str(log_dir / f"data-{web_port}"),
            "PYNOMALY_LOG_LEVEL": "info",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_ready: float = 60.0) -> WorkerProcess:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=self.env,
                                     stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO)
        if wait_ready:
            self.wait_for("Worker]: Ready", wait_ready)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log().count(text) >= count:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"worker exited ({self.proc.returncode}):\n{self.log()[-4000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"worker did not log {text!r} within {timeout}s:\n{self.log()[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode
