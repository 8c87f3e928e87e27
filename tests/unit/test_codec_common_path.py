"""The common-shape fast path decodes exactly as the full validation path does."""

from __future__ import annotations

import math

import orjson
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from streams.codec import MAX_UNIX_SECONDS, Source, _common_event, _event

numbers = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -0.0, 1e308, MAX_UNIX_SECONDS, MAX_UNIX_SECONDS + 1, -1, 5e-324]),
)
anything = st.one_of(numbers, st.none(), st.booleans(), st.text(max_size=5),
                     st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
streams = st.one_of(st.text(max_size=300), st.sampled_from(["s1", "é", "a" * 256, "a" * 257, ""]), anything)
docs = st.fixed_dictionaries(
    {}, optional={"stream": streams, "value": st.one_of(numbers, anything), "ts": st.one_of(numbers, anything),
                  "tags": anything, "values": anything, "x": anything},
)
keys = st.one_of(st.none(), st.binary(max_size=8), st.sampled_from([b"s1", "é".encode(), b"\xff", b""]))


def full_path(doc: dict, key: bytes | None, ts_ms: int | None) -> object:
    try:
        key_text = key.decode("utf-8") if key else None
    except UnicodeDecodeError:
        key_text = None
    try:
        return _event(doc, key_text, (ts_ms or 0) / 1000.0, Source("events", 3, 42))
    except Exception as exc:  # _Invalid: the fast path must have declined
        return type(exc).__name__


@settings(max_examples=500, deadline=None)
@given(docs, keys, st.one_of(st.none(), st.integers(min_value=0, max_value=2**41)))
def test_fast_path_equals_full_path_whenever_it_answers(doc, key, ts_ms):
    try:
        doc = orjson.loads(orjson.dumps(doc))  # only what JSON can carry
    except TypeError:  # integers beyond 64 bits: orjson rejects them before decoding
        assume(False)
    fast = _common_event(doc, key, ts_ms, "events", 3, 42)
    if fast is None:
        return
    assert fast == full_path(doc, key, ts_ms)


def test_fast_path_takes_the_common_shapes():
    for doc in ({"stream": "s1", "value": 1.5, "ts": 1_764_151_200.0},
                {"stream": "s1", "value": 2}, {"value": -3, "ts": 5, "stream": "x"}):
        assert _common_event(doc, b"s1", 1_000, "events", 0, 1) is not None
    ev = _common_event({"stream": "s1", "value": 2}, b"other", 1_500, "events", 0, 1)
    assert ev is not None and ev.forward and ev.ts == 1.5 and ev.features == {"value": 2.0}


def test_fast_path_declines_what_needs_a_reason_or_more_fields():
    for doc in ({"stream": "s1", "value": True}, {"stream": "s1", "value": 1, "ts": None},
                {"stream": "s1", "value": 1, "ts": MAX_UNIX_SECONDS * 2},
                {"stream": "s1", "value": 1, "ts": "2026-11-26T10:00:00Z"},
                {"stream": "s1", "value": 1, "tags": {"a": "b"}}, {"stream": "", "value": 1},
                {"stream": "s1", "value": math.inf}):
        assert _common_event(doc, b"s1", 1_000, "events", 0, 1) is None
