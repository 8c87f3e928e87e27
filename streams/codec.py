"""The event contract: decode and validate input records, encode scored and dead-letter records.

An input record holds one JSON event object or a JSON array of them. Every event either
becomes an :class:`Event` or a :class:`DeadLetter` with a machine-readable reason; nothing
raises and nothing is dropped. See docs/events.md.
"""

from __future__ import annotations

import base64
import dataclasses
import math
from datetime import UTC, datetime
from typing import Any

import orjson

from detectors.protocol import Verdict

# Machine-readable dead-letter reasons (also the values of the dead-letter metric label).
REASONS = {
    "oversized": "the record's key and value are larger than max_record_bytes",
    "empty": "the record has no value (null or empty)",
    "not_json": "the value is not valid UTF-8 JSON",
    "not_object": "the value is not a JSON object or an array of objects",
    "too_many_events": "the array holds more events than max_events_per_record",
    "missing_stream": "the event has no 'stream' field",
    "bad_stream": "'stream' is not a non-empty string of at most 256 characters",
    "missing_value": "neither 'value' nor 'values' is present",
    "bad_value": "'value'/'values' is not a finite number (or an object of them)",
    "bad_ts": "'ts' is neither an RFC 3339 string nor Unix seconds",
    "ts_out_of_range": "the event time is further ahead of the clock than max_event_future_s "
                       "(or behind it than max_event_age_s)",
    "bad_tags": "'tags' is not an object of string values",
    "bad_origin": "'_origin' is not a valid forwarding marker",
    "output_too_large": "the scored or forwarded record would exceed the producer's max request size",
    "detector_failed": "the stream's detector failed on the event, even freshly started",
    "too_many_features": "the event brings new feature names past max_features_per_stream",
}

MAX_STREAM_LEN = 256
MAX_FEATURES = 1000
# Unix seconds beyond this are almost surely milliseconds (year 5138).
MAX_UNIX_SECONDS = 1e11
# (earliest, latest) event time accepted, Unix seconds: the worker derives it from its
# clock per batch (settings max_event_age_s, max_event_future_s).
TsRange = tuple[float, float]
ANY_TS: TsRange = (0.0, MAX_UNIX_SECONDS)


@dataclasses.dataclass(slots=True)
class Source:
    topic: str
    partition: int
    offset: int
    index: int | None = None  # position within a JSON array record

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"topic": self.topic, "partition": self.partition, "offset": self.offset}
        if self.index is not None:
            d["index"] = self.index
        return d


@dataclasses.dataclass(slots=True)
class Event:
    stream: str
    ts: float  # Unix seconds (event time)
    features: dict[str, float]
    multivariate: bool
    tags: dict[str, str] | None
    source: Source
    forward: bool = False  # key does not name this stream: re-key it to its owner partition


@dataclasses.dataclass(slots=True)
class DeadLetter:
    reason: str
    message: str
    raw: bytes | None
    key: bytes | None
    source: Source
    # Events of an array record it stands for (one dead letter per rejected record), and
    # their reasons with counts when there are several.
    count: int = 1
    reasons: dict[str, int] | None = None


class _Invalid(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def parse_ts(raw: Any) -> float:
    """RFC 3339 string or Unix seconds -> Unix seconds. Raises _Invalid('bad_ts')."""
    if isinstance(raw, bool):
        raise _Invalid("bad_ts", "'ts' is a boolean; send an RFC 3339 string or Unix seconds")
    if isinstance(raw, int | float):
        ts = float(raw)
        if not math.isfinite(ts) or ts < 0:
            raise _Invalid("bad_ts", f"'ts' {raw!r} is not a non-negative finite Unix time")
        if ts > MAX_UNIX_SECONDS:
            raise _Invalid(
                "bad_ts",
                f"'ts' {raw!r} is out of range for Unix seconds (milliseconds? divide by 1000)",
            )
        return ts
    if isinstance(raw, str):
        text = raw.strip()
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise _Invalid(
                "bad_ts", f"'ts' {raw[:64]!r} is not RFC 3339 (e.g. 2026-11-26T10:00:00Z)"
            ) from None
        if dt.tzinfo is None:  # RFC 3339 requires an offset; read a bare time as UTC.
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    raise _Invalid("bad_ts", f"'ts' has type {type(raw).__name__}; send a string or a number")


def _number(name: str, raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise _Invalid("bad_value", f"{name} is {type(raw).__name__}, expected a number")
    value = float(raw)
    if not math.isfinite(value):
        raise _Invalid("bad_value", f"{name} is not finite")
    return value


def _check_range(ts: float, ts_range: TsRange) -> None:
    lo, hi = ts_range
    if not lo <= ts <= hi:
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        bound = (f"more than max_event_future_s ahead of the worker's clock (latest accepted "
                 f"{datetime.fromtimestamp(hi, UTC).strftime(fmt)})" if ts > hi else
                 f"more than max_event_age_s behind the worker's clock (earliest accepted "
                 f"{datetime.fromtimestamp(lo, UTC).strftime(fmt)})")
        raise _Invalid("ts_out_of_range", f"the event time {ts!r} is {bound}; send Unix seconds "
                       "or RFC 3339 from a synchronised clock")


def _event(
    obj: Any, key: str | None, record_ts: float, source: Source, ts_range: TsRange = ANY_TS
) -> Event:
    if not isinstance(obj, dict):
        raise _Invalid("not_object", f"expected a JSON object, got {type(obj).__name__}")
    stream = obj.get("stream")
    if stream is None:
        raise _Invalid("missing_stream", "the event has no 'stream' field; add the stream id")
    if not isinstance(stream, str) or not stream or len(stream) > MAX_STREAM_LEN:
        raise _Invalid("bad_stream", f"'stream' must be a non-empty string of at most {MAX_STREAM_LEN} characters")
    if "values" in obj:
        values = obj["values"]
        if not isinstance(values, dict) or not values:
            raise _Invalid("bad_value", "'values' must be a non-empty object of numbers")
        if len(values) > MAX_FEATURES:
            raise _Invalid("bad_value", f"'values' has more than {MAX_FEATURES} features")
        features = {str(k): _number(f"values.{k}"[:80], v) for k, v in values.items()}
        multivariate = True
    elif "value" in obj:
        features = {"value": _number("'value'", obj["value"])}
        multivariate = False
    else:
        raise _Invalid("missing_value", "the event has neither 'value' nor 'values'")
    ts_raw = obj.get("ts")
    ts = record_ts if ts_raw is None else parse_ts(ts_raw)
    _check_range(ts, ts_range)
    tags = obj.get("tags")
    if tags is not None:
        if not isinstance(tags, dict) or not all(
            isinstance(v, str) and len(v) <= MAX_STREAM_LEN for v in tags.values()
        ):
            raise _Invalid("bad_tags", "'tags' must be an object whose values are strings")
    origin = obj.get("_origin")
    if origin is not None:
        try:
            source = Source(str(origin["topic"]), int(origin["partition"]), int(origin["offset"]),
                            None if origin.get("index") is None else int(origin["index"]))
        except (TypeError, KeyError, ValueError):
            raise _Invalid("bad_origin", "'_origin' must hold topic, partition and offset") from None
        # Out-of-range integers would make encoding the scored record raise (orjson: 64 bit).
        if not (0 <= source.partition < 2**31 and 0 <= source.offset < 2**63
                and (source.index is None or 0 <= source.index < 2**31)):
            raise _Invalid("bad_origin", "'_origin' partition, offset and index must be non-negative "
                           "integers (32, 64 and 32 bit)")
    return Event(stream, ts, features, multivariate, tags, source, forward=(key != stream))


def _common_event(
    doc: dict[str, Any], key: bytes | None, record_ts_ms: int | None,
    topic: str, partition: int, offset: int, ts_range: TsRange = ANY_TS,
) -> Event | None:
    """The common shape ``{"stream": str, "value": number[, "ts": number]}``, decoded with
    a few type checks; None for anything else, which takes the full path (that path also
    names what is wrong). Must give exactly what :func:`_event` gives (tested)."""
    n = len(doc)
    stream = doc.get("stream")
    value: Any = doc.get("value")
    vt = type(value)
    if type(stream) is not str or (vt is not float and vt is not int) or n > 3:
        return None
    if not stream or len(stream) > MAX_STREAM_LEN:
        return None
    ts_raw = doc.get("ts")
    if ts_raw is None:
        if n != 2:  # a third field that is not "ts", or "ts": null
            return None
        ts = (record_ts_ms or 0) / 1000.0
        if not ts_range[0] <= ts <= ts_range[1]:
            return None
    else:
        tt = type(ts_raw)
        if n != 3 or (tt is not float and tt is not int):
            return None
        ts = float(ts_raw)
        if not ts_range[0] <= ts <= ts_range[1]:  # NaN fails too
            return None
    try:
        v = float(value)
    except OverflowError:
        return None
    if not math.isfinite(v):
        return None
    # Same as the full path's key_text != stream, without decoding the key.
    forward = key is None or key != stream.encode("utf-8")
    return Event(stream, ts, {"value": v}, False, None, Source(topic, partition, offset), forward)


def decode_record(
    key: bytes | None,
    value: bytes | None,
    record_ts_ms: int | None,
    topic: str,
    partition: int,
    offset: int,
    max_bytes: int,
    max_events: int,
    ts_range: TsRange = ANY_TS,
) -> list[Event | DeadLetter]:
    """Decode one input record into events and dead letters; never raises.

    Event times (``ts``, or the record timestamp without one) outside ``ts_range`` are
    dead-lettered as ``ts_out_of_range``."""
    source = Source(topic, partition, offset)
    # The key counts too: it is copied into outputs, and Kafka limits key and value together.
    n_bytes = (len(value) if value is not None else 0) + (len(key) if key is not None else 0)
    if n_bytes > max_bytes:
        return [DeadLetter("oversized", f"record key and value are {n_bytes} bytes (key {len(key or b'')}), "
                           f"larger than max_record_bytes={max_bytes}; send smaller records and keys",
                           value, key, source)]
    if not value:
        return [DeadLetter("empty", "record value is empty or null; send a JSON event", value, key, source)]
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return [DeadLetter("not_json", f"value is not valid JSON: {exc}"[:300], value, key, source)]
    if type(doc) is dict:
        common = _common_event(doc, key, record_ts_ms, topic, partition, offset, ts_range)
        if common is not None:
            return [common]
    try:
        key_text = key.decode("utf-8") if key else None
    except UnicodeDecodeError:
        key_text = None  # an undecodable key cannot name a stream; the body may still
    record_ts = (record_ts_ms or 0) / 1000.0
    if isinstance(doc, list):
        if not doc:
            return [DeadLetter("empty", "the array holds no events", value, key, source)]
        if len(doc) > max_events:
            return [DeadLetter("too_many_events", f"the array holds {len(doc)} events, more than max_events_per_record={max_events}",
                               value, key, source)]
        if not any(isinstance(item, dict) for item in doc):
            return [DeadLetter("not_object", "the array holds no event objects", value, key, source)]
        out: list[Event | DeadLetter] = []
        # One dead letter per record, however many of its events are rejected: a dead
        # letter per element turned a 26 KB array into 94 MB of dead letters.
        rejected: DeadLetter | None = None
        for i, item in enumerate(doc):
            try:
                out.append(_event(item, key_text, record_ts, Source(topic, partition, offset, i), ts_range))
            except _Invalid as inv:
                if rejected is None:
                    rejected = DeadLetter(inv.reason, inv.message, value, key,
                                          Source(topic, partition, offset, i), 0, {})
                    out.append(rejected)
                rejected.count += 1
                assert rejected.reasons is not None
                rejected.reasons[inv.reason] = rejected.reasons.get(inv.reason, 0) + 1
        if rejected is not None and rejected.count > 1:
            rejected.message = (f"{rejected.count} of {len(doc)} events rejected; the first, at index "
                                f"{rejected.source.index}: {rejected.message}")
        return out
    try:
        return [_event(doc, key_text, record_ts, source, ts_range)]
    except _Invalid as inv:
        return [DeadLetter(inv.reason, inv.message, value, key, source)]


def encode_forward(event: Event) -> bytes:
    """Re-keyed copy of an event for its owner partition; keeps its original source."""
    doc: dict[str, Any] = {"stream": event.stream, "ts": event.ts, "_origin": event.source.as_dict()}
    if event.multivariate:
        doc["values"] = event.features
    else:
        doc["value"] = event.features["value"]
    if event.tags:
        doc["tags"] = event.tags
    return orjson.dumps(doc)


def scored_dict(event: Event, verdict: Verdict) -> dict[str, Any]:
    doc: dict[str, Any] = {"stream": event.stream, "ts": event.ts}
    if event.multivariate:
        doc["values"] = event.features
    else:
        doc["value"] = event.features["value"]
    if event.tags:
        doc["tags"] = event.tags
    doc["score"] = verdict.score
    doc["threshold"] = verdict.threshold
    doc["is_anomaly"] = verdict.is_anomaly
    doc["severity"] = verdict.severity
    doc["warming_up"] = verdict.warming_up
    doc["anomaly_state"] = verdict.anomaly_state
    doc["raw_score"] = verdict.raw_score
    doc["detector"] = verdict.detector
    doc["version"] = verdict.version
    expected = verdict.expected
    if expected:
        if event.multivariate:
            doc["expected"] = {k: {"low": lo, "high": hi} for k, (lo, hi) in expected.items()}
        elif "value" in expected:
            lo, hi = expected["value"]
            doc["expected"] = {"low": lo, "high": hi}
    if verdict.contributions:
        doc["contributions"] = verdict.contributions
    doc["source"] = event.source.as_dict()
    return doc


def encode_scored(event: Event, verdict: Verdict) -> bytes:
    return orjson.dumps(scored_dict(event, verdict))


# A dead letter keeps at most these prefixes of the raw value, the key and the message:
# ~90 KB in all (base64), far under any producer request size the settings allow.
MAX_DEADLETTER_RAW = 64 * 1024
MAX_DEADLETTER_KEY = 1024
MAX_DEADLETTER_MESSAGE = 1000
# Every dead letter fits in this many bytes (key of the record included); settings keep
# the producer's max request size above it.
MAX_DEADLETTER_BYTES = 4 * (MAX_DEADLETTER_RAW + MAX_DEADLETTER_KEY) // 3 + 8 * MAX_DEADLETTER_MESSAGE + 4096


def deadletter_key(dl: DeadLetter) -> bytes | None:
    """The Kafka key of a dead-letter record: the input key, cut to a bounded prefix."""
    return None if dl.key is None else dl.key[:MAX_DEADLETTER_KEY]


def encode_deadletter(dl: DeadLetter) -> bytes:
    raw, key = dl.raw, dl.key
    doc: dict[str, Any] = {
        "reason": dl.reason,
        "message": dl.message[:MAX_DEADLETTER_MESSAGE],
        "raw_b64": base64.b64encode(raw[:MAX_DEADLETTER_RAW]).decode("ascii") if raw is not None else None,
        "raw_bytes": len(raw) if raw is not None else 0,
        "raw_truncated": raw is not None and len(raw) > MAX_DEADLETTER_RAW,
        "key_b64": base64.b64encode(key[:MAX_DEADLETTER_KEY]).decode("ascii") if key is not None else None,
        "key_bytes": len(key) if key is not None else 0,
        "key_truncated": key is not None and len(key) > MAX_DEADLETTER_KEY,
        "source": dl.source.as_dict(),
    }
    if dl.reasons is not None:  # an array record: how many of its events, and why
        doc["events"] = dl.count
        doc["reasons"] = dl.reasons
    return orjson.dumps(doc)
