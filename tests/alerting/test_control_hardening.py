"""Issue 13, finding 4: the control API is safe wherever it is reachable.

A worker refuses to serve it on a non-loopback address without a token; only JSON bodies
are accepted (a cross-site ``text/plain`` POST from any web page needs no preflight);
silences that match everything (``*``, ``**``, ``?*``...) are refused; silences are capped
in count and duration; every change is audited on the alerts topic.
"""

from __future__ import annotations

import aiohttp
import orjson
import pytest

from streams.alerting.control import ControlAPI, check_exposure
from streams.alerting.engine import AlertEngine
from streams.alerting.lifecycle import Timings
from streams.alerting.settings import load_alerting_settings
from streams.errors import SettingsError
from streams.settings import load_settings
from tests.alerting.scored import T0
from tests.alerting.test_control import AUTH, TOKEN, Server, call


@pytest.fixture
async def open_server():
    """No token configured (loopback), as the application default."""
    eng = AlertEngine(Timings(quiet_s=60, cooldown_s=0, lateness_s=0))
    published: list[tuple[str, bytes | None, dict]] = []

    async def publish(topic: str, key: bytes | None, value: bytes) -> None:
        published.append((topic, key, orjson.loads(value)))

    srv = Server(ControlAPI(eng, "t.alerts", "t.feedback", publish, "", clock=lambda: T0,
                            max_silences=3, max_silence_s=86_400))
    await srv.start()
    yield srv, eng, published
    await srv.runner.cleanup()


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])
async def test_a_cross_site_simple_post_changes_nothing(open_server, content_type):
    srv, eng, published = open_server
    headers = {"Content-Type": content_type} if content_type else {}
    body = orjson.dumps({"stream": "payments.*", "duration_s": 600})
    async with aiohttp.ClientSession(skip_auto_headers=["Content-Type"]) as s:
        for path in ("/silences", "/feedback"):
            async with s.post(srv.url + path, data=body, headers=headers) as r:
                assert r.status == 415, (path, r.status)
                assert "application/json" in (await r.json())["message"]
    assert eng.silences.silences == [] and published == []


@pytest.mark.parametrize("stream", ["*", "**", "***", "?*", "*?", "[a-z]*", "[!x]*", "*[]]*"])
async def test_silences_of_everything_are_refused(open_server, stream):
    srv, eng, published = open_server
    status, body = await call(srv, "POST", "/silences", {"stream": stream, "duration_s": 60})
    assert status == 400 and "everything" in body["message"]
    status, body = await call(srv, "POST", "/silences", {"stream": stream, "tags": {"env": "**"},
                                                         "duration_s": 60})
    assert status == 400 and "everything" in body["message"]
    assert eng.silences.silences == [] and published == []


async def test_a_narrow_glob_is_still_accepted(open_server):
    srv, eng, _ = open_server
    for body in ({"stream": "payments.*", "duration_s": 60}, {"stream": "*", "tags": {"env": "staging"},
                                                              "duration_s": 60}):
        status, _ = await call(srv, "POST", "/silences", body)
        assert status == 201
    assert len(eng.silences.silences) == 2


async def test_silences_are_capped_in_count_and_duration(open_server):
    srv, eng, _ = open_server
    status, body = await call(srv, "POST", "/silences", {"stream": "a.*", "duration_s": 86_401})
    assert status == 400 and "86400" in body["message"]
    status, body = await call(srv, "POST", "/silences", {"stream": "a.*", "ends_at": T0 + 10 ** 9})
    assert status == 400
    for i in range(3):
        assert (await call(srv, "POST", "/silences", {"stream": f"s{i}.*", "duration_s": 60}))[0] == 201
    status, body = await call(srv, "POST", "/silences", {"stream": "s9.*", "duration_s": 60})
    assert status == 429 and "3" in body["message"]
    assert len(eng.silences.silences) == 3


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "pynomaly.example.com"])
def test_a_worker_refuses_to_serve_control_off_loopback_without_a_token(host):
    settings = load_settings(environ={}, web_host=host)
    with pytest.raises(SettingsError, match="PYNOMALY_CONTROL_TOKEN"):
        check_exposure(settings, load_alerting_settings({}, {}))
    check_exposure(settings, load_alerting_settings({"PYNOMALY_CONTROL_TOKEN": TOKEN}, {}))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_no_token(host):
    check_exposure(load_settings(environ={}, web_host=host), load_alerting_settings({}, {}))


_ = AUTH
