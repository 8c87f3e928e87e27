"""Demo traffic for the compose stack: synthetic streams published with `pynomaly produce`.

Writes one batch of events (NDJSON) from :class:`streams.synthetic.SyntheticStreams`, hands
it to the ``produce`` command at ``--rate`` events per second, and repeats until stopped.
Event times advance by ``streams / rate`` seconds per tick, so event time follows the wall
clock: detectors and incidents see a realistic timeline, not a burst from the past.

    python deploy/compose/demo_feed.py --streams 50 --rate 250 --batches 1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import orjson

from streams.cli import main as pynomaly_main
from streams.synthetic import SyntheticStreams


def write_batch(synth: SyntheticStreams, path: Path, ticks: int, start_ts: float, step_s: float) -> float:
    """Write ``ticks`` ticks of every stream to ``path``; returns the next tick's event time."""
    ts = start_ts
    with path.open("wb") as fh:
        for _ in range(ticks):
            for event in synth.next_tick(ts, step_s):
                fh.write(orjson.dumps(event) + b"\n")
            ts += step_s
    return ts


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--streams", type=int, default=50, help="number of synthetic streams")
    p.add_argument("--rate", type=float, default=250.0, help="events per second (all streams)")
    p.add_argument("--ticks-per-batch", type=int, default=120, help="ticks written per batch")
    p.add_argument("--batches", type=int, default=0, help="stop after this many (0: never)")
    p.add_argument("--seed", type=int, default=7, help="seed of the synthetic streams")
    args = p.parse_args(argv)
    if args.streams < 1 or args.rate <= 0 or args.ticks_per_batch < 1 or args.batches < 0:
        p.error("--streams and --ticks-per-batch must be >= 1, --rate > 0, --batches >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    synth = SyntheticStreams(n_streams=args.streams, seed=args.seed)
    step_s = args.streams / args.rate
    next_ts = time.time()
    done = 0
    with tempfile.TemporaryDirectory(prefix="pynomaly-demo-") as tmp:
        path = Path(tmp) / "demo.ndjson"
        while args.batches == 0 or done < args.batches:
            # Never fall behind the wall clock after a slow batch or a broker outage.
            next_ts = write_batch(synth, path, args.ticks_per_batch, max(next_ts, time.time()), step_s)
            code = pynomaly_main(["produce", "--quiet", "--rate", str(args.rate), str(path)])
            if code != 0:
                return code
            done += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
