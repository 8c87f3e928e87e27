"""A system under test as a child process: readiness, CPU time and peak RSS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

try:
    import psutil
except ImportError:  # optional: /proc gives the same figures on Linux
    psutil = None

REPO = Path(__file__).resolve().parents[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (threads included)."""
    if psutil is not None:
        t = psutil.Process(pid).cpu_times()
        return float(t.user + t.system)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size (VmHWM) in MiB; psutil has no peak figure on Linux."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


class Child:
    """Runs ``python -m module args`` with ``env``; output goes to a log file."""

    def __init__(self, module: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.started = time.time()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args], env={**os.environ, **env}, cwd=REPO,
            stdout=self._log, stderr=subprocess.STDOUT,
        )

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, marker: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.text():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.proc.args} exited:\n{self.text()[-3000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"no {marker!r} within {timeout}s:\n{self.text()[-3000:]}")

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def peak_rss_mb(self) -> float:
        return peak_rss_mb(self.proc.pid)

    def stop(self, timeout: float = 5.0) -> None:
        # Figures are read before stopping; a slow graceful shutdown only costs wall time.
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
