"""SinkError: what a sink raises when a notification was not accepted."""

from __future__ import annotations


class SinkError(Exception):
    """A sink did not accept a notification.

    ``retriable`` says whether sending the same notification again can succeed (timeouts,
    429, 5xx); ``retry_after`` is the wait the receiver asked for, in seconds, if it said.
    Messages never include webhook URLs, routing keys or secrets: they name the sink, the
    HTTP status and the vendor's error code, and how to fix it.
    """

    def __init__(
        self,
        message: str,
        retriable: bool,
        retry_after: float | None = None,
        *,
        sink: str = "",
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retriable = retriable
        self.retry_after = retry_after
        self.sink = sink
        self.status = status
        self.code = code

    def __repr__(self) -> str:
        return (
            f"SinkError({self.message!r}, retriable={self.retriable}, "
            f"retry_after={self.retry_after!r})"
        )


class CircuitOpenError(SinkError):
    """The sink's circuit breaker is open: recent sends failed, so this one is not tried."""

    def __init__(self, sink: str, reopens_in: float) -> None:
        super().__init__(
            f"{sink}: circuit open after repeated failures; next attempt in {reopens_in:.1f}s "
            "(check the receiver's status and the sink's URL setting)",
            retriable=True,
            retry_after=reopens_in,
            sink=sink,
        )
