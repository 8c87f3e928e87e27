"""Issue 13, finding 4, through live workers: the container default (bind 0.0.0.0) without a
token is refused at start-up, and a cross-site ``text/plain`` POST (what any web page can
make a browser send without a CORS preflight) creates no silence on a worker without a
token on loopback. On main the first worker started and served the control API to
anyone; the second answered 201 and held the silence.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import orjson
import pytest

from streams.broker import free_port
from tests.support.kafka import WorkerProcess, topic_env, unique

pytestmark = pytest.mark.faults

OPEN_ENV = topic_env(unique("xsite"))
PRESTART = {"test_a_cross_site_post_creates_no_silence": OPEN_ENV}


def test_a_worker_bound_beyond_loopback_without_a_token_refuses_to_start(kafka_bootstrap, tmp_path):
    env = {**topic_env(unique("bind")), "PYNOMALY_WEB_HOST": "0.0.0.0"}  # the image's default
    worker = WorkerProcess(kafka_bootstrap, env, tmp_path, free_port()).start(wait_ready=0)
    try:
        deadline = time.monotonic() + 60
        while worker.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        code = worker.proc.poll()
    finally:
        worker.stop()
    assert code not in (None, 0), f"the worker served on 0.0.0.0 without a token:\n{worker.log()[-2000:]}"
    assert "PYNOMALY_CONTROL_TOKEN" in worker.log()


def request(port: int, path: str, method: str = "GET", body: bytes | None = None,
            content_type: str | None = None) -> tuple[int, bytes]:
    headers = {"Content-Type": content_type} if content_type else {}
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (loopback test server)
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_a_cross_site_post_creates_no_silence(start_worker):
    worker = start_worker(OPEN_ENV)
    port = int(worker.env["PYNOMALY_WEB_PORT"])
    body = orjson.dumps({"stream": "payments.*", "duration_s": 600})
    codes = {ct: request(port, "/silences", "POST", body, ct)[0]
             for ct in ("text/plain", "application/x-www-form-urlencoded")}
    status, listed = request(port, "/silences")
    assert codes == {"text/plain": 415, "application/x-www-form-urlencoded": 415}, codes
    assert status == 200 and orjson.loads(listed) == []
    # the same request as JSON works (loopback, no token configured)
    assert request(port, "/silences", "POST", body, "application/json")[0] == 201
    assert request(port, "/silences", "POST", orjson.dumps({"stream": "**", "duration_s": 60}),
                   "application/json")[0] == 400
