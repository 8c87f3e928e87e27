"""Delivery policy in one place: per-sink rate limit, circuit breaker, retries with backoff.

Wall-clock time drives all of it (never event time); the clock, the sleep and the random
source are injected so tests run in virtual time. :meth:`Delivery.deliver` never raises:
it returns an outcome the notify agent uses to acknowledge or dead-letter.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable

from sinks.errors import CircuitOpenError, SinkError
from sinks.notification import Notification
from sinks.protocol import Sink

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclasses.dataclass(frozen=True)
class DeliveryPolicy:
    max_attempts: int = 6
    base_backoff_s: float = 0.5
    max_backoff_s: float = 60.0
    deadline_s: float = 300.0  # give up (and dead-letter) after this long in total
    rate_per_s: float = 1.0  # Slack allows ~1 message/s per webhook
    burst: int = 3
    breaker_failures: int = 5  # consecutive failures that open the circuit
    breaker_reset_s: float = 30.0  # open this long before one trial send


@dataclasses.dataclass(frozen=True)
class Outcome:
    sink: str
    delivered: bool
    attempts: int
    error: SinkError | None = None

    @property
    def reason(self) -> str:
        if self.delivered:
            return "delivered"
        return "final" if self.error is not None and not self.error.retriable else "gave_up"


class RateLimiter:
    """Token bucket: ``rate`` sends per second with bursts of ``burst``."""

    def __init__(self, rate: float, burst: int, clock: Clock) -> None:
        self.rate, self.burst, self.clock = rate, max(1, burst), clock
        self.tokens = float(self.burst)
        self.updated = clock()

    def wait_time(self) -> float:
        """Take a token if one is free (returns 0) or say how long until one is."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def penalise(self, seconds: float) -> None:
        """The receiver said slow down: no token for ``seconds``."""
        self.tokens = min(self.tokens, 0.0) - seconds * self.rate


class CircuitBreaker:
    """Closed -> open after N consecutive failures -> half-open trial after reset_s."""

    def __init__(self, failures: int, reset_s: float, clock: Clock) -> None:
        self.threshold, self.reset_s, self.clock = failures, reset_s, clock
        self.consecutive = 0
        self.opened_at: float | None = None

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.clock() - self.opened_at >= self.reset_s else "open"

    def reopens_in(self) -> float:
        return 0.0 if self.opened_at is None else max(0.0, self.opened_at + self.reset_s - self.clock())

    def success(self) -> None:
        self.consecutive, self.opened_at = 0, None

    def failure(self) -> None:
        self.consecutive += 1
        if self.state == "half_open" or self.consecutive >= self.threshold:
            self.opened_at = self.clock()


class Delivery:
    """Wraps one sink with the policy; one instance per sink, shared by all its sends."""

    def __init__(self, sink: Sink, policy: DeliveryPolicy | None = None, *, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep, rng: random.Random | None = None,
                 on_attempt: Callable[[str, str], None] | None = None,
                 on_request: Callable[[str, float], None] | None = None) -> None:
        self.sink = sink
        self.policy = policy or DeliveryPolicy()
        self.clock, self.sleep = clock, sleep
        self.rng = rng or random.Random()
        self.limiter = RateLimiter(self.policy.rate_per_s, self.policy.burst, clock)
        self.breaker = CircuitBreaker(self.policy.breaker_failures, self.policy.breaker_reset_s, clock)
        self.on_attempt = on_attempt  # (sink, outcome) -> None: metrics hook
        self.on_request = on_request  # (sink, seconds of one send) -> None: metrics hook
        self._lock = asyncio.Lock()  # one send at a time per sink keeps the rate honest

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter (drawn from [cap/2, cap]), never below Retry-After."""
        cap = min(self.policy.max_backoff_s, self.policy.base_backoff_s * 2 ** (attempt - 1))
        wait = self.rng.uniform(cap / 2, cap)
        return max(wait, retry_after) if retry_after is not None else wait

    async def deliver(self, n: Notification) -> Outcome:
        start = self.clock()
        attempt = 0
        name = self.sink.name
        while True:
            attempt += 1
            try:
                async with self._lock:
                    await self._admit()
                    sent_at = self.clock()
                    try:
                        await self.sink.send(n)
                    finally:
                        if self.on_request is not None:
                            self.on_request(name, self.clock() - sent_at)
                self.breaker.success()
                self._note(name, "delivered")
                return Outcome(name, True, attempt)
            except Exception as exc:
                err = exc if isinstance(exc, SinkError) else self._unexpected(exc)
                if not err.retriable:
                    self.breaker.success()  # it answered: reachable, just refusing this one
                elif not isinstance(err, CircuitOpenError):
                    self.breaker.failure()  # only unavailability (timeouts, 429, 5xx) opens it
                    if err.status == 429 and err.retry_after:
                        self.limiter.penalise(err.retry_after)
                self._note(name, "retry" if err.retriable else "final")
                if not err.retriable:
                    log.warning("%s: giving up on %s: %s", name, n.incident_id, err.message)
                    return Outcome(name, False, attempt, err)
                if isinstance(err, CircuitOpenError):
                    # Waiting out an open circuit is not an attempt: only the deadline bounds it,
                    # so an outage longer than the attempts' backoff still delivers afterwards.
                    attempt -= 1
                    wait = max(self.backoff(1, None), self.breaker.reopens_in())
                else:
                    wait = self.backoff(attempt, err.retry_after)
                spent = self.clock() - start
                if attempt >= self.policy.max_attempts or spent + wait > self.policy.deadline_s:
                    log.warning("%s: %s not delivered after %d attempts: %s", name,
                                n.incident_id, attempt, err.message)
                    return Outcome(name, False, attempt, err)
                await self.sleep(wait)

    async def _admit(self) -> None:
        state = self.breaker.state
        if state == "open":
            raise CircuitOpenError(self.sink.name, self.breaker.reopens_in())
        while (wait := self.limiter.wait_time()) > 0:
            await self.sleep(wait)

    def _unexpected(self, exc: Exception) -> SinkError:
        # A bug in a sink must not kill the notify agent: make it final (dead-lettered).
        # Only the type is logged: an arbitrary exception text could carry a URL.
        log.error("%s: unexpected %s while sending; dead-lettering", self.sink.name, type(exc).__name__)
        return SinkError(f"{self.sink.name}: unexpected {type(exc).__name__} while sending (a bug; "
                         "please report it)", retriable=False, sink=self.sink.name)

    def _note(self, sink: str, outcome: str) -> None:
        if self.on_attempt is not None:
            self.on_attempt(sink, outcome)
