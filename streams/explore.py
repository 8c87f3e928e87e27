"""The stream explorer's reader: one stream's scored records and incidents, straight from Kafka.

A stream's records are keyed by its id, so they sit in one partition of the scores topic
and one of the alerts topic (the Java murmur2 partitioner that Faust and aiokafka use).
:class:`StreamReader` finds that partition, seeks to the window by event time and reads to
its end, so any worker, or a standalone ``pynomaly explore``, can serve any stream.

Seeking: record timestamps are produce (wall-clock) times while windows are in event time
(``ts``). ``offsets_for_times`` gives a safe lower bound (nothing produced before a time
can carry a later event time); a binary search on the ``ts`` of probed records then finds
the window's first and last offsets. Events within a partition arrive roughly in event-time
order; ``SLACK_S`` absorbs the disorder. Reads are bounded: at most ``MAX_SCAN`` records
per request, and a series longer than ``limit`` points is thinned (every anomaly kept),
with ``capped`` and ``stride`` saying so.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import murmur2

from streams.kafka_auth import aiokafka_auth_kwargs
from streams.settings import Settings

SLACK_S = 600.0  # event-time disorder allowed within a partition
INCIDENT_LOOKBACK_S = 7 * 86400.0  # incidents opened this long before the window still show
MAX_SCAN = 3_000_000  # records read per request, all streams of the partition together
PROBE_LIMIT = 64  # binary-search probes per seek


def partition_for(key: bytes, partitions: int) -> int:
    """The partition aiokafka's DefaultPartitioner (Java murmur2) picks for ``key``.

    >>> partition_for(b"host-1.cpu", 8) == partition_for(b"host-1.cpu", 8)
    True
    """
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def _doc(value: bytes | None) -> dict[str, Any] | None:
    """A record's JSON object, or None (a stray record must not break a read)."""
    try:
        doc = orjson.loads(value or b"null")
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def _ts(value: bytes | None) -> float | None:
    doc = _doc(value)
    ts = doc.get("ts") if doc is not None else None
    return float(ts) if isinstance(ts, int | float) and not isinstance(ts, bool) else None


@dataclasses.dataclass
class Series:
    """Columnar points of one stream (one list per field; ``None`` where absent)."""

    stream: str
    ts: list[float] = dataclasses.field(default_factory=list)
    features: dict[str, dict[str, list[float | None]]] = dataclasses.field(default_factory=dict)
    score: list[float | None] = dataclasses.field(default_factory=list)
    threshold: list[float | None] = dataclasses.field(default_factory=list)
    anomaly: list[bool] = dataclasses.field(default_factory=list)
    detectors: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    matched: int = 0  # records of this stream in the window, before thinning
    stride: int = 1
    scanned: int = 0
    scan_capped: bool = False

    def add(self, doc: dict[str, Any], limit: int) -> None:
        # Per record of up to millions: plain dict and list operations, few calls.
        self.matched += 1
        get = doc.get
        last = self.detectors[-1] if self.detectors else None
        if last is not None and last["detector"] == (get("detector") or "unknown"):
            last["to"] = doc["ts"]
            last["records"] += 1
        else:
            self._note_detector(doc)
        anomalous = get("is_anomaly") is True
        if not anomalous and self.stride > 1 and self.matched % self.stride:
            return
        raw_values, expected = get("values"), get("expected")
        cols = self.features.get("value") if raw_values is None and len(self.features) == 1 else None
        if cols is not None:  # the common case: a univariate stream
            cols["value"].append(_num(get("value")))
            band = expected if type(expected) is dict else {}
            cols["low"].append(_num(band.get("low")))
            cols["high"].append(_num(band.get("high")))
        else:
            self._add_features(doc, raw_values, expected)
        self.ts.append(float(doc["ts"]))
        self.score.append(_num(get("score")))
        self.threshold.append(_num(get("threshold")))
        self.anomaly.append(anomalous)
        if len(self.ts) > limit:
            self._thin()

    def _add_features(self, doc: dict[str, Any], raw_values: Any, raw_expected: Any) -> None:
        n = len(self.ts)
        values: dict[str, Any] = raw_values if isinstance(raw_values, dict) else {"value": doc.get("value")}
        expected: dict[str, Any] = raw_expected if isinstance(raw_expected, dict) else {}
        bands: dict[str, Any] = expected if isinstance(raw_values, dict) else {"value": expected}
        for name in values.keys() | self.features.keys():
            cols = self.features.get(name)
            if cols is None:  # a feature that appears late: pad its past with None
                cols = self.features[name] = {k: [None] * n for k in ("value", "low", "high")}
            band: dict[str, Any] = bands[name] if isinstance(bands.get(name), dict) else {}
            cols["value"].append(_num(values.get(name)))
            cols["low"].append(_num(band.get("low")))
            cols["high"].append(_num(band.get("high")))

    def _thin(self) -> None:
        """Keep every other point (and every anomaly); later points are taken at the new stride."""
        keep = [i for i in range(len(self.ts)) if i % 2 == 0 or self.anomaly[i]]
        for name in ("ts", "score", "threshold", "anomaly"):
            col = getattr(self, name)
            setattr(self, name, [col[i] for i in keep])
        for cols in self.features.values():
            for k, col in cols.items():
                cols[k] = [col[i] for i in keep]
        self.stride *= 2

    def _note_detector(self, doc: dict[str, Any]) -> None:
        name, ts = doc.get("detector") or "unknown", doc["ts"]
        last = self.detectors[-1] if self.detectors else None
        if last is None or last["detector"] != name:
            self.detectors.append({"detector": name, "version": doc.get("version"), "from": ts, "to": ts,
                                   "records": 0})
            last = self.detectors[-1]
        last["to"], last["version"] = ts, doc.get("version")
        last["records"] += 1

    def as_json(self, window: tuple[float, float], partition: int | None) -> dict[str, Any]:
        anomalies = sum(self.anomaly)
        in_force = self.detectors[-1] if self.detectors else None
        note = ""
        if partition is None:
            note = "the scores topic does not exist yet"
        elif not self.matched:
            note = (f"no scored records of stream {self.stream!r} in this window (partition {partition}); "
                    "check the id (search by prefix) or widen the window")
        elif self.stride > 1:
            note = (f"{self.matched} points in the window: showing every {self.stride}th "
                    "(every anomaly kept); narrow the window for all of them")
        return {
            "stream": self.stream, "from": window[0], "to": window[1], "partition": partition,
            "ts": self.ts, "features": self.features, "score": self.score,
            "threshold": self.threshold, "anomaly": self.anomaly,
            "points": len(self.ts), "matched": self.matched, "anomalies": anomalies,
            "capped": self.stride > 1 or self.scan_capped, "stride": self.stride,
            "scan_capped": self.scan_capped, "scanned": self.scanned,
            "detectors": self.detectors, "detector": in_force, "empty": not self.matched, "note": note,
        }


def _num(v: Any) -> float | None:
    kind = type(v)
    return v if kind is float else float(v) if kind is int else None  # not bool, not text


class StreamReader:
    """Reads one stream's window from the scores and alerts topics (a consumer per request)."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings, self.clock = settings, clock

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 << 20, fetch_max_bytes=16 << 20,
                                fetch_max_wait_ms=100,
                                client_id="pynomaly-explore", **aiokafka_auth_kwargs(self.settings))

    async def series(self, stream: str, start: float, end: float, limit: int) -> dict[str, Any]:
        out = Series(stream)
        key = stream.encode()
        consumer = self._consumer()
        try:
            await consumer.start()
            tp = await _partition(consumer, self.settings.topic_scores, key)
            if tp is not None:
                first, stop, hint = await _window(consumer, tp, start - SLACK_S, end + SLACK_S, self.clock)
                async for value in _read(consumer, tp, key, first, stop, out, end + SLACK_S, hint):
                    doc = _doc(value)
                    ts = doc.get("ts") if doc is not None else None
                    if doc is not None and isinstance(ts, int | float) and start <= ts <= end:
                        out.add(doc, limit)
        finally:
            await consumer.stop()
        return out.as_json((start, end), tp.partition if tp is not None else None)

    async def incidents(self, stream: str, start: float, end: float) -> dict[str, Any]:
        """Incidents of ``stream`` that overlap the window, each with its transitions and feedback."""
        key = stream.encode()
        by_id: dict[str, dict[str, Any]] = {}
        consumer = self._consumer()
        scan = Series(stream)
        try:
            await consumer.start()
            tp = await _partition(consumer, self.settings.topic_alerts, key)
            if tp is not None:
                first, stop, hint = await _window(consumer, tp, start - INCIDENT_LOOKBACK_S, end + SLACK_S,
                                            self.clock)
                async for value in _read(consumer, tp, key, first, stop, scan, end + SLACK_S, hint):
                    rec = _doc(value)
                    if rec is not None and rec.get("type") == "incident" and rec.get("incident_id"):
                        _fold(by_id, rec)
        finally:
            await consumer.stop()
        shown = [inc for inc in by_id.values()
                 if inc["opened_at"] is not None and inc["opened_at"] <= end
                 and (inc["resolved_at"] is None or inc["resolved_at"] >= start)]
        shown.sort(key=lambda inc: inc["opened_at"])
        return {"stream": stream, "from": start, "to": end, "incidents": shown,
                "scan_capped": scan.scan_capped}

    async def streams(self, prefix: str, limit: int, tail: int = 5000) -> dict[str, Any]:
        """Streams whose id starts with ``prefix`` among the last ``tail`` scored records of
        each partition (the streams that scored recently), with their last event time."""
        found: dict[str, dict[str, Any]] = {}
        consumer = self._consumer()
        try:
            await consumer.start()
            topic = self.settings.topic_scores
            parts = await _partitions(consumer, topic)
            tps = [TopicPartition(topic, p) for p in parts]
            if tps:
                consumer.assign(tps)
                ends = await consumer.end_offsets(tps)
                begins = await consumer.beginning_offsets(tps)
                want = prefix.encode()
                for tp in tps:
                    first = max(begins[tp], ends[tp] - tail)
                    async for value in _read(consumer, tp, None, first, None, Series(prefix),
                                             check_from=ends[tp]):
                        doc = _doc(value)
                        name = doc.get("stream") if doc is not None else None
                        if doc is not None and isinstance(name, str) and name.encode().startswith(want):
                            entry = found.setdefault(name, {"stream": name, "last_ts": None,
                                                            "partition": tp.partition})
                            entry["last_ts"] = doc.get("ts")
        finally:
            await consumer.stop()
        names = sorted(found)
        return {"prefix": prefix, "streams": [found[n] for n in names[:limit]],
                "truncated": len(names) > limit, "recent_records_per_partition": tail}


def _fold(by_id: dict[str, dict[str, Any]], rec: dict[str, Any]) -> None:
    """One alert record into its incident's summary (records arrive in transition order)."""
    inc = by_id.setdefault(rec["incident_id"], {
        "incident_id": rec["incident_id"], "stream": rec.get("stream"), "detector": rec.get("detector"),
        "opened_at": None, "resolved_at": None, "severity": None, "peak_score": None,
        "threshold": None, "suppressed": None, "acknowledged": False, "feedback": [], "transitions": []})
    action = rec.get("action")
    entry = {"action": action, "ts": rec.get("ts")}
    if action == "feedback":
        fb = {k: rec.get(k) for k in ("feedback", "by", "comment", "ts", "strict_steps")}
        inc["feedback"].append(fb)
        entry["feedback"] = rec.get("feedback")
    else:
        for k in ("severity", "peak_score", "threshold", "value", "expected", "score"):
            if rec.get(k) is not None:
                inc[k] = rec[k]
                entry[k] = rec[k]
        if rec.get("opened_at") is not None:
            inc["opened_at"] = rec["opened_at"]
        if action == "opened" and inc["opened_at"] is None:
            inc["opened_at"] = rec.get("ts")
        if action == "opened":
            inc["suppressed"] = rec.get("suppressed")
        if action == "resolved":
            inc["resolved_at"] = rec.get("resolved_at", rec.get("ts"))
            entry["reason"] = rec.get("reason")
        if action == "acknowledged":
            inc["acknowledged"] = True
    inc["transitions"].append(entry)


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[int]:
    await consumer.topics()  # refreshes metadata (partition counts)
    return sorted(consumer.partitions_for_topic(topic) or ())


async def _partition(consumer: AIOKafkaConsumer, topic: str, key: bytes) -> TopicPartition | None:
    parts = await _partitions(consumer, topic)
    if not parts:
        return None
    tp = TopicPartition(topic, partition_for(key, len(parts)))
    consumer.assign([tp])
    return tp


async def _window(consumer: AIOKafkaConsumer, tp: TopicPartition, start: float, end: float,
                  clock: Callable[[], float]) -> tuple[int, int | None, int]:
    """[first, stop) offsets of the records whose event ``ts`` lies in [start, end]; stop is
    None when the window reaches the partition's end: read until caught up. (End offsets
    are a hint only: the dev broker, Tansu, reports the last batch's base offset.) The third
    value is that hint."""
    begin = (await consumer.beginning_offsets([tp]))[tp]
    stop = (await consumer.end_offsets([tp]))[tp]
    lo = begin
    if start > 0 and start < clock():
        hit = (await consumer.offsets_for_times({tp: int(start * 1000)})).get(tp)
        if hit is not None and hit.offset > begin:  # brokers that ignore the time answer 0
            lo = hit.offset
    first = await _first_at_or_after(consumer, tp, lo, stop, start)
    last = await _first_at_or_after(consumer, tp, first, stop, end, after=True)
    return first, (last if last < stop else None), stop


async def _first_at_or_after(consumer: AIOKafkaConsumer, tp: TopicPartition, lo: int, hi: int,
                             ts: float, after: bool = False) -> int:
    """Smallest offset in [lo, hi] whose record's event time is >= ``ts`` (> with ``after``)."""
    for _ in range(PROBE_LIMIT):
        if lo >= hi:
            break
        mid = (lo + hi) // 2
        consumer.seek(tp, mid)
        batch = await consumer.getmany(tp, timeout_ms=2000, max_records=1)
        msgs = batch.get(tp, [])
        if not msgs:  # nothing readable from mid on (compacted or aborted tail)
            hi = mid
            continue
        got = _ts(msgs[0].value)
        if got is not None and (got > ts if after else got >= ts):
            hi = mid
        else:
            lo = max(mid, msgs[0].offset) + 1
    return lo


async def _read(consumer: AIOKafkaConsumer, tp: TopicPartition, key: bytes | None, first: int,
                stop: int | None, out: Series, until_ts: float = math.inf, check_from: int = 0) -> Any:
    """Values of the records in [first, stop) whose key is ``key`` (every record without one).

    With ``stop`` None: until caught up with the partition, or past a record (from offset
    ``check_from`` on) of event time beyond ``until_ts``: a live partition keeps growing.
    """
    if stop is not None and first >= stop:
        return
    consumer.seek(tp, first)
    position = first
    while True:
        # Past the end offset taken at the start, a short wait only checks for a live tail.
        wait = 2000 if position < (stop if stop is not None else check_from) else 300
        batch = await consumer.getmany(tp, timeout_ms=wait, max_records=10_000)
        msgs = batch.get(tp, [])
        if not msgs:
            return  # caught up (or stop was a compacted or aborted offset)
        position = msgs[-1].offset + 1
        for msg in msgs:
            if stop is not None and msg.offset >= stop:
                return
            if stop is None and msg.offset >= check_from and (_ts(msg.value) or -math.inf) > until_ts:
                return
            out.scanned += 1
            if out.scanned > MAX_SCAN:
                out.scan_capped = True
                return
            if (key is None or msg.key == key) and msg.value:
                yield msg.value
