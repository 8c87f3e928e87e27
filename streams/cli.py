"""The `pynomaly` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from detectors.errors import DetectorError
from sinks.errors import SinkError
from streams.errors import PynomalyError
from streams.settings import Settings, describe_settings, load_settings


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML settings file (also PYNOMALY_CONFIG)")
    p.add_argument("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers (PYNOMALY_KAFKA_BOOTSTRAP)")
    p.add_argument("--dev-broker", action="store_true", default=None,
                   help="apply the embedded-broker (Tansu) workarounds (PYNOMALY_DEV_BROKER)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pynomaly",
        description="Streaming, real-time anomaly detection on Kafka.",
        epilog="Every setting can also be set as a PYNOMALY_* variable: see `pynomaly settings`.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("broker", help="run the embedded dev broker (Tansu) in the foreground",
                       description="Run the embedded Tansu broker on 127.0.0.1 until Ctrl-C or SIGTERM. "
                                   "Memory storage: a restart loses all data. Development only.")
    p.add_argument("--port", type=int, default=9092, help="port to listen on (default 9092)")

    p = sub.add_parser("worker", help="run a scoring worker (a Faust worker)",
                       description="Consume the events topic, score every event and write scores, "
                                   "anomalies and dead letters back to Kafka. Run several side by "
                                   "side with different --web-port values to share the partitions.")
    _common(p)
    p.add_argument("--web-port", type=int, help="port for /metrics and health (PYNOMALY_WEB_PORT, default 6066)")

    p = sub.add_parser("produce", help="publish CSV or NDJSON files of events",
                       description="Publish events keyed by stream. CSV rows are timestamp,value[,stream] "
                                   "(stream defaults to the file name); NDJSON lines are event objects.")
    _common(p)
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--rate", type=float, help="events per second (default: as fast as possible)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("tail", help="pretty-print anomalies (or another topic) as they arrive")
    _common(p)
    p.add_argument("--topic", help="topic to show (default: the anomalies topic)")
    p.add_argument("--from-beginning", action="store_true", help="start at the oldest record")
    p.add_argument("--limit", type=int, help="stop after this many records")

    p = sub.add_parser("demo", help="broker + worker + synthetic producer with a live view",
                       description="Start the embedded broker (unless one is reachable), a worker and "
                                   "a synthetic producer with injected spikes, level shifts and drifts, "
                                   "and show what is detected. Ctrl-C stops everything it started.")
    _common(p)
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: run until Ctrl-C)")
    p.add_argument("--streams", type=int, default=50, help="number of synthetic streams (default 50)")
    p.add_argument("--ticks-per-second", type=float, default=5.0,
                   help="event-time seconds produced per wall-clock second (default 5)")
    p.add_argument("--web-port", type=int, help="worker web port (default 6066)")

    p = sub.add_parser("feedback", help="tell the workers an incident was a false/true positive or acked",
                       description="Publish feedback on an incident to the feedback topic. "
                                   "false_positive resolves it, quiets that stream's similar alerts "
                                   "for a while and makes its threshold stricter; true_positive "
                                   "lifts that; ack acknowledges. Without --stream the incident's "
                                   "stream is looked up in the alerts topic.")
    _common(p)
    p.add_argument("incident_id", metavar="INCIDENT_ID", help="the incident id from the alert (inc-...)")
    p.add_argument("--label", required=True, choices=("false_positive", "true_positive", "ack"),
                   help="what the incident was")
    p.add_argument("--stream", help="the incident's stream (skips the lookup in the alerts topic)")
    p.add_argument("--by", default="", help="who gives the feedback (recorded in the audit log)")
    p.add_argument("--comment", default="", help="free text (recorded in the audit log)")

    p = sub.add_parser("explore", help="serve the stream explorer page (also at the worker's /explore)",
                       description="Serve the stream explorer: a stream's values, expected band, scores, "
                                   "anomalies and incidents, read from the scores and alerts topics. "
                                   "Needs no worker; any stream of the cluster can be shown.")
    _common(p)
    p.add_argument("--port", type=int, default=6067, help="port to listen on (default 6067)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")

    p = sub.add_parser("evaluate", help="score CSV series offline with the worker's code path",
                       add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER)

    sub.add_parser("detectors", help="list the registered detectors")
    sub.add_parser("settings", help="list every setting, its variable and default")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    if getattr(args, "bootstrap", None):
        overrides["kafka_bootstrap"] = args.bootstrap
    if getattr(args, "web_port", None):
        overrides["web_port"] = args.web_port
    settings = load_settings(getattr(args, "config", None), **overrides)
    if getattr(args, "dev_broker", None):
        from streams.settings import dev_broker_profile

        settings = dev_broker_profile(settings)
    return settings


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["evaluate"]:
            from detectors.evaluate import main as evaluate_main

            return evaluate_main(argv[1:])
        return _dispatch(build_parser().parse_args(argv))
    except (PynomalyError, DetectorError, SinkError) as exc:
        # Configuration errors of every package (a typo in [[detectors.rules]], a bad sink
        # setting) end in one line that says what to fix, not a traceback.
        print(f"pynomaly: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "broker":
        from streams.broker import run_foreground

        return run_foreground(args.port)
    if cmd == "detectors":
        from detectors.registry import names

        print("\n".join(names()))
        return 0
    if cmd == "settings":
        from streams.alerting.settings import describe_alerting_settings

        for env, default, doc in [*describe_settings(), *describe_alerting_settings()]:
            print(f"{env:<38} {default!s:<22} {doc}")
        return 0
    settings = _settings(args)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if cmd == "worker":
        from streams.worker import run_worker

        return run_worker(settings)
    if cmd == "produce":
        from streams.produce import InputFileError, produce_files

        try:
            sent = asyncio.run(produce_files(settings, args.files, args.rate, args.quiet))
        except InputFileError as exc:
            print(f"pynomaly: error: {exc}", file=sys.stderr)
            return 2
        print(f"pynomaly: published {sent} events to {settings.topic_events}", file=sys.stderr)
        return 0
    if cmd == "tail":
        from streams.tail import tail

        asyncio.run(tail(settings, args.topic or settings.topic_anomalies, args.from_beginning, args.limit))
        return 0
    if cmd == "feedback":
        from streams.alerting.feedback_cli import run_feedback

        return run_feedback(settings, args.incident_id, args.label, args.stream, args.by, args.comment)
    if cmd == "explore":
        from streams.explore_api import run_explore

        return run_explore(settings, args.port, args.host)
    if cmd == "demo":
        from streams.demo import run_demo

        return run_demo(settings, args.duration, args.streams, args.ticks_per_second)
    raise AssertionError(cmd)


if __name__ == "__main__":
    sys.exit(main())
