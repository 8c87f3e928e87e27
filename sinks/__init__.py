"""Notification sinks: the Sink protocol, delivery policy (retry, breaker, rate limit), vendors."""

from sinks.errors import SinkError
from sinks.notification import GroupMember, Notification
from sinks.protocol import Sink

__all__ = ["GroupMember", "Notification", "Sink", "SinkError"]
