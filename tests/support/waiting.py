"""Poll for a condition with a deadline, instead of sleeping a fixed time and asserting.

A fixed sleep is either too short on a slow machine (a flaky failure) or too long on a
fast one (wasted minutes). These return as soon as ``condition()`` is truthy and fail,
naming what they waited for and the last value seen, once ``timeout`` seconds passed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The condition did not hold within the deadline."""


def _poll_once(condition: Callable[[], T], deadline: float, timeout: float, what: str) -> tuple[bool, T]:
    """(done, value): done when the condition holds; raises once the deadline has passed."""
    last = condition()
    if last:
        return True, last
    if time.monotonic() >= deadline:
        raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what} (last value: {last!r:.300})")
    return False, last


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Call ``condition`` until it returns a truthy value (returned) or ``timeout`` passes.

    >>> wait_for(lambda: 2 + 2, 1.0, "arithmetic")
    4
    """
    deadline = time.monotonic() + timeout
    while True:
        done, last = _poll_once(condition, deadline, timeout, what)
        if done:
            return last
        time.sleep(interval)


async def async_wait_for(condition: Callable[[], T], timeout: float, what: str,
                         interval: float = 0.05) -> T:
    """:func:`wait_for` for coroutines: the event loop keeps running while it polls."""
    deadline = time.monotonic() + timeout
    while True:
        done, last = _poll_once(condition, deadline, timeout, what)
        if done:
            return last
        await asyncio.sleep(interval)
