"""Fixtures: live local vendor receivers, a virtual clock, sample notifications."""

from __future__ import annotations

import pytest

from tests.support.receivers import (
    PagerDutyReceiver,
    SlackReceiver,
    TeamsReceiver,
    WebhookReceiver,
)


class VirtualClock:
    """Monotonic clock whose sleep advances time instantly and records each wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
async def slack():
    r = await SlackReceiver().start()
    yield r
    await r.stop()


@pytest.fixture
async def teams():
    r = await TeamsReceiver().start()
    yield r
    await r.stop()


@pytest.fixture
async def pagerduty():
    r = await PagerDutyReceiver().start()
    yield r
    await r.stop()


@pytest.fixture
async def webhook():
    r = await WebhookReceiver("s3cr3t-hmac-key").start()
    yield r
    await r.stop()


