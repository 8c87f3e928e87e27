"""The explorer's reader and JSON API on the real broker, with recorded scores and alerts.

Records are written here (not by a worker) so every expected figure is known: two streams
share a partition, event times lie far before the records' produce times (a backfill), and
the window must still hold exactly the stream's points between from and to.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from confluent_kafka import Consumer, TopicPartition

from streams.broker import free_port
from streams.explore import StreamReader, partition_for
from streams.explore_api import ExploreAPI
from streams.settings import load_settings
from tests.explore.support import get_json, poll
from tests.support.kafka import REPO, create_topics, unique

pytestmark = pytest.mark.integration

T0 = 1_700_000_000.0  # event times of 2023: long before the records are produced
N = 2000


def scored(stream: str, i: int, anomaly: bool = False) -> dict:
    value = 100.0 + (i % 7) + (500 if anomaly else 0)
    return {"stream": stream, "ts": T0 + i, "value": value, "score": 0.99999999 if anomaly else 0.5,
            "threshold": 0.99999, "is_anomaly": anomaly, "severity": "critical" if anomaly else "none",
            "warming_up": False, "detector": "rarity_likelihood" if i < 1500 else "zscore", "version": 1,
            "expected": {"low": 99.0, "high": 107.0} if i >= 100 else None}


def alert(action: str, incident: str, stream: str, ts: float, **extra) -> dict:
    return {"type": "incident", "action": action, "incident_id": incident, "seq": 1, "stream": stream,
            "detector": "rarity_likelihood", "ts": ts, "opened_at": extra.pop("opened_at", ts),
            "severity": "critical", "score": 0.9999, "peak_score": 0.9999, "threshold": 0.99999, **extra}


@pytest.fixture(scope="module")
def recorded(kafka_bootstrap):
    """Topics with A's and B's scored records interleaved and A's incidents."""
    app = unique("exp")
    settings = load_settings(None, kafka_bootstrap=kafka_bootstrap, topic_scores=f"{app}.scores",
                             topic_alerts=f"{app}.alerts", topic_feedback=f"{app}.feedback")
    create_topics(kafka_bootstrap, [settings.topic_scores, settings.topic_alerts, settings.topic_feedback], 3)
    # two streams in one partition of three: the reader must skip the other one's records
    a = "pay.latency"
    b = next(f"pay.other-{i}" for i in range(100) if partition_for(f"pay.other-{i}".encode(), 3)
             == partition_for(a.encode(), 3))
    spikes = {700, 1600}

    async def write():
        p = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=20)
        await p.start()
        for i in range(N):
            await p.send(settings.topic_scores, orjson.dumps(scored(a, i, i in spikes)), key=a.encode())
            await p.send(settings.topic_scores, orjson.dumps(scored(b, i)), key=b.encode())
        multi = {"stream": "pay.host", "ts": T0 + 5, "values": {"cpu": 0.5, "mem": 0.9}, "score": 0.9,
                 "threshold": 0.99999, "is_anomaly": False, "detector": "rarity_likelihood",
                 "expected": {"cpu": {"low": 0.4, "high": 0.6}}}
        await p.send(settings.topic_scores, orjson.dumps(multi), key=b"pay.host")
        for rec in (alert("opened", "inc-1", a, T0 + 700), alert("feedback", "inc-1", a, T0 + 720,
                                                                  feedback="ack", by="ann"),
                    alert("resolved", "inc-1", a, T0 + 760, opened_at=T0 + 700, reason="quiet"),
                    alert("opened", "inc-2", a, T0 + 1600), alert("opened", "inc-b", b, T0 + 900)):
            await p.send(settings.topic_alerts, orjson.dumps(rec), key=rec["stream"].encode())
        await p.flush()
        await p.stop()

    asyncio.run(write())
    return settings, a, b, spikes


def call(api: ExploreAPI, route: str, method: str = "GET", headers: dict | None = None, body: bytes = b"",
         **query: str):
    status, ctype, payload = asyncio.run(api.handle(method, route, query, headers or {}, body))
    return status, orjson.loads(payload) if ctype.startswith("application/json") else payload


def test_window_holds_exactly_the_streams_points_by_event_time(recorded):
    settings, a, _, spikes = recorded
    api = ExploreAPI(settings, StreamReader(settings))
    status, s = call(api, "api/series", stream=a, **{"from": str(T0 + 600), "to": str(T0 + 1799)})
    assert status == 200 and s["stream"] == a and s["partition"] == partition_for(a.encode(), 3)
    assert s["points"] == s["matched"] == 1200 and not s["capped"]
    assert s["ts"][0] == T0 + 600 and s["ts"][-1] == T0 + 1799
    assert [s["ts"][i] for i, x in enumerate(s["anomaly"]) if x] == [T0 + i for i in sorted(spikes)]
    assert s["features"]["value"]["low"][0] == 99.0 and s["anomalies"] == 2
    assert [d["detector"] for d in s["detectors"]] == ["rarity_likelihood", "zscore"]
    assert s["detector"]["detector"] == "zscore" and s["detectors"][1]["from"] == T0 + 1500
    # centred on a time: at +- window/2
    status, s = call(api, "api/series", stream=a, at=str(T0 + 1000), window="600")
    assert s["points"] == 601 and s["ts"][0] == T0 + 700


def test_series_longer_than_the_limit_is_thinned_keeping_every_anomaly(recorded):
    settings, a, _, spikes = recorded
    api = ExploreAPI(settings, StreamReader(settings))
    status, s = call(api, "api/series", stream=a, limit="300", **{"from": str(T0), "to": str(T0 + N)})
    assert status == 200 and s["capped"] and s["stride"] >= 4 and s["matched"] == N
    assert s["points"] <= 300 + len(spikes) and sum(s["anomaly"]) == len(spikes)
    assert "every" in s["note"] and s["ts"] == sorted(s["ts"])


def test_multivariate_features_and_their_bands(recorded):
    settings, *_ = recorded
    api = ExploreAPI(settings, StreamReader(settings))
    status, s = call(api, "api/series", stream="pay.host", at=str(T0), window="1h")
    assert status == 200 and sorted(s["features"]) == ["cpu", "mem"]
    assert s["features"]["cpu"]["low"] == [0.4] and s["features"]["mem"]["low"] == [None]


def test_unknown_stream_answers_an_empty_series_saying_so(recorded):
    settings, *_ = recorded
    api = ExploreAPI(settings, StreamReader(settings))
    status, s = call(api, "api/series", stream="no.such.stream", at=str(T0), window="24h")
    assert status == 200 and s["empty"] and s["points"] == 0 and "no scored records" in s["note"]


@pytest.mark.parametrize(("query", "names"), [
    ({"window": "1h"}, "'stream' is required"),
    ({"stream": "a", "window": "9y"}, "'window' must be one of"),
    ({"stream": "a", "window": "40d"}, "between 1 s and 31 d"),
    ({"stream": "a", "from": "10", "to": "5"}, "'to' must be after 'from'"),
    ({"stream": "a", "from": "yesterday", "to": "5"}, "'from' must be Unix seconds or RFC 3339"),
    ({"stream": "a", "at": "nan"}, "'at' must be a finite time"),
    ({"stream": "a", "limit": "0"}, "'limit' must be an integer from 1"),
    ({"stream": "x" * 300}, "longer than 256"),
])
def test_bad_parameters_answer_400_naming_the_parameter(recorded, query, names):
    settings, *_ = recorded
    api = ExploreAPI(settings, StreamReader(settings))
    status, doc = call(api, "api/series", **query)
    assert status == 400 and names in doc["message"], doc


def test_incidents_of_the_stream_with_transitions_and_feedback(recorded):
    settings, a, b, _ = recorded
    api = ExploreAPI(settings, StreamReader(settings))
    status, doc = call(api, "api/incidents", stream=a, **{"from": str(T0), "to": str(T0 + N)})
    assert status == 200
    by_id = {i["incident_id"]: i for i in doc["incidents"]}
    assert sorted(by_id) == ["inc-1", "inc-2"]  # not B's
    one = by_id["inc-1"]
    assert [t["action"] for t in one["transitions"]] == ["opened", "feedback", "resolved"]
    assert one["feedback"] == [{"feedback": "ack", "by": "ann", "comment": None, "ts": T0 + 720,
                                "strict_steps": None}]
    assert one["opened_at"] == T0 + 700 and one["resolved_at"] == T0 + 760
    assert by_id["inc-2"]["resolved_at"] is None
    # a window after inc-1 resolved shows only the open one
    status, doc = call(api, "api/incidents", stream=a, **{"from": str(T0 + 800), "to": str(T0 + N)})
    assert [i["incident_id"] for i in doc["incidents"]] == ["inc-2"]


def test_streams_by_prefix(recorded):
    settings, a, b, _ = recorded
    api = ExploreAPI(settings, StreamReader(settings))
    status, doc = call(api, "api/streams", prefix="pay.")
    assert status == 200 and [s["stream"] for s in doc["streams"]] == sorted([a, b, "pay.host"])
    status, doc = call(api, "api/streams", prefix="pay.lat")
    assert [s["stream"] for s in doc["streams"]] == [a]
    assert doc["streams"][0]["last_ts"] == T0 + N - 1


def _feedback_records(settings) -> list[tuple[bytes, dict]]:
    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": unique("fb"),
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(settings.topic_feedback, p, 0) for p in range(3)])
    out = [(m.key(), orjson.loads(m.value())) for m in c.consume(100, 3) if not m.error()]
    c.close()
    return out


def test_feedback_is_published_keyed_by_stream_and_guarded(recorded):
    settings, a, *_ = recorded
    body = orjson.dumps({"incident_id": "inc-2", "stream": a, "kind": "false_positive", "by": "eve"})
    json_ct = {"Content-Type": "application/json"}
    api = ExploreAPI(settings, StreamReader(settings))
    assert call(api, "api/feedback", "POST", {}, body)[0] == 400  # not declared JSON
    status, doc = call(api, "api/feedback", "POST", json_ct, b'{"incident_id": "inc-2", "stream": "a", '
                       b'"kind": "silence"}')
    assert status == 400 and "'kind' must be one of" in doc["message"]
    guarded = ExploreAPI(settings, StreamReader(settings), token="t0ken-t0ken-t0ken")
    assert call(guarded, "api/feedback", "POST", json_ct, body)[0] == 401
    exposed = ExploreAPI(settings, StreamReader(settings), bind_host="0.0.0.0")
    assert call(exposed, "api/feedback", "POST", json_ct, body)[0] == 403
    assert _feedback_records(settings) == []  # nothing refused was published
    status, doc = call(guarded, "api/feedback", "POST",
                       {**json_ct, "Authorization": "Bearer t0ken-t0ken-t0ken"}, body)
    assert status == 202
    [(key, rec)] = poll(lambda: _feedback_records(settings), 30, "the published feedback")
    assert key == a.encode() and rec["kind"] == "false_positive" and rec["incident_id"] == "inc-2"
    assert rec["by"] == "eve" and isinstance(rec["ts"], float)


def test_standalone_explore_command_serves_page_and_api(recorded):
    settings, a, *_ = recorded
    port = free_port()
    env = {**os.environ, "PYNOMALY_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "PYNOMALY_TOPIC_SCORES": settings.topic_scores, "PYNOMALY_TOPIC_ALERTS": settings.topic_alerts}
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "explore", "--port", str(port)], env=env,
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}/explore"
        status, doc = poll(lambda: _try(base + "/api/series?" + urllib.parse.urlencode(
            {"stream": a, "from": T0, "to": T0 + 99})), 30, "the explore command to answer")
        assert status == 200 and doc["points"] == 100
        assert get_json(base + "/api/series?stream=")[0] == 400
        with urllib.request.urlopen(base, timeout=10) as resp:
            page = resp.read().decode()
            assert "uPlot.iife.min.js" in page and "default-src 'self'" in resp.headers["Content-Security-Policy"]
        with urllib.request.urlopen(base + "/static/uPlot.iife.min.js", timeout=10) as resp:
            assert resp.headers["Content-Type"].startswith("text/javascript") and len(resp.read()) > 40_000
        assert get_json(base + "/static/..%2Fexplore.py")[0] == 404
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)


def _try(url: str):
    try:
        return get_json(url)
    except OSError:
        time.sleep(0.2)
        return None
