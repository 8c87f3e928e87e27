"""Event-time parsing against an independent oracle.

The oracle converts calendar fields to Unix seconds with integer arithmetic (Howard
Hinnant's days-from-civil algorithm and its own leap-year rule), never through
``datetime``, so a bug in how the codec uses ``datetime`` (an offset ignored, a fraction
dropped, local time assumed) cannot be hidden by the same bug in the test. Times go in
through :func:`decode_record`, the worker's entry point.
"""

from __future__ import annotations

import math
from fractions import Fraction

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.codec import MAX_UNIX_SECONDS, DeadLetter, Event, decode_record


def is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def days_in_month(year: int, month: int) -> int:
    return [31, 29 if is_leap(year) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]


def days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (Hinnant, chrono-compatible)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def oracle(y: int, mo: int, d: int, h: int, mi: int, s: int, frac: str, offset_min: int) -> Fraction:
    """Unix seconds of the local time y-mo-d h:mi:s.frac at UTC``offset_min``."""
    local = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + s
    return local - Fraction(offset_min * 60) + (Fraction(int(frac), 10 ** len(frac)) if frac else 0)


def ts_of(ts: object, extra: dict | None = None) -> Event | DeadLetter:
    doc = {"stream": "s", "ts": ts, "value": 1.0, **(extra or {})}
    items = decode_record(b"s", orjson.dumps(doc), 0, "events", 0, 0, 10_000, 10)
    assert len(items) == 1
    return items[0]


def assert_time(item: Event | DeadLetter, expected: Fraction | float) -> None:
    assert isinstance(item, Event), f"dead-lettered: {item}"
    # datetime keeps microseconds; a float near 1e11 keeps ~15 digits.
    assert math.isclose(item.ts, float(expected), rel_tol=1e-15, abs_tol=1e-6), (item.ts, float(expected))


def offset_text(minutes: int, zulu: bool) -> str:
    if zulu:
        return "Z"
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@st.composite
def rfc3339(draw):
    # Years whose every offset keeps the time within [0, MAX_UNIX_SECONDS] (year ~5138).
    y = draw(st.integers(1971, 5000))
    mo = draw(st.integers(1, 12))
    d = draw(st.integers(1, days_in_month(y, mo)))
    h, mi, s = draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59))
    frac = draw(st.text("0123456789", min_size=0, max_size=6))
    zulu = draw(st.booleans())
    off = 0 if zulu else draw(st.integers(-(23 * 60 + 59), 23 * 60 + 59))
    sep = draw(st.sampled_from(["T", " "]))
    text = f"{y:04d}-{mo:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:{s:02d}{'.' + frac if frac else ''}{offset_text(off, zulu)}"
    return text, oracle(y, mo, d, h, mi, s, frac, off)


@settings(max_examples=400, deadline=None)
@given(rfc3339())
def test_rfc3339_times_match_the_oracle(case):
    text, expected = case
    assert_time(ts_of(text), expected)
    assert_time(ts_of(text, {"tags": {"k": "v"}}), expected)  # the same through every field path


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-26T10:00:00+02:00", 1795687200 - 7200),
    ("2026-11-26T10:00:00-05:30", 1795687200 + 5 * 3600 + 1800),
    ("2026-11-26T10:00:00+00:00", 1795687200),
    ("2026-11-26T10:00:00Z", 1795687200),
    ("2026-11-27T01:30:00+14:00", 1795687200 + 3600 + 1800),  # a day ahead in the calendar
])
def test_rfc3339_offset_is_applied(text, expected):
    """``+02:00`` is two hours ahead of UTC: 10:00+02:00 is 08:00Z, never 10:00Z."""
    assert_time(ts_of(text), expected)


@pytest.mark.parametrize(("text", "fraction"), [
    ("2026-11-26T10:00:00.5Z", Fraction(1, 2)),
    ("2026-11-26T10:00:00.250Z", Fraction(1, 4)),
    ("2026-11-26T10:00:00.000001Z", Fraction(1, 10**6)),
    ("2026-11-26T10:00:00.999999+01:00", Fraction(999999, 10**6) - 3600),
])
def test_fractional_seconds_are_kept(text, fraction):
    assert_time(ts_of(text), 1795687200 + fraction)


@pytest.mark.parametrize(("date", "valid"), [
    ("2024-02-29", True), ("2000-02-29", True), ("2400-02-29", True),
    ("2023-02-29", False), ("2100-02-29", False), ("2026-02-30", False), ("2026-04-31", False),
])
def test_leap_days(date, valid):
    item = ts_of(f"{date}T12:00:00Z")
    if valid:
        y, m, d = (int(p) for p in date.split("-"))
        assert_time(item, oracle(y, m, d, 12, 0, 0, "", 0))
    else:
        assert isinstance(item, DeadLetter) and item.reason == "bad_ts"
        assert "RFC 3339" in item.message


@pytest.mark.parametrize("value", [0, 0.0, 1, 1_764_151_200, 1_764_151_200.123, MAX_UNIX_SECONDS])
def test_unix_seconds_in_range_are_taken_as_is(value):
    assert_time(ts_of(value), value)
    assert_time(ts_of(value, {"tags": {"k": "v"}}), value)


@pytest.mark.parametrize(("value", "needle"), [
    (-1, "non-negative"), (-0.001, "non-negative"),
    (MAX_UNIX_SECONDS + 1, "milliseconds"), (1_764_151_200_000, "milliseconds"),
    (True, "boolean"), ("1764151200", "RFC 3339"), ("yesterday", "RFC 3339"),
    ("2026-11-26T23:59:60Z", "RFC 3339"), ([1], "type"),
])
def test_times_out_of_range_are_dead_lettered_with_a_reason(value, needle):
    for extra in (None, {"tags": {"k": "v"}}):
        item = ts_of(value, extra)
        assert isinstance(item, DeadLetter) and item.reason == "bad_ts", item
        assert needle in item.message


@settings(max_examples=300, deadline=None)
@given(st.floats(0, MAX_UNIX_SECONDS, allow_nan=False))
def test_unix_seconds_range_property(value):
    assert ts_of(value).ts == value
    assert ts_of(value, {"tags": {"k": "v"}}).ts == value


@settings(max_examples=200, deadline=None)
# (JSON has no infinities or NaN: orjson writes them as null, which means "no ts".)
@given(st.floats(MAX_UNIX_SECONDS, 1e300, exclude_min=True)
       | st.floats(max_value=-1e-9, allow_infinity=False))
def test_beyond_the_unix_seconds_range_is_dead_lettered(value):
    item = ts_of(value)
    assert isinstance(item, DeadLetter) and item.reason == "bad_ts"


def test_a_time_without_offset_is_read_as_utc(monkeypatch):
    """RFC 3339 requires an offset; a bare time is taken as UTC, not in the worker's own zone
    (the test runs in UTC+05:30 to tell the two apart)."""
    import time

    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        assert_time(ts_of("2026-11-26T10:00:00"), 1795687200)
        assert_time(ts_of("2026-11-26 10:00:00.5"), 1795687200.5)
    finally:
        monkeypatch.undo()
        time.tzset()
