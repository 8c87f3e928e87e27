"""Issue 13, finding 10: HTTP sinks follow no redirects, read bounded bodies, and use plain
http only to loopback or when explicitly allowed.

On main a 307 delivered the signed POST to whatever address the receiver named (an
internal one), and a receiver streaming an endless body held the sink until its timeout.
Real local HTTP servers answer; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web

from sinks.errors import SinkError
from sinks.http import HttpPoster
from streams.alerting.settings import load_alerting_settings
from streams.errors import SettingsError


async def serve(handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def test_a_redirect_is_not_followed():
    hits: list[bytes] = []

    async def internal(request: web.Request) -> web.Response:
        hits.append(await request.read())
        return web.Response(text="ok")

    inner, inner_url = await serve(internal)

    async def redirecting(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(inner_url + "/admin")

    outer, outer_url = await serve(redirecting)
    poster = HttpPoster("webhook", timeout_s=5)
    try:
        with pytest.raises(SinkError) as info:
            await poster.post(outer_url + "/hook", b'{"signed": true}')
        assert not info.value.retriable and "redirect" in str(info.value)
        assert hits == [], "the POST was delivered to the redirect target"
    finally:
        await poster.close()
        await inner.cleanup()
        await outer.cleanup()


async def test_an_endless_answer_is_read_only_up_to_a_bound():
    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=200)
        await resp.prepare(request)
        try:
            while True:
                await resp.write(b"x" * 65536)
                await asyncio.sleep(0)
        except (ConnectionResetError, asyncio.CancelledError, RuntimeError):
            pass
        return resp

    runner, url = await serve(endless)
    poster = HttpPoster("webhook", timeout_s=8)
    try:
        started = time.monotonic()
        resp = await poster.post(url + "/hook", b"{}")
        took = time.monotonic() - started
    finally:
        await poster.close()
        await runner.cleanup()
    assert resp.status == 200 and len(resp.text) <= 2000
    assert took < 4, f"the sink read the endless body for {took:.1f}s"


@pytest.mark.parametrize("name", ["PYNOMALY_WEBHOOK_URL", "PYNOMALY_SLACK_WEBHOOK_URL",
                                  "PYNOMALY_TEAMS_WEBHOOK_URL", "PYNOMALY_PAGERDUTY_URL"])
def test_plain_http_beyond_loopback_needs_an_explicit_setting(name):
    env = {name: "http://hooks.example.com/services/x", "PYNOMALY_WEBHOOK_SECRET": "s3cret-value"}
    with pytest.raises(SettingsError, match="ALLOW_HTTP_SINKS"):
        load_alerting_settings(env, {})
    load_alerting_settings({**env, "PYNOMALY_ALLOW_HTTP_SINKS": "true"}, {})
    load_alerting_settings({**env, name: "https://hooks.example.com/services/x"}, {})
    load_alerting_settings({**env, name: "http://127.0.0.1:8080/x"}, {})  # loopback: tests, sidecars
