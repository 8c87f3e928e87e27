"""Kafka helpers for the benchmarks: topics, preloading, paced producing, reading outputs.

An independent client (confluent-kafka) produces the input and reads the outputs, so the
systems under test are measured only by what they write to Kafka.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topics(bootstrap: str, names: Iterable[str], partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(n, partitions, 1) for n in names]).values():
        try:
            f.result(15)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise


def producer(bootstrap: str) -> Producer:
    # murmur2_random: the Java partitioner, as Faust and aiokafka use, so keys land alike.
    return Producer({
        "bootstrap.servers": bootstrap, "partitioner": "murmur2_random",
        "linger.ms": 5, "queue.buffering.max.messages": 1_000_000,
        "batch.num.messages": 10_000,
    })


def event_bytes(stream: str, i: int, ts: float) -> bytes:
    # A gentle periodic signal; the value does not matter for throughput.
    return orjson.dumps({"stream": stream, "ts": ts, "value": float((i * 7919) % 100) / 10.0})


def _produce(p: Producer, topic: str, key: bytes, value: bytes) -> None:
    while True:
        try:
            p.produce(topic, value, key)
            return
        except BufferError:
            p.poll(0.05)


def preload(bootstrap: str, topic: str, n_events: int, n_streams: int, per_record: int = 1) -> int:
    """Write ``n_events`` events round-robin over ``n_streams``; returns the record count.

    With ``per_record`` > 1 each record is a JSON array of that many events of one stream.
    """
    p = producer(bootstrap)
    names = [f"s{k:06d}" for k in range(n_streams)]
    keys = [n.encode() for n in names]
    records = 0
    i = 0
    ts = time.time()
    while i < n_events:
        k = (i // per_record) % n_streams
        if per_record == 1:
            value = event_bytes(names[k], i, ts)
            i += 1
        else:
            count = min(per_record, n_events - i)
            value = b"[" + b",".join(event_bytes(names[k], i + j, ts) for j in range(count)) + b"]"
            i += count
        _produce(p, topic, keys[k], value)
        records += 1
        if records % 10_000 == 0:
            p.poll(0)
    p.flush(60)
    return records


def paced(bootstrap: str, topic: str, rate: float, seconds: float,
          n_streams: int) -> tuple[int, float]:
    """Produce single-event records at ``rate`` events/s for ``seconds``, each stamped with
    its produce time in ``ts`` (latency = output record time - ts).

    One warm-up event per stream goes first, so that the producer's connection and metadata
    set-up is not counted. Returns (records produced, Unix time the measured phase began).
    """
    p = producer(bootstrap)
    names = [f"s{k:06d}" for k in range(n_streams)]
    for i, name in enumerate(names):
        _produce(p, topic, name.encode(), event_bytes(name, i, time.time()))
    p.flush(30)
    time.sleep(0.5)
    total = int(rate * seconds)
    start = time.time()
    for i in range(total):
        due = start + i / rate
        now = time.time()
        if due > now:
            time.sleep(due - now)
        name = names[i % n_streams]
        _produce(p, topic, name.encode(), event_bytes(name, i, time.time()))
        if i % 500 == 0:
            p.poll(0)
    p.flush(60)
    return total + n_streams, start


class OutputReader:
    """Reads ``topic`` from the start in a background thread while a system runs.

    High watermarks are not reliable on the embedded broker, so outputs are counted by
    reading them; values are kept raw and parsed only after the run, to take little CPU
    from the system under test.
    """

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("bench-reader"),
                            "auto.offset.reset": "earliest", "enable.auto.commit": False,
                            "fetch.max.bytes": 50_000_000})
        parts = self._c.list_topics(topic, timeout=10).topics[topic].partitions
        self._c.assign([TopicPartition(topic, p, 0) for p in parts])
        self.raw: list[tuple[int, bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            for m in self._c.consume(10_000, 0.1):
                if not m.error() and m.value():
                    self.raw.append((m.timestamp()[1], m.value()))

    @property
    def count(self) -> int:
        return len(self.raw)

    def wait(self, expect: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while len(self.raw) < expect and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(self.raw)

    def close(self) -> list[tuple[int, float]]:
        """Stop reading; (record timestamp ms, event ts seconds) of every output."""
        self._stop.set()
        self._thread.join()
        self._c.close()
        return [(ms, float(orjson.loads(v).get("ts", 0.0))) for ms, v in self.raw]
