"""Secrets never leave the process; the web server binds loopback; control needs the token.

With PYNOMALY_CONTROL_TOKEN set, the control endpoints answer 401 without the bearer token
or with a wrong one and work with it; /metrics and the health endpoints stay open; every
other path refuses a POST.

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
from tests.support.kafka import topic_env, unique

pytestmark = pytest.mark.faults

SASL_PASSWORD = "sasl-pw-Q7r2VxK9"
HMAC_KEY = "hmac-key-4mB8wZ1p"
SLACK_SECRET = "/services/T0SECRET/B0SECRET/S3cr3tT0k3nXXXXXXXXXXXX"
WEBHOOK_SECRET = "hook-secret-Lp0Rt5"
CONTROL_TOKEN = "ctl-token-Zx81Qm3v"
SECRETS = [SASL_PASSWORD, HMAC_KEY, SLACK_SECRET, "S3cr3tT0k3n", WEBHOOK_SECRET, CONTROL_TOKEN]
CONTROL = ("/incidents", "/silences", "/feedback")  # streams/alerting/control.py

ENV = {**topic_env(unique("secure")), "PYNOMALY_LOG_LEVEL": "debug",
       "PYNOMALY_KAFKA_SASL_USERNAME": "svc-pynomaly", "PYNOMALY_KAFKA_SASL_PASSWORD": SASL_PASSWORD,
       "PYNOMALY_STATE_HMAC_KEY": HMAC_KEY, "PYNOMALY_CHECKPOINT_INTERVAL_S": "0.5",
       # nothing listens on port 9: every notification attempt fails and is logged
       "PYNOMALY_SLACK_WEBHOOK_URL": "http://127.0.0.1:9" + SLACK_SECRET,
       "PYNOMALY_WEBHOOK_URL": "http://127.0.0.1:9/hook?token=" + WEBHOOK_SECRET,
       "PYNOMALY_WEBHOOK_SECRET": WEBHOOK_SECRET, "PYNOMALY_CONTROL_TOKEN": CONTROL_TOKEN,
       "PYNOMALY_QUIET_S": "5", "PYNOMALY_COOLDOWN_S": "0", "PYNOMALY_LATENESS_S": "0",
       "PYNOMALY_MAX_ATTEMPTS": "2", "PYNOMALY_DEADLINE_S": "3"}
PRESTART = [ENV]  # started ahead by tests/faults/conftest.py


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


def test_secrets_stay_out_and_the_web_server_takes_no_commands(kafka_bootstrap, start_worker):
    env, app_env = ENV, ENV
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
        # notification attempts fail (their URLs in hand), retry and give up
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sum(
                worker.log().count(s) for s in ("giving up on", "not delivered after")) < 2:
            time.sleep(0.2)
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
    listen, anonymous, wrong, right, open_get = surface
    report("web-surface", listen=sorted(listen), anonymous_post=anonymous, wrong_token=wrong,
           right_token=right, open_get=open_get)
    # 0100007F is 127.0.0.1 in /proc/net/tcp's little-endian hex; 00000000 would be 0.0.0.0
    assert listen == {"0100007F"}, listen
    assert all(anonymous[p] == 401 for p in CONTROL), anonymous
    assert all(code == 401 for code in wrong.values()), wrong
    assert right == {"GET /incidents": 200, "POST /silences": 201}, right
    assert all(code == 200 for code in open_get.values()), open_get
    # no other path changes state: a POST is refused (404 unknown / 405 read-only)
    assert all(code in (404, 405) for p, code in anonymous.items() if p not in CONTROL), anonymous

def fetch(port: int, path: str, method: str = "GET") -> str:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=None)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (loopback test server)
            return resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} " + exc.read().decode("utf-8", "replace")


def status(port: int, path: str, method: str = "GET", token: str | None = None,
           body: bytes | None = None) -> int:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, headers=headers,
                                 data=body if body is not None else (b"{}" if method == "POST" else None))
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (loopback test server)
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def web_surface(port: int) -> tuple[set[str], dict[str, int], dict[str, int], dict[str, int],
                                     dict[str, int]]:
    """Listening addresses of the web port, and what each kind of caller gets."""
    paths = ("/", "/metrics", "/healthz", "/readyz", "/router/", "/table/", "/assignment/",
             "/signal/", *CONTROL)
    anonymous = {p: status(port, p, "POST") for p in paths}
    wrong = {f"{m} {p}": status(port, p, m, token="not-the-token") for m, p in
             (("GET", "/incidents"), ("GET", "/silences"), ("POST", "/silences"), ("POST", "/feedback"))}
    silence = orjson.dumps({"stream": "secure.*", "duration_s": 60, "comment": "fault suite"})
    right = {"GET /incidents": status(port, "/incidents", token=CONTROL_TOKEN),
             "POST /silences": status(port, "/silences", "POST", CONTROL_TOKEN, silence)}
    open_get = {p: status(port, p) for p in ("/metrics", "/healthz")}
    return listen_addresses(port), anonymous, wrong, right, open_get
