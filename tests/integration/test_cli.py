"""The CLI against the real broker: broker lifecycle, produce, tail and the demo."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from streams.broker import free_port, port_open
from tests.support.kafka import REPO, read_all

pytestmark = pytest.mark.integration


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_help_names_every_command():
    out = cli("--help").stdout
    for cmd in COMMANDS:
        assert cmd in out
    for cmd in ("broker", "worker", "produce", "tail", "demo", "feedback"):
        assert cli(cmd, "--help").returncode == 0


# Each command is also run for real: broker, produce, tail, demo below; worker in every
# integration test (tests/support/kafka.py) and its settings check below; feedback and
# evaluate below; settings and detectors below; explore in tests/explore/test_explore_api.py.
COMMANDS = ("broker", "worker", "produce", "tail", "demo", "feedback", "evaluate", "detectors", "settings",
            "explore")


def test_every_command_is_listed_and_run_by_a_test():
    import re

    from streams.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)
    # Workers run as `streams.cli worker` in tests/support/kafka.py, explore in tests/explore.
    sources = "".join(p.read_text() for p in (REPO / "tests").rglob("*.py"))
    for cmd in COMMANDS:
        assert re.search(rf'"streams.cli", "{cmd}"|cli\("{cmd}"', sources), f"{cmd} is never run"


def test_settings_command_prints_every_setting():
    """One line per setting: its variable, its default and its description."""
    import dataclasses

    from streams.alerting.settings import AlertingSettings
    from streams.settings import Settings

    res = cli("settings")
    assert res.returncode == 0, res.stderr
    lines = {line.split()[0]: line for line in res.stdout.splitlines() if line.strip()}
    for cls in (Settings, AlertingSettings):
        for f in dataclasses.fields(cls):
            if f.name == "extra":
                continue
            var = f"[[alerting.{f.name}]]" if f.name in ("routes", "silences") else f"PYNOMALY_{f.name.upper()}"
            assert var in lines, f"{var} is missing from `pynomaly settings`"
            assert f.metadata["doc"] in lines[var], f"{var}: its description is missing"
    defaults = Settings()
    assert lines["PYNOMALY_WEB_PORT"].split()[1] == str(defaults.web_port)
    assert lines["PYNOMALY_THRESHOLD"].split()[1] == str(defaults.threshold)


def test_detectors_command_lists_every_registered_detector():
    from detectors.registry import names

    res = cli("detectors")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == list(names()) and "rarity_likelihood" in res.stdout


def test_feedback_command_publishes_the_record(kafka_bootstrap, app_env):
    env = {**app_env, "PYNOMALY_KAFKA_BOOTSTRAP": kafka_bootstrap}
    res = cli("feedback", "inc-0123", "--label", "false_positive", "--stream", "payments",
              "--by", "alice", "--comment", "deploy", env=env)
    assert res.returncode == 0, res.stderr
    got = read_all(kafka_bootstrap, app_env["PYNOMALY_TOPIC_FEEDBACK"], expect=1, timeout=20, idle=1)
    assert len(got) == 1
    assert {k: got[0][k] for k in ("kind", "incident_id", "stream", "by", "comment")} == {
        "kind": "false_positive", "incident_id": "inc-0123", "stream": "payments", "by": "alice",
        "comment": "deploy"}


def test_evaluate_command_scores_a_csv(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rows = ["timestamp,value"] + [f"2026-01-01 00:{i // 60:02d}:{i % 60:02d},{100.0 if i == 250 else 1.0 + (i % 3) * 0.01}"
                                  for i in range(300)]
    (data / "flat.csv").write_text("\n".join(rows) + "\n")
    res = cli("evaluate", str(data), "--out", str(tmp_path / "out"), "--jobs", "1", timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    scored = next((tmp_path / "out").rglob("*flat*.csv"))
    lines = scored.read_text().splitlines()
    assert len(lines) == 301  # a header and one row per input row


def test_invalid_setting_stops_startup_with_a_clear_message():
    res = cli("worker", env={"PYNOMALY_WEB_PORT": "not-a-port"})
    assert res.returncode == 2
    assert "PYNOMALY_WEB_PORT" in res.stderr and "expected" in res.stderr
    assert "Traceback" not in res.stderr


def test_broker_command_listens_and_stops_cleanly_on_sigterm():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "broker", "--port", str(port)],
                            stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        deadline = time.monotonic() + 20
        while not port_open("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert port_open("127.0.0.1", port)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert not port_open("127.0.0.1", port)
    finally:
        proc.kill()


def test_produce_csv_and_ndjson_then_tail(kafka_bootstrap, app_env, tmp_path):
    csv_file = tmp_path / "cpu.csv"
    csv_file.write_text("timestamp,value\n2026-11-26 10:00:00,1.5\n2026-11-26T10:01:00Z,2.5\n1764151380,3.5\n")
    nd = tmp_path / "events.ndjson"
    nd.write_text('{"stream": "m", "values": {"a": 1}}\n{"stream": "n", "value": 4}\n')
    env = {**app_env, "PYNOMALY_KAFKA_BOOTSTRAP": kafka_bootstrap}
    res = cli("produce", str(csv_file), str(nd), "--quiet", env=env)
    assert res.returncode == 0, res.stderr
    assert "published 5 events" in res.stderr
    got = read_all(kafka_bootstrap, app_env["PYNOMALY_TOPIC_EVENTS"], expect=5, timeout=20, idle=1)
    assert sorted(d["stream"] for d in got) == ["cpu", "cpu", "cpu", "m", "n"]
    assert {d["ts"] for d in got if d["stream"] == "cpu"} == {1795687200.0, 1795687260.0, 1764151380.0}
    res = cli("tail", "--topic", app_env["PYNOMALY_TOPIC_EVENTS"], "--from-beginning", "--limit", "5", env=env)
    assert res.returncode == 0 and len(res.stdout.strip().splitlines()) == 5


def test_produce_reports_a_bad_line_with_file_and_line_number(kafka_bootstrap, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,value\n2026-11-26T10:00:00Z,abc\n")
    res = cli("produce", str(bad), env={"PYNOMALY_KAFKA_BOOTSTRAP": kafka_bootstrap})
    assert res.returncode == 2 and "bad.csv:2" in res.stderr and "not a number" in res.stderr


def test_demo_shows_detected_anomalies(tmp_path):
    port = free_port()
    res = cli("demo", "--bootstrap", f"127.0.0.1:{port}", "--web-port", str(free_port()),
              "--duration", "30", "--ticks-per-second", "10",
              env={"PYNOMALY_DATA_DIR": str(tmp_path)}, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "<- injected" in res.stdout, res.stdout[-2000:] + res.stderr[-2000:]
    assert "stopped everything it started" in res.stderr
    assert not port_open("127.0.0.1", port)
