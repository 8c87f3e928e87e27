"""Secrets never leave the process; the web server binds loopback and takes no commands.

There are no control endpoints yet (so no bearer token to check): every POST is refused.

A worker runs at debug log level with a SASL password, a checkpoint HMAC key, a Slack
webhook URL (its path is the secret) and a webhook signing secret, and is fed valid,
invalid and anomalous input, so it logs, counts, dead-letters and tries to notify. None
of the secrets may appear in its full log, /metrics, its web pages, or any output record.
"""

from __future__ import annotations

import math
import time
import urllib.error
import urllib.request

import orjson
import pytest

from tests.faults.support import Load, Tail, read_raw, report

pytestmark = pytest.mark.faults

SASL_PASSWORD = "sasl-pw-Q7r2VxK9"
HMAC_KEY = "hmac-key-4mB8wZ1p"
SLACK_SECRET = "/services/T0SECRET/B0SECRET/S3cr3tT0k3nXXXXXXXXXXXX"
WEBHOOK_SECRET = "hook-secret-Lp0Rt5"
SECRETS = [SASL_PASSWORD, HMAC_KEY, SLACK_SECRET, "S3cr3tT0k3n", WEBHOOK_SECRET]


def listen_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port`` (from /proc/net/tcp{,6})."""
    found = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(path, encoding="ascii") as fh:
            for line in list(fh)[1:]:
                local, state = line.split()[1], line.split()[3]
                addr, p = local.split(":")
                if int(p, 16) == port and state == "0A":  # 0A = LISTEN
                    found.add(addr)
    return found


def test_secrets_stay_out_and_the_web_server_takes_no_commands(kafka_bootstrap, app_env, start_worker):
    env = {**app_env, "PYNOMALY_LOG_LEVEL": "debug",
           "PYNOMALY_KAFKA_SASL_USERNAME": "svc-pynomaly", "PYNOMALY_KAFKA_SASL_PASSWORD": SASL_PASSWORD,
           "PYNOMALY_STATE_HMAC_KEY": HMAC_KEY, "PYNOMALY_CHECKPOINT_INTERVAL_S": "0.5",
           # nothing listens on port 9: every notification attempt fails and is logged
           "PYNOMALY_SLACK_WEBHOOK_URL": "http://127.0.0.1:9" + SLACK_SECRET,
           "PYNOMALY_WEBHOOK_URL": "http://127.0.0.1:9/hook?token=" + WEBHOOK_SECRET,
           "PYNOMALY_WEBHOOK_SECRET": WEBHOOK_SECRET,
           "PYNOMALY_QUIET_S": "5", "PYNOMALY_COOLDOWN_S": "0", "PYNOMALY_LATENESS_S": "0",
           "PYNOMALY_MAX_ATTEMPTS": "2", "PYNOMALY_DEADLINE_S": "3"}
    worker = start_worker(env)
    port = int(worker.env["PYNOMALY_WEB_PORT"])
    load = Load(kafka_bootstrap, app_env["PYNOMALY_TOPIC_EVENTS"])
    dead = Tail(kafka_bootstrap, app_env["PYNOMALY_TOPIC_DEADLETTER"]).start()
    try:
        for i in range(200):
            value = 100 + 2 * math.sin(i / 5) + (80 if 120 <= i < 123 else 0)
            load.event("secure.latency", i, round(value, 3))
        for bad in (b"not json", b'{"stream": 5}', b'{"stream": "x", "value": "NaN"}'):
            load.send(b"bad", bad)
        load.flush()
        dead.wait(3, 60)
        time.sleep(5)  # notification attempts fail, retry and give up meanwhile
        pages = {path: fetch(port, path) for path in ("/metrics", "/", "/healthz", "/readyz",
                                                      "/router/", "/table/", "/assignment/")}
        surface = web_surface(port)
        outputs = []
        for topic in ("SCORES", "ANOMALIES", "DEADLETTER", "ALERTS"):
            outputs += [v or b"" for v, _ in read_raw(kafka_bootstrap, app_env[f"PYNOMALY_TOPIC_{topic}"])]
    finally:
        dead.stop()
    log = worker.log()
    places = {"log": log, **pages, "records": b"\n".join(outputs).decode("utf-8", "replace")}
    leaks = [(where, s) for where, text in places.items() for s in SECRETS if s in text]
    report("secrets", log_bytes=len(log), pages=len(pages), output_records=len(outputs), leaks=len(leaks))
    assert not leaks, leaks
    listen, statuses = surface
    report("web-surface", listen=sorted(listen), post_statuses=statuses)
    # 0100007F is 127.0.0.1 in /proc/net/tcp's little-endian hex; 00000000 would be 0.0.0.0
    assert listen == {"0100007F"}, listen
    # no endpoint changes state: every POST is refused (404 unknown / 405 read-only)
    assert all(code in (404, 405) for code in statuses.values()), statuses
    assert "pynomaly_events_deadlettered_total" in pages["/metrics"]
    assert "DEBUG" in log  # the harshest level was really on
    assert any(orjson.loads(v).get("sink") for v in outputs if v.startswith(b"{")) or \
        "slack" in log.lower(), "no notification was attempted, so the URLs were never exercised"


def fetch(port: int, path: str, method: str = "GET") -> str:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=None)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (loopback test server)
            return resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} " + exc.read().decode("utf-8", "replace")


def post_status(port: int, path: str) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST", data=b"{}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def web_surface(port: int) -> tuple[set[str], dict[str, int]]:
    """(listening addresses of the web port, status of a POST to each known path)."""
    paths = ("/", "/metrics", "/healthz", "/readyz", "/router/", "/table/", "/assignment/",
             "/signal/", "/control/pause", "/silences")
    return listen_addresses(port), {path: post_status(port, path) for path in paths}
