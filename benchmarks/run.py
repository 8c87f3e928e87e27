"""Benchmark runner: ``python -m benchmarks.run [--quick] [--json FILE]``.

Starts the embedded broker, preloads events, then measures in turn
(a) a bare aiokafka pass-through (the ceiling), (b) a naive Faust + River agent and
(c) pynomaly's worker, each as its own process reading the same input; then per-stream
state costs. Prints a table and optionally writes every figure as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from benchmarks import kafka
from benchmarks.procs import Child
from benchmarks.stats import latency_ms, throughput
from streams.broker import EmbeddedBroker, free_port
from streams.settings import Settings

PARTITIONS = 8
EXTRA_ENV: dict[str, str] = {}
READY = {"aiokafka": "ready", "faust": "Worker]: Ready"}


@dataclasses.dataclass(frozen=True)
class Plan:
    events: int
    streams: int
    per_record: int  # events per record in the batched runs
    naive_events: int  # (b) is slow: it is measured on the first events only
    paced_rate: float
    paced_seconds: float
    state_sizes: tuple[int, ...]


QUICK = Plan(10_000, 100, 100, 1_500, 10_000, 1.5, (100_000,))
FULL = Plan(100_000, 1_000, 100, 20_000, 10_000, 10.0, (100_000, 1_000_000))
# The acceptance check of the performance issue: 200,000 events over 10,000 streams.
CHECK = Plan(200_000, 10_000, 100, 20_000, 10_000, 10.0, (100_000, 1_000_000))
PLANS = {"quick": QUICK, "full": FULL, "check": CHECK}


@dataclasses.dataclass
class Result:
    name: str
    events: int
    steady_eps: float = math.nan
    cold_eps: float = math.nan
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    peak_rss_mb: float = math.nan
    cpu_us_per_event: float = math.nan
    startup_s: float = math.nan
    outputs: int = 0  # output records read; fewer than ``events`` fails the run


Starter = Callable[[str, str, str, Path], tuple[Child, str]]


def start_passthrough(bootstrap: str, src: str, out: str, tmp: Path) -> tuple[Child, str]:
    group = kafka.unique("bench-pass")
    return Child("benchmarks.passthrough", [bootstrap, src, out, group], {},
                 tmp / f"{group}.log"), READY["aiokafka"]


def start_naive(bootstrap: str, src: str, out: str, tmp: Path) -> tuple[Child, str]:
    app = kafka.unique("bench-naive")
    env = {"BENCH_BOOTSTRAP": bootstrap, "BENCH_IN": src, "BENCH_OUT": out, "BENCH_APP": app,
           "BENCH_WEB_PORT": str(free_port()), "BENCH_DATADIR": str(tmp / app)}
    return Child("benchmarks.naive_faust", ["worker", "-l", "info"], env,
                 tmp / f"{app}.log"), READY["faust"]


def start_worker(bootstrap: str, src: str, out: str, tmp: Path) -> tuple[Child, str]:
    app = kafka.unique("bench-pyn")
    env = {
        "PYNOMALY_KAFKA_BOOTSTRAP": bootstrap, "PYNOMALY_DEV_BROKER": "true",
        "PYNOMALY_APP_ID": app, "PYNOMALY_TOPIC_EVENTS": src, "PYNOMALY_TOPIC_SCORES": out,
        "PYNOMALY_TOPIC_ANOMALIES": f"{app}.anomalies",
        "PYNOMALY_TOPIC_DEADLETTER": f"{app}.deadletter",
        "PYNOMALY_TOPIC_ALERTS": f"{app}.alerts", "PYNOMALY_TOPIC_FEEDBACK": f"{app}.feedback",
        "PYNOMALY_TOPIC_STATE": f"{app}.state",
        "PYNOMALY_TOPIC_PARTITIONS": str(PARTITIONS), "PYNOMALY_WEB_PORT": str(free_port()),
        "PYNOMALY_DATA_DIR": str(tmp / app), "PYNOMALY_LOG_LEVEL": "info",
        "PYNOMALY_SESSION_TIMEOUT_S": "3", **EXTRA_ENV, "PYNOMALY_HEARTBEAT_INTERVAL_S": "0.5",
    }
    return Child("streams.cli", ["worker"], env, tmp / f"{app}.log"), READY["faust"]


def start_worker_zscore(bootstrap: str, src: str, out: str, tmp: Path) -> tuple[Child, str]:
    """The worker with the cheapest detector, for a figure that isolates the pipeline."""
    EXTRA_ENV["PYNOMALY_DETECTOR"] = "zscore"
    try:
        return start_worker(bootstrap, src, out, tmp)
    finally:
        del EXTRA_ENV["PYNOMALY_DETECTOR"]


def settle(child: Child, timeout: float = 60.0) -> None:
    """Wait until the system is idle (catching up after the preloaded burst, e.g. on its
    incidents topic, is not steady-state latency): CPU under 10% for half a second."""
    deadline = time.time() + timeout
    last = child.cpu()
    while time.time() < deadline:
        time.sleep(0.5)
        now = child.cpu()
        if now - last < 0.05:
            return
        last = now


def measure(name: str, start: Starter, bootstrap: str, plan: Plan, expect: int, tmp: Path,
            per_record: int = 1, pace: bool = False) -> Result:
    """Preload ``expect`` events into a fresh topic, start a system on it and measure until
    ``expect`` outputs are written.

    With ``pace``, the now warm system is then offered ``paced_rate`` events/s for
    ``paced_seconds`` on the same topic, each event stamped with its produce time: that
    phase gives the latency figures.
    """
    src, out = kafka.unique("bench-in"), kafka.unique("bench-out")
    kafka.create_topics(bootstrap, [src, out], PARTITIONS)
    kafka.preload(bootstrap, src, expect, plan.streams, per_record)
    reader = kafka.OutputReader(bootstrap, out)
    child, ready = start(bootstrap, src, out, tmp)
    res = Result(name, expect)
    since = math.inf
    try:
        child.wait_for(ready, 90)
        res.startup_s = time.time() - child.started
        cpu0 = child.cpu()
        got = reader.wait(expect, timeout=float(os.environ.get("BENCH_TIMEOUT_S", "600")))
        res.cpu_us_per_event = (child.cpu() - cpu0) / max(got, 1) * 1e6
        if pace and got >= expect:
            settle(child)
            sent, since = kafka.paced(bootstrap, src, plan.paced_rate, plan.paced_seconds,
                                      plan.streams)
            reader.wait(expect + sent, timeout=120)
        res.peak_rss_mb = child.peak_rss_mb()
    finally:
        child.stop()
        records = reader.close()
    res.outputs = len(records)
    if len(records) < expect:
        print(f"error: {name} wrote {len(records)} of {expect} outputs", file=sys.stderr)
    res.steady_eps, res.cold_eps = throughput([ms for ms, _ in records[:expect]])
    if pace:
        res.p50_ms, res.p99_ms = latency_ms(records, since)
    print(table([res]).splitlines()[-1], file=sys.stderr, flush=True)  # survives a later crash
    return res


def state_costs(plan: Plan) -> list[dict[str, Any]]:
    # The targets are about the default detector; zscore (the cheapest) for comparison.
    default = Settings().detector
    rows = [_state(["--streams", str(n), "--detector", default]) for n in plan.state_sizes]
    if default != "zscore":
        rows.append(_state(["--streams", str(plan.state_sizes[-1]), "--detector", "zscore"]))
    rows.append(_state(["--streams", "50", "--detector", "hst", "--no-checkpoint"]))
    return rows


def _state(args: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "benchmarks.state", *args], check=True,
                         capture_output=True, cwd=Path(__file__).resolve().parents[1])
    return dict(orjson.loads(out.stdout.splitlines()[-1]))


def fmt(v: float, digits: int = 0) -> str:
    return "-" if isinstance(v, float) and math.isnan(v) else f"{v:,.{digits}f}"


def table(results: list[Result]) -> str:
    head = ("system", "events", "ev/s steady", "ev/s w/ cold", "p50 ms", "p99 ms",
            "peak RSS MB", "CPU us/ev", "start s")
    rows = [head] + [(r.name, fmt(r.events), fmt(r.steady_eps), fmt(r.cold_eps), fmt(r.p50_ms, 1),
                      fmt(r.p99_ms, 1), fmt(r.peak_rss_mb), fmt(r.cpu_us_per_event),
                      fmt(r.startup_s, 1)) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(row, widths, strict=True))) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes; under a minute (CI)")
    ap.add_argument("--plan", choices=sorted(PLANS), help="sizes: quick, full (default) or check "
                    "(200,000 events over 10,000 streams)")
    ap.add_argument("--json", type=Path, help="also write every figure to this file")
    ap.add_argument("--only", default="abcs", help="subset: a b c s(tate)")
    ap.add_argument("--env", action="append", default=[], metavar="PYNOMALY_X=V",
                    help="extra worker setting for (c), e.g. PYNOMALY_DETECTOR=zscore")
    a = ap.parse_args(argv)
    for kv in a.env:
        k, sep, v = kv.partition("=")
        if not sep or not k.startswith("PYNOMALY_"):
            ap.error(f"--env expects PYNOMALY_NAME=VALUE, got {kv!r}")
        EXTRA_ENV[k] = v
    plan = PLANS[a.plan] if a.plan else QUICK if a.quick else FULL
    # SIGTERM (CI timeouts) unwinds like Ctrl-C, so the broker and children are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    began = time.monotonic()
    results: list[Result] = []
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory(prefix="pyn-bench-") as d:
        bs, tmp = broker.bootstrap, Path(d)
        print(f"{plan.events:,} events over {plan.streams:,} streams; batched runs: "
              f"{plan.per_record} events per record", file=sys.stderr)
        n, bn = plan.events, f"batched x{plan.per_record}"
        pace = f"; then {plan.paced_rate:,.0f}/s offered for latency"
        if "a" in a.only:
            results.append(measure("(a) aiokafka pass-through" + pace, start_passthrough, bs,
                                   plan, n, tmp, pace=True))
            if plan is FULL:
                results.append(measure(f"(a) pass-through, {bn}", start_passthrough, bs, plan,
                                       n, tmp, plan.per_record))
        if "b" in a.only:
            results.append(measure("(b) naive Faust + River HST", start_naive, bs, plan,
                                   plan.naive_events, tmp))
        if "c" in a.only:
            results.append(measure("(c) pynomaly worker" + pace, start_worker, bs, plan, n,
                                   tmp, pace=True))
            if plan is FULL:
                results.append(measure(f"(c) pynomaly worker, {bn}", start_worker, bs, plan, n,
                                       tmp, plan.per_record))
                results.append(measure("(c) pynomaly worker, detector zscore" + pace,
                                       start_worker_zscore, bs, plan, n, tmp, pace=True))
    state = state_costs(plan) if "s" in a.only else []
    ratios = {}
    a_, b_, c_ = (next((r for r in results if r.name.startswith(p)), None)
                  for p in ("(a) aiokafka pass-through", "(b) naive", "(c) pynomaly worker"))
    if c_ and a_:
        ratios["c/a"] = c_.steady_eps / a_.steady_eps
    if c_ and b_:
        ratios["c/b"] = c_.steady_eps / b_.steady_eps
    print(table(results))
    print("ratios (steady ev/s, one event per record): "
          + ", ".join(f"{k} = {v:.2f}" for k, v in ratios.items()))
    for s in state:
        extra = (f", checkpoint {s['checkpoint_s']:.2f} s + restore {s['restore_s']:.2f} s "
                 f"({s['checkpoint_bytes_per_stream']:.0f} B/stream)" if "checkpoint_s" in s else "")
        print(f"state {s['detector']} x {s['streams']:,}: create {s['create_us_per_stream']:.0f} us/stream, "
              f"{s['memory_kb_per_stream']:.1f} KiB/stream{extra}")
    elapsed = time.monotonic() - began
    print(f"default detector {Settings().detector}; {os.cpu_count()} CPUs; total {elapsed:.1f} s")
    if a.json:
        a.json.write_text(orjson.dumps({
            "plan": dataclasses.asdict(plan), "results": [dataclasses.asdict(r) for r in results],
            "ratios": ratios, "state": state, "elapsed_s": elapsed,
            "default_detector": Settings().detector, "cpus": os.cpu_count(),
        }, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode())
    short = [r.name for r in results if r.outputs < r.events]
    if short:
        print(f"error: too few outputs from {short}", file=sys.stderr)
    return 1 if short else 0


if __name__ == "__main__":
    raise SystemExit(main())
