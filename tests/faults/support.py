"""Helpers for the fault suite: sizes, loads with delivery receipts, output accounting.

``PYNOMALY_FAULTS_FULL=1`` selects the full sizes of the issue; the default sizes keep the
whole directory within the CI budget. Every figure a test measures is printed with a
``FAULTS`` prefix (``pytest -s``) and appended to ``$PYNOMALY_FAULTS_REPORT`` when set.
"""

from __future__ import annotations

import os
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from confluent_kafka import Consumer, TopicPartition

from tests.support.kafka import producer, unique
from tests.support.waiting import wait_for

FULL = os.environ.get("PYNOMALY_FAULTS_FULL", "").lower() in {"1", "true", "yes"}
T0 = 1_790_000_000

Offset = tuple[int, int]  # (partition, offset) of an input record


def size(default: int, full: int) -> int:
    return full if FULL else default


def report(name: str, **figures: Any) -> None:
    """Print a measured figure (and append it to $PYNOMALY_FAULTS_REPORT)."""
    line = f"FAULTS {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items())
    print(line, flush=True)
    path = os.environ.get("PYNOMALY_FAULTS_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


class Load:
    """A confluent-kafka producer that remembers the (partition, offset) of every delivery."""

    def __init__(self, bootstrap: str, topic: str,
                 mark: Callable[[bytes], bool] | None = None) -> None:
        self.topic = topic
        self.p = producer(bootstrap, **{"message.max.bytes": 2_000_000})
        self.delivered: set[Offset] = set()
        self.mark = mark
        self.marked: set[Offset] = set()  # delivered offsets whose value ``mark`` matched
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def _cb(self, err: Any, msg: Any) -> None:
        with self._lock:
            if err is not None:
                self.errors.append(str(err))
            else:
                self.delivered.add((msg.partition(), msg.offset()))
                if self.mark is not None and self.mark(msg.value() or b""):
                    self.marked.add((msg.partition(), msg.offset()))

    def send(self, key: bytes | str | None, value: bytes) -> None:
        while True:
            try:
                self.p.produce(self.topic, key=key, value=value, on_delivery=self._cb)
                break
            except BufferError:  # local queue full: let deliveries drain
                self.p.poll(0.1)
        self.p.poll(0)

    def event(self, stream: str, i: int, value: float) -> None:
        self.send(stream, orjson.dumps({"stream": stream, "ts": T0 + i, "value": value}))

    def flush(self, timeout: float = 60.0) -> None:
        left = self.p.flush(timeout)
        assert left == 0, f"{left} records not delivered within {timeout}s"
        assert not self.errors, self.errors[:3]


def value_of(stream_no: int, i: int) -> float:
    """A calm, deterministic signal (no injected anomalies)."""
    return round(10.0 + stream_no % 7 + ((i * 7919 + stream_no) % 13) / 10.0, 3)


def topic_count(bootstrap: str, topic: str) -> int:
    """About the records in ``topic`` (sum of high watermarks): a cheap progress poll.

    Tansu under-reports watermarks after multi-record batches (by ~10%), so this is a
    lower bound; counts that matter are read with :func:`read_raw`.
    """
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("count")})
    try:
        md = c.list_topics(topic, timeout=10)
        total = 0
        for p in md.topics[topic].partitions:
            total += c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        return total
    finally:
        c.close()


def wait_count(bootstrap: str, topic: str, at_least: int, timeout: float, poll: float = 0.05,
               alive: Callable[[], None] | None = None) -> int:
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        n = topic_count(bootstrap, topic)
        if n >= at_least:
            return n
        if alive is not None:
            alive()
        time.sleep(poll)
    raise AssertionError(f"{topic}: {n} records after {timeout}s, expected >= {at_least}")


def read_raw(bootstrap: str, topic: str, timeout: float = 60.0,
             idle: float = 1.0) -> list[tuple[bytes | None, int]]:
    """Every (value, broker timestamp ms) of ``topic``: read until nothing came for ``idle`` s.

    Not bounded by the high watermarks: Tansu under-reports them after multi-record batches.
    """
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("reader"),
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        md = c.list_topics(topic, timeout=10)
        c.assign([TopicPartition(topic, p, 0) for p in md.topics[topic].partitions])
        out: list[tuple[bytes | None, int]] = []
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last < idle:
            got = [m for m in c.consume(5000, 0.2) if not m.error()]
            if got:
                last = time.monotonic()
            out.extend((m.value(), m.timestamp()[1]) for m in got)
        return out
    finally:
        c.close()


def sources(records: Iterable[tuple[bytes | None, int]]) -> list[Offset]:
    """The (partition, offset) each scored or dead-letter record names as its source."""
    out = []
    for value, _ in records:
        doc = orjson.loads(value) if value else {}
        src = doc.get("source") or {}
        out.append((src.get("partition"), src.get("offset")))
    return out


def coverage(bootstrap: str, topics: Iterable[str], delivered: set[Offset],
             timeout: float = 90.0) -> tuple[set[Offset], int]:
    """Wait until every delivered offset has an output in ``topics``; return (seen, records).

    Records are re-read until coverage is complete or ``timeout`` passes.
    """
    deadline = time.monotonic() + timeout
    while True:
        srcs: list[Offset] = []
        for t in topics:
            srcs.extend(sources(read_raw(bootstrap, t)))
        seen = set(srcs)
        if delivered <= seen or time.monotonic() > deadline:
            return seen, len(srcs)
        time.sleep(1.0)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:  # noqa: S310
        return resp.read().decode("utf-8")


def metric(text: str, name: str, labels: str = "") -> float:
    """The value of one sample in a Prometheus exposition (0.0 when absent)."""
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" (\S+)"
    m = re.search(r"^" + pattern + "$", text, re.M)
    return float(m.group(1)) if m else 0.0


class Tail:
    """Follows a topic from its start in a thread: record count, sources and timestamps.

    A reliable progress signal (watermarks are not, on Tansu) and the data for
    throughput figures (broker timestamps of the output records).
    """

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.count = 0
        self.sources: list[Offset] = []
        self.stamps: list[int] = []
        self.values: list[bytes] = []
        self.keep_values = False
        self.barriers: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Tail:
        self._thread.start()
        return self

    def _run(self) -> None:
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": unique("tail"),
                      "auto.offset.reset": "earliest", "enable.auto.commit": False,
                      "topic.metadata.refresh.interval.ms": 1000})
        try:
            deadline = time.monotonic() + 30
            while True:
                md = c.list_topics(self.topic, timeout=10)
                parts = md.topics[self.topic].partitions
                if parts or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            c.assign([TopicPartition(self.topic, p, 0) for p in parts])
            while not self._stop.is_set():
                for m in c.consume(5000, 0.1):
                    if m.error() or not m.value():
                        continue
                    doc = orjson.loads(m.value())
                    if "barrier" in doc:  # written by barrier(), not by the worker
                        self.barriers.append(doc["barrier"])
                        continue
                    src = doc.get("source") or {}
                    self.sources.append((src.get("partition"), src.get("offset")))
                    self.stamps.append(m.timestamp()[1])
                    if self.keep_values:
                        self.values.append(m.value())
                    self.count += 1
        finally:
            c.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def wait(self, at_least: int, timeout: float, alive: Callable[[], None] | None = None) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count >= at_least:
                return self.count
            if alive is not None:
                alive()
            time.sleep(0.02)
        raise AssertionError(f"{self.topic}: {self.count} records after {timeout}s, expected >= {at_least}")

    def wait_cover(self, delivered: set[Offset], timeout: float, group: str | None = None,
                   events_topic: str | None = None, barrier: bool = True) -> set[Offset]:
        """Wait until every delivered offset has an output, then until nothing more can come:
        the worker's consumer ``group`` (when given) has committed every delivered offset of
        ``events_topic`` (outputs are acknowledged before a commit), and this tail has read
        everything before a barrier record written to each partition after that.
        Polled with deadlines, no fixed settling time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if delivered <= set(self.sources):
                break
            time.sleep(0.2)
        ends: dict[int, int] = {}
        for p, o in delivered:
            ends[p] = max(ends.get(p, 0), o + 1)
        if group is not None and events_topic is not None:  # else: the barrier alone
            wait_for(lambda: committed(self.bootstrap, group, events_topic, ends) == ends, timeout,
                     f"group {group} to commit every delivered offset of {events_topic}",
                     interval=0.5)
        if barrier:  # not on topics whose exact contents a test checks (the barrier is a record)
            self.barrier(timeout)
        return set(self.sources)

    def barrier(self, timeout: float) -> None:
        """Write a barrier record to every partition of the topic and wait until this tail
        read them all: every record written before them has been read (per-partition order)."""
        token = unique("barrier")
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": unique("meta")})
        try:
            parts = list(c.list_topics(self.topic, timeout=10).topics[self.topic].partitions)
        finally:
            c.close()
        p = producer(self.bootstrap)
        for part in parts:
            p.produce(self.topic, value=orjson.dumps({"barrier": token}), partition=part)
        assert p.flush(30) == 0
        wait_for(lambda: self.barriers.count(token) >= len(parts), timeout,
                 f"the tail of {self.topic} to read its barrier records", interval=0.05)


def committed(bootstrap: str, group: str, topic: str, ends: dict[int, int]) -> dict[int, int]:
    """The committed offsets of ``group`` on the partitions of ``ends`` (-1: none)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, p) for p in ends], timeout=10)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


def read_raw_keyed(bootstrap: str, topic: str, idle: float = 1.0) -> list[tuple[str, int, bytes]]:
    """(key, partition, value) of every record of ``topic``, in offset order per partition."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("reader"),
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        md = c.list_topics(topic, timeout=10)
        c.assign([TopicPartition(topic, p, 0) for p in md.topics[topic].partitions])
        out: list[tuple[str, int, bytes]] = []
        last = time.monotonic()
        while time.monotonic() - last < idle:
            got = [m for m in c.consume(5000, 0.2) if not m.error()]
            if got:
                last = time.monotonic()
            out.extend(((m.key() or b"").decode("utf-8", "replace"), m.partition(), m.value())
                       for m in got)
        return out
    finally:
        c.close()


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The consumer group's committed offsets of ``topic`` (partition -> next offset)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        md = c.list_topics(topic, timeout=10)
        tps = [TopicPartition(topic, p) for p in md.topics[topic].partitions]
        return {tp.partition: tp.offset for tp in c.committed(tps, timeout=10) if tp.offset >= 0}
    finally:
        c.close()


def check_ledger(delivered: set[Offset], outputs: Iterable[Offset],
                 replayable: Callable[[Offset], bool] = lambda o: False) -> dict[str, int]:
    """The ledger over a run: every delivered input offset has exactly one output (a scored
    record or a dead letter), no output names an offset never delivered, and an offset has
    several only when ``replayable`` says it was in an uncommitted window (a kill's).

    Returns the figures; raises AssertionError naming the first offenders.
    """
    counts: dict[Offset, int] = {}
    for o in outputs:
        counts[o] = counts.get(o, 0) + 1
    missing = delivered - counts.keys()
    unexpected = counts.keys() - delivered
    duplicated = {o: n for o, n in counts.items() if n > 1}
    outside = sorted(o for o in duplicated if not replayable(o))
    figures = {"inputs": len(delivered), "outputs": sum(counts.values()), "missing": len(missing),
               "unexpected": len(unexpected), "duplicated_offsets": len(duplicated),
               "duplicates": sum(duplicated.values()) - len(duplicated),
               "duplicated_outside_window": len(outside)}
    assert not missing, f"ledger: {len(missing)} input offsets without an output, e.g. {sorted(missing)[:5]}"
    assert not unexpected, f"ledger: outputs name offsets never delivered, e.g. {sorted(unexpected)[:5]}"
    assert not outside, f"ledger: {len(outside)} offsets duplicated outside the uncommitted window, " \
        f"e.g. {outside[:5]}"
    return figures
