"""Signed pipeline checkpoints: pickle + HMAC-SHA256, verified before anything is unpickled.

Unpickling runs code, so a blob is only unpickled after its signature checks out with the
worker's key (constant-time compare). Format: ``MAGIC | 32-byte tag | pickle``.

>>> from detectors.pipeline import PipelineConfig, StreamPipeline
>>> p = StreamPipeline(PipelineConfig())
>>> blob = dumps_state(p, b"k" * 32)
>>> loads_state(blob, b"k" * 32).version
2
>>> try:
...     loads_state(blob[:-1] + b"x", b"k" * 32)
... except StateSignatureError as exc:
...     print(exc.retriable, str(exc)[:33])
False pipeline state signature mismatch
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
from collections.abc import Callable
from concurrent.futures import Executor

from detectors.errors import DetectorError
from detectors.pipeline import StreamPipeline

MAGIC = b"PNYS1"
_TAG = 32


class StateSignatureError(DetectorError):
    """A state blob is unsigned, truncated or signed with another key. Not retriable:
    discard it (the stream re-warms) or configure the key the writer used."""

    retriable = False


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes | bytearray) or len(key) < 16:
        raise DetectorError("state signing key must be at least 16 bytes; set the worker's "
                            "state key (e.g. from a secret) to a long random value")


def _tag(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, MAGIC + payload, hashlib.sha256).digest()


def sign_payload(payload: bytes, key: bytes) -> bytes:
    """``MAGIC | tag | payload``: the signed form every checkpoint uses."""
    _check_key(key)
    return MAGIC + _tag(key, payload) + payload


def verify_payload(blob: bytes, key: bytes) -> bytes:
    """The payload of a signed blob; StateSignatureError before anything is unpickled."""
    _check_key(key)
    if not isinstance(blob, bytes | bytearray) or not blob.startswith(MAGIC) \
            or len(blob) < len(MAGIC) + _TAG:
        raise StateSignatureError("pipeline state is not a signed checkpoint (bad header or "
                                  "truncated); refusing to unpickle it")
    tag = blob[len(MAGIC):len(MAGIC) + _TAG]
    payload = bytes(blob[len(MAGIC) + _TAG:])
    if not hmac.compare_digest(tag, _tag(key, payload)):
        raise StateSignatureError("pipeline state signature mismatch: tampered, or signed "
                                  "with a different key; refusing to unpickle it")
    return payload


def dumps_state(pipeline: StreamPipeline, key: bytes) -> bytes:
    """Serialise and sign ``pipeline`` (executors and pending refits are not included)."""
    return sign_payload(pickle.dumps(pipeline, protocol=pickle.HIGHEST_PROTOCOL), key)


def loads_state(blob: bytes, key: bytes, executor: Executor | None = None,
                clock: Callable[[], float] | None = None) -> StreamPipeline:
    """Verify then restore a pipeline; its version increments (a restore is a new model)."""
    pipeline = pickle.loads(verify_payload(blob, key))  # noqa: S301 (verified first)
    if not isinstance(pipeline, StreamPipeline):
        raise StateSignatureError(f"signed state holds a {type(pipeline).__name__}, "
                                  "not a StreamPipeline")
    pipeline.version += 1
    bind = getattr(pipeline.detector, "bind", None)
    if bind is not None:
        bind(executor, clock)
    return pipeline
