"""A real Prometheus scrapes a worker under load; every dashboard query returns data.

Debian's ``prometheus`` server runs on 127.0.0.1 (free port, temporary storage, 1 s scrape
interval) against a ``pynomaly worker`` subprocess on the session's broker. Then each panel
query of every rendered dashboard goes through Prometheus's HTTP API, as Grafana would send
it, and must return at least one series.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.broker import free_port
from tests.observability.obs_support import ROOT, all_queries, concrete
from tests.support.kafka import producer

pytestmark = pytest.mark.integration

SCORE_STREAMS = ("host-00.cpu", "host-01.cpu")
RATE_WINDOW = "15s"  # what Grafana's $__rate_interval becomes with a 1 s scrape interval
# What makes a series exist, for the failure message when a panel comes back empty.
WIRING = {
    "pynomaly_stream_score": "create_app must build Metrics(registry, score_streams="
                             "load_metrics_settings(settings.extra).score_streams) and scoring must "
                             "call metrics.observe_stream_score(stream, verdict.score)",
    "pynomaly_consumer_lag_records": "create_app must call streams.web.register_worker_views",
}


def _api(base: str, path: str, **params: str) -> Any:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as r:
        doc = json.loads(r.read())
    assert doc["status"] == "success", doc
    return doc["data"]


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    return list(_api(base, "/api/v1/query", query=expr)["result"])


def _scalar(base: str, expr: str) -> float:
    result = _query(base, expr)
    return float(result[0]["value"][1]) if result else math.nan


def _start_prometheus(binary: str, config: Path, port: int, storage: Path,
                      request: pytest.FixtureRequest) -> str:
    log = (storage.parent / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={storage}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
         "--storage.tsdb.retention.time=1h"],
        stdout=log, stderr=subprocess.STDOUT,
    )

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()

    request.addfinalizer(stop)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((storage.parent / "prometheus.log").read_text()[-3000:])
        try:
            with urllib.request.urlopen(base + "/-/ready", timeout=1) as r:
                if r.status == 200:
                    return base
        except OSError:
            time.sleep(0.2)
    raise TimeoutError("prometheus did not become ready in 30s")


def _poll_readiness(base: str, worker: Any, timeout: float) -> list[tuple[int, str]]:
    """Distinct (status, reason) answers of /readyz until it says 200."""
    seen: list[tuple[int, str]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as r:
                answer = (r.status, json.loads(r.read())["reason"])
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                pytest.fail("the worker does not serve /readyz: create_app must call "
                            "streams.web.register_worker_views(app, metrics)")
            answer = (exc.code, json.loads(exc.read())["reason"])
        except OSError:
            time.sleep(0.1)  # web server not listening yet
            continue
        if not seen or seen[-1] != answer:
            seen.append(answer)
        if answer[0] == 200:
            return seen
        if worker.proc is not None and worker.proc.poll() is not None:
            raise RuntimeError(f"worker exited:\n{worker.log()[-3000:]}")
        time.sleep(0.1)
    raise TimeoutError(f"/readyz never said 200 within {timeout}s: {seen}\n{worker.log()[-3000:]}")


def _produce_load(bootstrap: str, topic: str, seconds: float, stop: threading.Event) -> dict[str, int]:
    """Events for 8 streams at about 400/s with spikes, plus a few malformed records."""
    p = producer(bootstrap)
    sent = {"valid": 0, "bad": 0}
    i = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end and not stop.is_set():
        for s in range(8):
            stream = f"host-{s:02d}.cpu"
            value = 50.0 + ((i * 7 + s * 3) % 11) / 5.0
            if i > 60 and i % 40 == 0:
                value += 500.0  # far outside the stream's spread: an anomaly after warm-up
            event = {"stream": stream, "ts": time.time(), "value": value}
            p.produce(topic, key=stream, value=orjson.dumps(event))
            sent["valid"] += 1
        if i % 50 == 0:
            p.produce(topic, key=b"bad", value=b"this is not json")
            sent["bad"] += 1
        i += 1
        p.poll(0)
        time.sleep(0.02)
    assert p.flush(30) == 0, "producer could not deliver every record"
    return sent


def test_dashboard_queries_return_data_from_a_live_worker(
    kafka_bootstrap: str, app_env: dict[str, str], start_worker: Any, tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus not found: apt-get update && apt-get install -y prometheus")
    web_port = free_port()
    env = {**app_env, "PYNOMALY_METRICS_SCORE_STREAMS": ",".join(SCORE_STREAMS),
           "PYNOMALY_WARMUP_EVENTS": "20"}
    worker = start_worker(env, wait_ready=0, web_port=web_port)
    readiness = _poll_readiness(f"http://127.0.0.1:{web_port}", worker, timeout=60)
    # /readyz said 503 with a reason while the worker joined its group, then 200.
    assert readiness[-1][0] == 200, readiness
    assert any(code == 503 and reason for code, reason in readiness), readiness
    worker.wait_for("Worker]: Ready", 30)

    config = tmp_path / "prometheus.yml"
    rules = ROOT / "deploy" / "prometheus" / "rules" / "pynomaly.rules.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{rules}']\n"
        "scrape_configs:\n"
        "  - job_name: pynomaly\n"
        "    scrape_interval: 1s\n"
        "    scrape_timeout: 1s\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{web_port}']}}]\n"
    )
    storage = tmp_path / "tsdb"
    storage.mkdir()
    base = _start_prometheus(binary, config, free_port(), storage, request)

    stop = threading.Event()
    request.addfinalizer(stop.set)
    sent = _produce_load(kafka_bootstrap, app_env["PYNOMALY_TOPIC_EVENTS"], 12.0, stop)

    # Wait until Prometheus has scraped the worker's final counts (every record processed).
    deadline = time.monotonic() + 45
    scored = bad = math.nan
    while time.monotonic() < deadline:
        scored = _scalar(base, "sum(pynomaly_events_scored_total)")
        bad = _scalar(base, 'sum(pynomaly_events_deadlettered_total{reason="not_json"})')
        if scored >= sent["valid"] and bad >= sent["bad"]:
            break
        time.sleep(1)
    assert scored == sent["valid"], f"scraped {scored} scored events, produced {sent['valid']}:\n" \
                                    f"{worker.log()[-3000:]}"
    assert _scalar(base, 'up{job="pynomaly"}') == 1
    # Still ready under load.
    with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/readyz", timeout=5) as r:
        assert r.status == 200, r.read()
    assert bad == sent["bad"]
    assert _scalar(base, "sum(pynomaly_anomalies_total)") > 0
    # One lag series per partition this (only) worker owns; all caught up once processed.
    events_lag = f'pynomaly_consumer_lag_records{{topic="{app_env["PYNOMALY_TOPIC_EVENTS"]}"}}'
    partitions = int(app_env["PYNOMALY_TOPIC_PARTITIONS"])
    assert _scalar(base, f"count({events_lag})") == partitions
    deadline = time.monotonic() + 15
    while _scalar(base, f"max({events_lag})") != 0 and time.monotonic() < deadline:
        time.sleep(1)
    assert _scalar(base, f"max({events_lag})") == 0
    assert _scalar(base, f"max_over_time(sum({events_lag})[2m:1s])") >= 0

    empty: list[str] = []
    queries = all_queries()
    assert len(queries) >= 25
    for board, title, expr in queries:
        result = _query(base, concrete(expr, RATE_WINDOW))
        if not result:
            # A range query over the load window, as Grafana draws it, before giving up.
            now = time.time()
            data = _api(base, "/api/v1/query_range", query=concrete(expr, RATE_WINDOW),
                        start=str(now - 60), end=str(now), step="1")
            if not data["result"]:
                hints = [h for name, h in WIRING.items() if name in expr]
                empty.append(f"{board} / {title}: {expr}" + "".join(f"\n    -> {h}" for h in hints))
    assert not empty, "panels without data:\n" + "\n".join(empty)

    # The service's own alert rules load and evaluate against real series without errors.
    groups = _api(base, "/api/v1/rules")["groups"]
    health = {r["name"]: r["health"] for g in groups for r in g["rules"]}
    assert health and set(health.values()) <= {"ok", "unknown"}, health
