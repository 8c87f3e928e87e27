"""Retry, backoff, Retry-After, circuit breaker and rate limit, in virtual wall-clock time."""

from __future__ import annotations

import random

import pytest

from sinks.delivery import Delivery, DeliveryPolicy
from sinks.slack import SlackSink
from tests.sinks.factories import make_notification


def delivery(sink, clock, **policy):
    return Delivery(sink, DeliveryPolicy(**policy), clock=clock, sleep=clock.sleep,
                    rng=random.Random(7))


async def test_retries_5xx_then_delivers(slack, clock):
    slack.fail("500", times=2)
    d = delivery(SlackSink(slack.url), clock)
    out = await d.deliver(make_notification())
    await d.sink.close()
    assert out.delivered and out.attempts == 3 and len(slack.accepted) == 1
    assert len(clock.sleeps) == 2 and clock.sleeps[1] > clock.sleeps[0] * 0.9


async def test_honours_retry_after(slack, clock):
    slack.fail("429", times=1, retry_after=12)
    d = delivery(SlackSink(slack.url), clock)
    out = await d.deliver(make_notification())
    await d.sink.close()
    assert out.delivered and out.attempts == 2
    assert sum(clock.sleeps) >= 12.0  # never earlier than the receiver asked


async def test_final_error_is_not_retried(slack, clock):
    slack.archived = True
    d = delivery(SlackSink(slack.url), clock)
    out = await d.deliver(make_notification())
    await d.sink.close()
    assert not out.delivered and out.attempts == 1 and out.reason == "final"
    assert out.error.code == "channel_is_archived" and clock.sleeps == []


async def test_gives_up_within_deadline(slack, clock):
    slack.fail("500")
    d = delivery(SlackSink(slack.url), clock, max_attempts=50, deadline_s=20, breaker_failures=100)
    out = await d.deliver(make_notification())
    await d.sink.close()
    assert not out.delivered and out.reason == "gave_up"
    assert clock.now - 1000.0 <= 20.0


async def test_breaker_opens_fails_fast_then_recovers(slack, clock):
    await slack.down()
    d = delivery(SlackSink(slack.url), clock, max_attempts=1, breaker_failures=3, breaker_reset_s=30)
    for _ in range(3):
        assert not (await d.deliver(make_notification())).delivered
    assert d.breaker.state == "open"
    assert d.breaker.reopens_in() > 0
    await slack.up()
    # While the circuit is open nothing is sent: the delivery waits out the reset (that wait
    # is not an attempt), then one trial send goes through and closes the circuit.
    clock.sleeps.clear()
    out = await d.deliver(make_notification())
    await d.sink.close()
    assert sum(clock.sleeps) >= 29
    assert out.delivered and d.breaker.state == "closed" and len(slack.accepted) == 1


async def test_half_open_failure_reopens(slack, clock):
    await slack.down()
    d = delivery(SlackSink(slack.url), clock, max_attempts=1, breaker_failures=2, breaker_reset_s=10)
    for _ in range(2):
        await d.deliver(make_notification())
    clock.now += 11
    assert d.breaker.state == "half_open"
    await d.deliver(make_notification())
    await d.sink.close()
    assert d.breaker.state == "open"


async def test_rate_limit_spaces_sends(slack, clock):
    d = delivery(SlackSink(slack.url), clock, rate_per_s=1.0, burst=1)
    for _ in range(5):
        assert (await d.deliver(make_notification())).delivered
    await d.sink.close()
    # burst 1 at 1/s: five sends need four seconds of waiting
    assert 3.99 <= sum(clock.sleeps) <= 4.01 and len(slack.accepted) == 5


async def test_429_penalises_following_sends(slack, clock):
    """A 429 with Retry-After 5 s holds back the *next* notification too, not only the retry.

    The first delivery gives up at once (max_attempts=1), so no backoff of its own hides
    the penalty: the following send has tokens to spare (burst 5) and would go out at once
    without it.
    """
    slack.fail("429", times=1, retry_after=5)
    d = delivery(SlackSink(slack.url), clock, rate_per_s=10.0, burst=5, max_attempts=1)
    first = await d.deliver(make_notification())
    assert not first.delivered and first.error.status == 429 and clock.sleeps == []
    rejected_at = clock.now
    sent_at: list[float] = []
    d.on_request = lambda sink, seconds: sent_at.append(clock.now)
    second = await d.deliver(make_notification(incident_id="inc-next"))
    await d.sink.close()
    assert second.delivered and len(slack.accepted) == 1
    assert sent_at[0] - rejected_at >= 5.0, "the send after a 429 did not wait for Retry-After"
    assert sent_at[0] - rejected_at <= 5.0 + 1 / 10.0 + 1e-9  # ...and not much longer


async def test_no_429_no_penalty(slack, clock):
    """The control: without a 429, the same two sends go out back to back."""
    d = delivery(SlackSink(slack.url), clock, rate_per_s=10.0, burst=5, max_attempts=1)
    for _ in range(2):
        assert (await d.deliver(make_notification())).delivered
    await d.sink.close()
    assert clock.sleeps == []


async def test_final_errors_do_not_open_the_circuit(slack, clock):
    slack.archived = True
    d = delivery(SlackSink(slack.url), clock, breaker_failures=2)
    for _ in range(5):
        out = await d.deliver(make_notification())
        assert out.reason == "final" and out.attempts == 1
    await d.sink.close()
    assert d.breaker.state == "closed" and slack.requests == 5


async def test_a_bug_in_a_sink_is_final_not_fatal(clock, caplog):
    class Buggy:
        name = "buggy"

        async def send(self, n):
            raise KeyError("https://hooks.example/secret-path")

    d = delivery(Buggy(), clock)
    out = await d.deliver(make_notification())
    assert not out.delivered and out.reason == "final" and "KeyError" in out.error.message
    assert "secret-path" not in caplog.text and "secret-path" not in str(out.error)


async def test_metrics_hooks_see_every_attempt_and_request(slack, clock):
    attempts: list[tuple[str, str]] = []
    requests: list[tuple[str, float]] = []
    slack.fail("500", times=1)
    d = Delivery(SlackSink(slack.url), DeliveryPolicy(), clock=clock, sleep=clock.sleep,
                 rng=random.Random(7), on_attempt=lambda s, o: attempts.append((s, o)),
                 on_request=lambda s, secs: requests.append((s, secs)))
    ok = await d.deliver(make_notification())
    slack.archived = True
    final = await d.deliver(make_notification())
    await d.sink.close()
    assert (ok.sink, ok.delivered, ok.attempts, ok.reason) == ("slack", True, 2, "delivered")
    assert (final.sink, final.delivered, final.attempts, final.reason) == ("slack", False, 1, "final")
    assert attempts == [("slack", "retry"), ("slack", "delivered"), ("slack", "final")]
    assert [s for s, _ in requests] == ["slack"] * 3
    assert all(secs == 0.0 for _, secs in requests)  # the virtual clock does not move in a send


def test_backoff_doubles_with_jitter_in_the_upper_half():
    d = Delivery(SlackSink("http://127.0.0.1:9/x"), DeliveryPolicy(base_backoff_s=0.5, max_backoff_s=3.0),
                 rng=random.Random(1))
    for attempt, cap in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (9, 3.0)):
        waits = [d.backoff(attempt, None) for _ in range(400)]
        assert cap / 2 <= min(waits) < cap / 2 * 1.05 and cap * 0.95 < max(waits) <= cap, attempt
    assert d.backoff(1, 7.5) == 7.5  # never earlier than Retry-After
    assert d.backoff(4, 0.1) >= 1.5


def test_rate_limiter_refills_at_its_rate():
    from sinks.delivery import RateLimiter

    now = [0.0]
    lim = RateLimiter(rate=4.0, burst=2, clock=lambda: now[0])
    assert lim.wait_time() == 0.0 and lim.wait_time() == 0.0  # the burst
    assert lim.wait_time() == pytest.approx(0.25)  # one token per 1/4 s
    now[0] = 0.125
    assert lim.wait_time() == pytest.approx(0.125)
    now[0] = 10.0
    assert lim.wait_time() == 0.0 and lim.wait_time() == 0.0 and lim.wait_time() > 0  # capped at burst
    lim.penalise(2.0)  # a 429: no token for 2 s
    assert lim.wait_time() == pytest.approx(2.0 + 0.25)


def test_breaker_counts_consecutive_failures_only():
    from sinks.delivery import CircuitBreaker

    now = [0.0]
    b = CircuitBreaker(failures=3, reset_s=10, clock=lambda: now[0])
    assert b.reopens_in() == 0.0
    b.failure()
    b.failure()
    b.success()  # resets the count
    b.failure()
    b.failure()
    assert b.state == "closed"
    b.failure()
    assert b.state == "open" and b.reopens_in() == 10.0
    now[0] = 9.0
    assert b.reopens_in() == 1.0
    now[0] = 25.0
    assert b.state == "half_open" and b.reopens_in() == 0.0
    b.failure()  # a failed trial reopens at once
    assert b.state == "open" and b.reopens_in() == 10.0
