"""The signed format of the state topic: checkpoints, progress marks and the state key.

Checkpoints are ``MAGIC | HMAC tag | payload`` (detectors.state), the payload a JSON
header naming the events topic, partition and stream, then the pickle: a record copied
under another key, to another partition or from another topic is rejected before
anything is unpickled. Progress marks sign ``emitted <topic> <partition> <offset>``.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from collections.abc import Iterable
from typing import Any

import orjson

from detectors.state import MAGIC, StateSignatureError, sign_payload, verify_payload
from streams.settings import Settings, is_loopback_host

log = logging.getLogger(__name__)

# One signed format for all state, shared with detectors.state (MAGIC | HMAC tag | pickle).
CheckpointSignatureError = StateSignatureError
sign = sign_payload
verify = verify_payload
__all__ = ["MAGIC", "PROGRESS_KEY", "CheckpointSignatureError", "dump_state", "load_state", "progress_payload",
           "sign", "state_key", "verify"]


# The key of the progress marks in the state topic: not valid UTF-8, so never a stream's key.
PROGRESS_KEY = b"\xff\xfepynomaly-emitted"


def progress_payload(topic: str, partition: int, offset: int) -> bytes:
    # Topic and partition are signed too: a mark copied to another partition, or left by
    # another topic of the same name's past, is rejected or checked against the log end.
    return b"emitted %s %d %d" % (topic.encode("utf-8"), partition, offset)


def _state_header(topic: str, partition: int, stream: str) -> bytes:
    # Signed with the state: a checkpoint copied under another stream's key, to another
    # partition, or from another events topic is rejected (issue 13, finding 6).
    return orjson.dumps(["pynomaly-state", 2, topic, partition, stream]) + b"\n"


def dump_state(key: bytes, topic: str, partition: int, stream: str, offset: int, pipeline: Any,
               features: Iterable[str] | None = None) -> bytes:
    """A stream's signed checkpoint: (offset learned, pipeline, feature names of a
    multivariate stream), bound to where it belongs."""
    names = None if features is None else sorted(features)
    return sign(_state_header(topic, partition, stream)
                + pickle.dumps((offset, pipeline, names), protocol=pickle.HIGHEST_PROTOCOL), key)


def load_state(blob: bytes, key: bytes, topic: str, partition: int,
               stream: str) -> tuple[int, Any, list[str] | None]:
    """(offset learned, pipeline, feature names) of a checkpoint; CheckpointSignatureError
    when unusable.

    A genuine checkpoint written by another code version (a detector class renamed or
    removed since) fails to unpickle with AttributeError, ImportError...: it is rejected
    like a forged one, and the stream re-warms, instead of crashing the worker on every
    restart.
    """
    payload = verify(blob, key)
    header = _state_header(topic, partition, stream)
    if not payload.startswith(header):
        raise CheckpointSignatureError(
            "a checkpoint signed for another stream, partition or events topic (copied, or "
            "written before checkpoints named them); refusing it")
    try:
        offset, pipeline, features = pickle.loads(payload[len(header):])  # noqa: S301 (verified above)
    except Exception as exc:
        raise CheckpointSignatureError(
            f"signed state this version cannot load ({type(exc).__name__}: {exc})") from None
    return int(offset), pipeline, features


def state_key(settings: Settings) -> bytes | None:
    key = settings.state_hmac_key.reveal()
    if key:
        return key.encode("utf-8")
    if settings.dev_broker and _loopback_only(settings.kafka_bootstrap):
        # Dev and tests only: a fixed key so state survives restarts out of the box. It is
        # derived from the app id, so anyone can compute it: never for a reachable cluster.
        return hashlib.sha256(b"pynomaly-dev:" + settings.app_id.encode()).digest()
    if settings.dev_broker:
        log.warning("the dev-broker profile derives no state key for brokers beyond loopback "
                    "(%s): set PYNOMALY_STATE_HMAC_KEY", settings.kafka_bootstrap)
    return None


def _loopback_only(bootstrap: str) -> bool:
    return all(is_loopback_host(hp.strip().rpartition(":")[0]) for hp in bootstrap.split(","))
