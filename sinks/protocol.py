"""The Sink seam: one async method that either accepts a notification or raises SinkError."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from sinks.notification import Notification


@runtime_checkable
class Sink(Protocol):
    """A notification destination (Slack, Teams, PagerDuty, a webhook, a Kafka topic).

    ``send`` returns once the receiver accepted the notification; otherwise it raises
    :class:`sinks.errors.SinkError` saying whether a retry can help and when. Retries,
    backoff, rate limits and the circuit breaker live in :mod:`sinks.delivery`, not here.
    """

    name: str

    async def send(self, n: Notification) -> None: ...
