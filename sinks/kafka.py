"""Kafka sink: publishes each notification as JSON to a topic (another team's consumer).

The producer is injected (an async ``produce(key, value)``, e.g. a Faust topic's send),
so this module needs no broker and no client of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson

from sinks.errors import SinkError
from sinks.notification import Notification

Produce = Callable[[bytes, bytes], Awaitable[object]]


class KafkaSink:
    """Sends ``Notification.as_dict()`` keyed by incident id, so one incident stays ordered."""

    def __init__(self, produce: Produce, name: str = "kafka") -> None:
        self.name = name
        self._produce = produce

    async def send(self, n: Notification) -> None:
        try:
            await self._produce(n.incident_id.encode(), orjson.dumps(n.as_dict()))
        except Exception as exc:  # any producer failure is worth retrying: broker may be back
            raise SinkError(f"{self.name}: producing failed ({type(exc).__name__})",
                            retriable=True, sink=self.name) from None

    async def close(self) -> None:
        return None
