"""The worker's web views served by a real Faust (aiohttp) web server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import faust
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from streams.metrics import Metrics
from streams.web import faust_readiness, register_views


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Metrics, dict[str, object]]]:
    """A Faust app with only its web server running (no broker needed for these views)."""
    port = _free_port()
    app = faust.App(
        "pynomaly-web-test", broker="kafka://127.0.0.1:1", web_port=port,
        web_bind="127.0.0.1", web_host="127.0.0.1", web_in_thread=False,
        datadir=str(tmp_path), autodiscover=False,
    )
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    state: dict[str, object] = {"ready": False, "reason": "no partitions assigned yet"}

    def readiness() -> tuple[bool, str]:
        if state.get("boom"):
            raise RuntimeError("secret-token-123 in a message that must not leak")
        return bool(state["ready"]), str(state["reason"])

    def before_scrape() -> None:
        if state.get("scrape_boom"):
            raise RuntimeError("sampling failed")
        metrics.active_streams.inc()  # visible proof that the hook ran before exposition

    register_views(app, registry, readiness, before_scrape=before_scrape)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(app.web.start())
    # Serve from a background thread so blocking urllib calls can reach the server.
    import threading

    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{port}", metrics, state
    finally:
        asyncio.run_coroutine_threadsafe(app.web.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        t.join(5)
        loop.close()


def test_metrics_endpoint_exposes_the_injected_registry(served) -> None:
    base, metrics, _ = served
    metrics.events_scored.inc(41)
    metrics.anomalies.labels(severity="error").inc()
    status, ctype, body = _get(base + "/metrics")
    assert status == 200
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(body)
        for s in fam.samples
    }
    assert samples[("pynomaly_events_scored_total", ())] == 41
    assert samples[("pynomaly_anomalies_total", (("severity", "error"),))] == 1
    # Only our registry: no process/platform collectors from the global default registry.
    assert "process_cpu_seconds_total" not in body
    assert samples[("pynomaly_active_streams", ())] == 1


def test_metrics_survive_a_failing_sampler(served) -> None:
    base, _, state = served
    _get(base + "/metrics")
    state["scrape_boom"] = True
    status, _, body = _get(base + "/metrics")
    assert status == 200
    assert "pynomaly_active_streams 1.0" in body  # second refresh failed; last value served


def test_healthz_and_readyz(served) -> None:
    base, _, state = served
    status, _, body = _get(base + "/healthz")
    assert status == 200 and json.loads(body)["status"] == "alive"

    status, _, body = _get(base + "/readyz")
    assert status == 503
    assert json.loads(body) == {"ready": False, "reason": "no partitions assigned yet"}

    state.update(ready=True, reason="partitions assigned")
    status, _, body = _get(base + "/readyz")
    assert status == 200 and json.loads(body)["ready"] is True

    state["boom"] = True
    status, _, body = _get(base + "/readyz")
    assert status == 503
    assert "RuntimeError" in body and "secret-token" not in body


def test_faust_readiness_not_ready_before_start(tmp_path: Path) -> None:
    app = faust.App("pynomaly-ready-test", broker="kafka://127.0.0.1:1", datadir=str(tmp_path))
    ready, reason = faust_readiness(app)()
    assert (ready, reason) == (False, "worker is starting")
