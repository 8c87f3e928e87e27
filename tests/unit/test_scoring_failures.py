"""Issue 13, finding 11: a detector failing on every event logs one traceback, not one per
event (the PAD detector's failures filled logs with full tracebacks)."""

import logging

import orjson
from prometheus_client import CollectorRegistry

from streams.metrics import Metrics
from streams.scoring import BatchScorer, RawRecord, StreamScorer, default_pipeline_factory
from streams.settings import load_settings


class FailsOnBigValues:
    """A real pipeline whose detector step fails on values above 1e6 (a planted bug)."""

    def __init__(self, inner):
        self.inner, self.detector = inner, inner.detector

    def process(self, features, ts):
        if features.get("value", 0) > 1e6:
            raise OverflowError("planted detector failure")
        return self.inner.process(features, ts)


def test_a_failing_detector_logs_one_traceback_and_every_event_is_still_scored(caplog):
    settings = load_settings(environ={})
    real = default_pipeline_factory(settings)
    scorer = StreamScorer(lambda stream, tags: FailsOnBigValues(real(stream, tags)))
    registry = CollectorRegistry()
    bs = BatchScorer(settings, scorer, Metrics(registry), clock=lambda: 2e9)
    records = [RawRecord(b"s", orjson.dumps({"stream": "s", "ts": 1000 + i, "value": 1e9}), None, "ev", 0, i)
               for i in range(20)]
    with caplog.at_level(logging.WARNING, logger="streams.scoring"):
        out = bs.run(records)
    # Even a fresh pipeline fails on these: dead letters, not a failed batch (on main the
    # exception escaped the batch, and the worker replayed it forever).
    assert not out.scores
    assert [orjson.loads(v)["reason"] for _, v in out.deadletters] == ["detector_failed"] * 20
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1, f"{len(tracebacks)} tracebacks for 20 failing events"
    assert registry.get_sample_value("pynomaly_errors_total", {"component": "score"}) == 20
