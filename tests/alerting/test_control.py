"""Control endpoints over real HTTP: bearer-token auth, validation, silences, feedback.

The endpoints' logic (:class:`ControlAPI`) is served by a plain aiohttp app on a free
port; the Faust view glue is exercised by tests/alerting/test_control_feedback.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from aiohttp import web

from streams.alerting.control import ControlAPI
from streams.alerting.engine import AlertEngine
from streams.alerting.lifecycle import Timings
from streams.alerting.records import parse_scored
from tests.alerting.scored import T0, scored

TOKEN = "s3cret-token-value"


class Server:
    def __init__(self, api: ControlAPI) -> None:
        self.api, self.published, self.url = api, [], ""

    async def start(self) -> None:
        async def serve(request: web.Request) -> web.Response:
            route = request.match_info.get("route", "")
            sid = request.match_info.get("sid", "")
            status, value = await self.api.handle(request.method, "silence" if sid else route,
                                                  request.headers, await request.read(), sid)
            return web.Response(body=orjson.dumps(value), status=status, content_type="application/json")

        app = web.Application()
        app.router.add_route("*", "/silences/{sid}", serve)
        app.router.add_route("*", "/{route}", serve)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, AlertEngine, list]]:
    eng = AlertEngine(Timings(quiet_s=60, cooldown_s=0, lateness_s=0))
    published: list[tuple[str, bytes | None, dict]] = []

    async def publish(topic: str, key: bytes | None, value: bytes) -> None:
        published.append((topic, key, orjson.loads(value)))

    async def lookup(incident_id: str) -> tuple[str, str] | None:
        return ("from.audit.log", "hst") if incident_id == "inc-elsewhere" else None

    srv = Server(ControlAPI(eng, "t.alerts", "t.feedback", publish, TOKEN, lookup, clock=lambda: T0))
    await srv.start()
    yield srv, eng, published
    await srv.runner.cleanup()


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def call(srv: Server, method: str, path: str, body: object = None,
               headers: dict | None = AUTH) -> tuple[int, object]:
    async with aiohttp.ClientSession() as s, s.request(
            method, srv.url + path, headers={"Content-Type": "application/json", **(headers or {})},
            data=orjson.dumps(body) if body is not None else None) as r:
        return r.status, await r.json()


@pytest.mark.parametrize("headers", [None, {"Authorization": "Bearer wrong"},
                                     {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}])
async def test_every_endpoint_refuses_a_missing_or_wrong_token(server, headers):
    srv, _, published = server
    for method, path in (("GET", "/incidents"), ("GET", "/silences"), ("POST", "/silences"),
                         ("DELETE", "/silences/sil-x"), ("POST", "/feedback")):
        status, body = await call(srv, method, path, {"kind": "ack"}, headers)
        assert status == 401 and "PYNOMALY_CONTROL_TOKEN" in body["message"], (method, path)
        assert TOKEN not in orjson.dumps(body).decode()
    assert published == []


async def test_no_token_configured_means_open_endpoints():
    api = ControlAPI(AlertEngine(Timings()), "a", "f", publish=None, token="")  # type: ignore[arg-type]
    assert api.authorized(None) and api.authorized("Bearer anything")
    assert ControlAPI(AlertEngine(Timings()), "a", "f", None, TOKEN).authorized(f"bearer {TOKEN}")  # type: ignore[arg-type]


async def test_incidents_lists_open_incidents(server):
    srv, eng, _ = server
    eng.observe(parse_scored(scored("payments", T0, True, value=42.0)))
    status, body = await call(srv, "GET", "/incidents")
    assert status == 200 and len(body) == 1
    assert body[0]["stream"] == "payments" and body[0]["id"].startswith("inc-") and body[0]["value"] == 42.0


async def test_silence_create_applies_to_the_engine_lists_and_deletes(server):
    srv, eng, published = server
    status, sil = await call(srv, "POST", "/silences", {"stream": "batch.*", "duration_s": 600,
                                                         "comment": "maintenance", "by": "bob"})
    assert status == 201 and sil["ends_at"] == T0 + 600 and sil["id"].startswith("sil-")
    recs = eng.observe(parse_scored(scored("batch.nightly", T0 + 10, True)))
    assert [r["suppressed"] for r in recs if r["action"] == "opened"] == ["silence"]
    assert (await call(srv, "GET", "/silences"))[1] == [sil]
    status, _ = await call(srv, "DELETE", f"/silences/{sil['id']}")
    assert status == 200 and eng.silences.silences == []
    status, body = await call(srv, "DELETE", f"/silences/{sil['id']}")
    assert status == 404 and sil["id"] in body["message"]
    audit = [(t, k, v["action"], v["silence_id"]) for t, k, v in published]
    assert audit == [("t.alerts", b"silence", "created", sil["id"]),
                     ("t.alerts", b"silence", "deleted", sil["id"])]
    assert published[0][2]["by"] == "bob"


@pytest.mark.parametrize("body,needle", [
    ({"stream": "a.*"}, "expiry"),
    ({"stream": "a.*", "ends_at": T0 - 1}, "in the past"),
    ({"stream": "a.*", "duration_s": -5}, "duration_s"),
    ({"stream": "a.*", "duration_s": True}, "duration_s"),
    ({"duration_s": 60}, "'stream'"),
    ({"stream": 7, "duration_s": 60}, "'stream'"),
    ({"tags": {"env": 1}, "duration_s": 60}, "'tags'"),
    ([1, 2], "JSON object"),
])
async def test_bad_silences_are_refused_with_the_field_named(server, body, needle):
    srv, eng, published = server
    status, answer = await call(srv, "POST", "/silences", body)
    assert status == 400 and needle in answer["message"]
    assert eng.silences.silences == [] and published == []


async def test_invalid_json_is_a_400(server):
    srv, _, _ = server
    async with aiohttp.ClientSession() as s, s.post(srv.url + "/feedback", data=b"{nope",
                                                      headers={**AUTH, "Content-Type": "application/json"}) as r:
        assert r.status == 400 and "not valid JSON" in (await r.json())["message"]


async def test_feedback_is_published_keyed_by_the_incident_stream(server):
    srv, eng, published = server
    inc = eng.observe(parse_scored(scored("payments", T0, True)))[0]["incident_id"]
    status, body = await call(srv, "POST", "/feedback", {"kind": "false_positive", "incident_id": inc,
                                                          "by": "alice"})
    assert status == 202
    topic, key, rec = [r for r in published if r[0] == "t.feedback"][-1]
    assert (topic, key) == ("t.feedback", b"payments")
    assert rec == {"kind": "false_positive", "incident_id": inc, "by": "alice", "ts": T0,
                   "stream": "payments", "detector": "zscore"}
    assert eng.open_incidents()  # applied by the feedback agent, not by the endpoint
    # audited on the alerts topic (issue 13)
    audit = [(v["type"], v["action"], v["incident_id"], v["by"], v["ts"]) for t, _, v in published
             if t == "t.alerts"]
    assert audit == [("control", "feedback", inc, "alice", T0)]
    # known only to the audit log (another worker's incident): found by the lookup
    status, body = await call(srv, "POST", "/feedback", {"kind": "ack", "incident_id": "inc-elsewhere"})
    assert status == 202 and [r for r in published if r[0] == "t.feedback"][-1][1] == b"from.audit.log"


@pytest.mark.parametrize("body,status,needle", [
    ({"kind": "maybe", "incident_id": "inc-1"}, 400, "'kind'"),
    ({"kind": "silence", "stream": "x"}, 400, "POST /silences"),
    ({"kind": "ack"}, 400, "incident_id"),
    ({"kind": "ack", "incident_id": "inc-1", "ts": "yesterday"}, 400, "'ts'"),
    ({"kind": "ack", "incident_id": "inc-nobody-knows"}, 404, "unknown incident"),
])
async def test_bad_feedback_is_refused(server, body, status, needle):
    srv, _, published = server
    got, answer = await call(srv, "POST", "/feedback", body)
    assert got == status and needle in answer["message"]
    assert published == []


async def test_kafka_failures_are_a_503_not_a_crash():
    from aiokafka.errors import KafkaConnectionError

    eng = AlertEngine(Timings(quiet_s=60, cooldown_s=0, lateness_s=0))

    async def down(topic: str, key: bytes | None, value: bytes) -> None:
        raise KafkaConnectionError("no broker")

    srv = Server(ControlAPI(eng, "a", "f", down, TOKEN, clock=lambda: T0))
    await srv.start()
    try:
        status, body = await call(srv, "POST", "/feedback", {"kind": "ack", "incident_id": "i",
                                                              "stream": "s"})
        assert status == 503 and "retry" in body["message"]
    finally:
        await srv.runner.cleanup()
