"""A real worker under the containers' constraints: read-only root, only /tmp writable.

The k8s pod (readOnlyRootFilesystem, emptyDir /tmp and data dir) and the compose worker
(read_only, tmpfs) promise the worker needs nothing else. Here the worker runs in a private
mount namespace where / is remounted read-only and /tmp is a fresh tmpfs, against the
session's broker; then the Dockerfile's HEALTHCHECK command is run against it, and it must
stop on SIGTERM within the grace periods the manifests give it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from streams.broker import free_port
from tests.deploy.support import COMPOSE_FILE, K8S, ROOT
from tests.deploy.test_dockerfile import healthcheck_argv, instructions, stages
from tests.support.kafka import topic_env, unique

# The writable tmpfs stands in for the pod's emptyDir. It is mounted on a directory made
# for the test rather than on /tmp, which may hold this very checkout (CI clones into mktemp -d).
WRITABLE = tempfile.mkdtemp(prefix="pynomaly-ro-", dir="/var/tmp")
RO_ROOT = (f"mount --bind / / && mount -o remount,bind,ro / && "
           f"mount -t tmpfs -o size=256m tmpfs {WRITABLE}")


def can_make_read_only_root() -> bool:
    try:
        probe = subprocess.run(["unshare", "-m", "sh", "-c", f"{RO_ROOT} && ! touch /probe-ro"],
                               capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not can_make_read_only_root(),
                       reason="needs `unshare -m` and mount privileges (root) to build a read-only root"),
]


def status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def grace_periods() -> tuple[float, float]:
    deployment = yaml.safe_load((K8S / "base" / "deployment.yaml").read_text())
    k8s = float(deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])
    compose = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["worker"]["stop_grace_period"]
    assert compose.endswith("s")
    return k8s, float(compose[:-1])


def test_worker_runs_on_a_read_only_root(kafka_bootstrap: str, tmp_path: Path) -> None:
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(Path.home()),  # read-only, as /home/pynomaly is in the pod
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYNOMALY_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "PYNOMALY_DEV_BROKER": "true",
        "PYNOMALY_WEB_HOST": "0.0.0.0",
        "PYNOMALY_WEB_PORT": str(port),
        "PYNOMALY_DATA_DIR": f"{WRITABLE}/pynomaly-data",  # the emptyDir's stand-in
        "TMPDIR": WRITABLE,
        "PYNOMALY_STATE_HMAC_KEY": "read-only-root-test-key",
        # the image binds 0.0.0.0: deployments give the control API a token (issue 13)
        "PYNOMALY_CONTROL_TOKEN": "read-only-root-test-token",
        **topic_env(unique("ro"), partitions=2),
    }
    log = tmp_path / "worker.log"
    cmd = f"{RO_ROOT} && exec {sys.executable} -m streams.cli worker"
    with log.open("wb") as out:
        proc = subprocess.Popen(["unshare", "-m", "sh", "-c", cmd], env=env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while status(port, "/readyz") != 200:
            assert proc.poll() is None, f"worker exited {proc.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"never ready:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        assert status(port, "/healthz") == 200 and status(port, "/metrics") == 200
        # The image's HEALTHCHECK, run as Docker would, against the live worker.
        final = stages(instructions((ROOT / "Dockerfile").read_text()))[-1]
        argv = healthcheck_argv(final)
        check = subprocess.run([sys.executable, *argv[1:]], capture_output=True, timeout=20,
                               env={"PATH": env["PATH"], "PYNOMALY_WEB_PORT": str(port)})
        assert check.returncode == 0, check.stderr
        assert "Read-only file system" not in log.read_text()
    finally:
        started = time.monotonic()
        proc.terminate()
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    stop_s = time.monotonic() - started
    k8s_grace, compose_grace = grace_periods()
    assert stop_s < min(k8s_grace, compose_grace), f"SIGTERM took {stop_s:.1f}s"
