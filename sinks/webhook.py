"""Generic webhook sink: the notification as JSON, signed with HMAC-SHA256.

Receivers verify ``X-Pynomaly-Signature: sha256=<hex>`` computed over
``<X-Pynomaly-Timestamp>.<raw body>`` with the shared secret, and reject stale
timestamps to stop replays. 2xx is accepted; 408/429/5xx are retried; other 4xx are final.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable

import orjson

from sinks.http import HttpPoster, status_error
from sinks.notification import Notification

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Pynomaly-Signature"
TIMESTAMP_HEADER = "X-Pynomaly-Timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of ``timestamp.body`` keyed with ``secret``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


# Receivers accept a signed request for this long (either way: clocks differ a little).
MAX_AGE_S = 300.0


def verify(secret: str, timestamp: str, body: bytes, signature: str, now: float | None = None,
           max_age_s: float = MAX_AGE_S) -> bool:
    """True when ``signature`` is right and ``timestamp`` within ``max_age_s`` of ``now``
    (default: the wall clock): a captured request cannot be replayed later."""
    try:
        age = (time.time() if now is None else now) - int(timestamp)
    except ValueError:
        return False
    return abs(age) <= max_age_s and hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookSink:
    """POSTs ``Notification.as_dict()`` to a URL with an HMAC signature header."""

    def __init__(self, url: str, secret: str, name: str = "webhook", timeout_s: float = 10.0,
                 wall_clock: Callable[[], float] | None = None) -> None:
        import time

        self.name = name
        self._url = str.__str__(url)
        self._secret = str.__str__(secret)
        self._http = HttpPoster(name, timeout_s)
        self._clock = wall_clock or time.time

    async def send(self, n: Notification) -> None:
        body = orjson.dumps({"type": "pynomaly.notification", "version": 1, **n.as_dict()})
        ts = str(int(self._clock()))
        headers = {TIMESTAMP_HEADER: ts}
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, ts, body)
        resp = await self._http.post(self._url, body, headers)
        if 200 <= resp.status < 300:
            return
        log.warning("webhook %s answered HTTP %d", self.name, resp.status)
        raise status_error(self.name, resp, None,
                           "check the receiver; 401/403 usually means a wrong PYNOMALY_WEBHOOK_SECRET")

    async def close(self) -> None:
        await self._http.close()
