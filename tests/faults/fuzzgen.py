"""Hostile input records: random bytes, broken JSON, absurd numbers, deep nesting, wrong types.

``records(rng, n)`` yields ``(key, value)`` pairs; roughly a fifth are valid events so the
scoring path is exercised next to the dead-letter path.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator

import orjson

Record = tuple[bytes | None, bytes | None]

WRONG = [None, True, False, 0, -1, 1.5, "", "x", [], [1, 2], {}, {"a": 1}, "NaN", 1e300, -1e300]
NUMBER_TEXT = [b"1e400", b"-1e999", b"NaN", b"Infinity", b"-Infinity", b"1" * 400,
               b"0x10", b"1_000", b"+1", b".5", b"1e-400", b"-0", b"9" * 20]
TS_TEXT = [b'"last tuesday"', b"1764151200000", b'"2026-13-45T99:00:00Z"', b"-5", b"true",
           b'"2026-11-26T10:00:00Z"', b"1764151200", b'"\\u0000"', b"1e300"]


def _stream(rng: random.Random) -> str:
    return f"fz-{rng.randrange(40)}"


def valid(rng: random.Random) -> Record:
    s = _stream(rng)
    if rng.random() < 0.5:
        doc = {"stream": s, "ts": 1_790_000_000 + rng.randrange(10**6), "value": rng.gauss(0, 1)}
    else:
        doc = {"stream": s, "values": {"a": rng.random(), "b": rng.random()}, "tags": {"r": "eu"}}
    return s.encode(), orjson.dumps(doc)


def random_bytes(rng: random.Random) -> Record:
    n = rng.choice([0, 1, 2, 7, 64, 300])
    return rng.randbytes(rng.randrange(20)) if rng.random() < 0.5 else None, rng.randbytes(n)


def invalid_utf8(rng: random.Random) -> Record:
    junk = rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"])
    s = _stream(rng).encode()
    return s, b'{"stream": "' + s + junk + b'", "value": 1.0}'


def number_text(rng: random.Random) -> Record:
    s = _stream(rng).encode()
    field = rng.choice([b"value", b"ts"])
    text = rng.choice(NUMBER_TEXT if field == b"value" else TS_TEXT)
    other = b'"value": 1.0, ' if field == b"ts" else b""
    return s, b'{"stream": "' + s + b'", ' + other + b'"' + field + b'": ' + text + b"}"


def deep(rng: random.Random) -> Record:
    depth = rng.choice([3, 100, 1023, 1024, 1025, 5000, 50_000])
    inner = rng.choice([b"[", b'{"a":'])
    close = b"]" if inner == b"[" else b"}"
    s = _stream(rng).encode()
    body = b'{"stream": "' + s + b'", "value": 1, "tags": ' + inner * depth + b"1" + close * depth + b"}"
    return s, body


def wrong_types(rng: random.Random) -> Record:
    s = _stream(rng)
    doc = {"stream": s, "value": 1.0, "ts": 1_790_000_000}
    field = rng.choice(["stream", "value", "values", "ts", "tags", "_origin"])
    doc[field] = rng.choice(WRONG)
    if rng.random() < 0.3:
        doc.pop(rng.choice(list(doc)), None)
    return s.encode(), orjson.dumps(doc)


def huge_string(rng: random.Random) -> Record:
    # around the 1 MB record limit: some just under (valid JSON, bad field), some over
    n = rng.choice([900_000, 999_900, 1_000_100, 1_200_000])
    s = _stream(rng).encode()
    where = rng.choice([b"stream", b"tag"])
    if where == b"stream":
        body = b'{"stream": "' + b"s" * n + b'", "value": 1}'
    else:
        body = b'{"stream": "' + s + b'", "value": 1, "tags": {"t": "' + b"x" * n + b'"}}'
    return s, body


def arrays(rng: random.Random) -> Record:
    items = []
    for _ in range(rng.randrange(0, 6)):
        r = rng.random()
        if r < 0.4:
            items.append({"stream": _stream(rng), "value": rng.random()})
        elif r < 0.7:
            items.append(rng.choice(WRONG))
        else:
            items.append({"stream": rng.choice(WRONG), "value": rng.choice(WRONG)})
    return _stream(rng).encode(), orjson.dumps(items)


def origin(rng: random.Random) -> Record:
    """A forged re-keying marker; huge integers once crashed the encoder (a poison pill)."""
    s = _stream(rng)
    ints = [0, 1, -1, 2**31, 2**63, 2**64, 1e300, -1e300, 1.5, "7", "9" * 30, None, True]
    marker = {"topic": rng.choice(["t", 5, None, "x" * 300]), "partition": rng.choice(ints),
              "offset": rng.choice(ints)}
    if rng.random() < 0.5:
        marker["index"] = rng.choice(ints)
    doc = {"stream": s, "value": 1.0, "_origin": marker}
    return s.encode(), json.dumps(doc).encode()  # json: orjson cannot write 2**64


def mutate(rng: random.Random) -> Record:
    """A valid record with a few bytes flipped, dropped or duplicated."""
    key, value = valid(rng)
    b = bytearray(value or b"")
    for _ in range(rng.randrange(1, 4)):
        i = rng.randrange(len(b))
        op = rng.random()
        if op < 0.4:
            b[i] = rng.randrange(256)
        elif op < 0.7:
            del b[i]
        else:
            b.insert(i, b[i])
    return key, bytes(b)


KINDS: list[tuple[Callable[[random.Random], Record], float]] = [
    (valid, 0.2), (random_bytes, 0.15), (invalid_utf8, 0.1), (number_text, 0.1), (deep, 0.05),
    (wrong_types, 0.13), (arrays, 0.1), (mutate, 0.15), (origin, 0.02),
]


def records(rng: random.Random, n: int, huge_every: int = 0) -> Iterator[Record]:
    """``n`` hostile records; every ``huge_every``-th one (if > 0) is a ~1 MB record."""
    makers = [k for k, _ in KINDS]
    weights = [w for _, w in KINDS]
    for i in range(n):
        if huge_every and i % huge_every == huge_every - 1:
            yield huge_string(rng)
        else:
            yield rng.choices(makers, weights)[0](rng)
