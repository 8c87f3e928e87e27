"""`pynomaly demo` on Ctrl-C: consumers, then the worker, then the broker; no error flood.

Ctrl-C in a terminal signals the whole foreground process group, so the test starts the
demo in its own group and sends SIGINT to all of it, as a terminal does.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.broker import free_port, port_open
from tests.support.kafka import REPO

pytestmark = pytest.mark.integration

# What aiokafka and Faust log when the broker went away under a client.
CONNECTION_ERRORS = re.compile(
    r"Unable connect to|Unable to update metadata|KafkaConnectionError|Connection refused|"
    r"ConnectionError|NodeNotReady|Failed fetch messages|Traceback", re.IGNORECASE)


def test_ctrl_c_stops_consumers_before_the_broker_without_connection_errors(tmp_path: Path) -> None:
    port, web_port = free_port(), free_port()
    env = {**os.environ, "PYNOMALY_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}", "PYNOMALY_DATA_DIR": str(tmp_path),
           "PYNOMALY_APP_ID": "demo-shutdown", "PYTHONUNBUFFERED": "1"}
    out_path = tmp_path / "demo.out"
    with out_path.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "demo", "--streams", "5",
                                 "--web-port", str(web_port)], env=env, cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        # running: broker up, worker scoring, watchers and producer connected
        while "| scored " not in out_path.read_text() or " scored 0 " in _last_status(out_path):
            assert proc.poll() is None, out_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "the demo never scored anything:\n" + out_path.read_text()[-3000:]
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = out_path.read_text()
    worker_log = (tmp_path / "demo-worker.log").read_text(errors="replace")
    assert code == 0, output[-3000:]
    assert "demo: stopped everything it started" in output
    assert not CONNECTION_ERRORS.findall(output), output[-3000:]
    assert not CONNECTION_ERRORS.findall(worker_log), worker_log[-3000:]
    assert not port_open("127.0.0.1", port)  # the broker it started is gone
    assert not port_open("127.0.0.1", web_port)  # and so is the worker


def _last_status(path: Path) -> str:
    lines = [line for line in path.read_text().splitlines() if "| scored " in line]
    return lines[-1] if lines else ""
