import random

import orjson
from prometheus_client import CollectorRegistry

from streams.metrics import Metrics
from streams.scoring import BatchScorer, RawRecord, StreamScorer, default_pipeline_factory
from streams.settings import load_settings


def make():
    settings = load_settings(environ={})
    registry = CollectorRegistry()
    scorer = StreamScorer(default_pipeline_factory(settings))
    return BatchScorer(settings, scorer, Metrics(registry), clock=lambda: 2e9), registry


def rec(i, doc, key=None):
    value = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    k = key if key is not None else (doc["stream"].encode() if isinstance(doc, dict) else b"k")
    return RawRecord(k, value, 1_000_000, "ev", 0, i)


def test_one_scored_record_per_valid_event_and_dead_letters_counted():
    bs, registry = make()
    r = random.Random(3)
    records = [rec(i, {"stream": f"s{i % 4}", "ts": 1000 + i, "value": r.gauss(0, 1)}) for i in range(400)]
    records.append(rec(400, b"garbage"))
    records.append(rec(401, {"stream": "s0", "value": "x"}))
    out = bs.run(records)
    assert len(out.scores) == 400
    assert len(out.deadletters) == 2
    offsets = sorted(orjson.loads(v)["source"]["offset"] for _, v in out.scores)
    assert offsets == list(range(400))
    assert registry.get_sample_value("pynomaly_events_scored_total") == 400
    assert registry.get_sample_value("pynomaly_events_consumed_total") == 402
    assert registry.get_sample_value("pynomaly_events_deadlettered_total", {"reason": "not_json"}) == 1
    assert registry.get_sample_value("pynomaly_events_deadlettered_total", {"reason": "bad_value"}) == 1
    assert registry.get_sample_value("pynomaly_active_streams") == 4


def test_spike_after_warmup_is_an_anomaly_and_warmup_is_reported():
    bs, registry = make()
    r = random.Random(5)
    values = [10 + r.gauss(0, 1) for _ in range(200)]
    values[150] += 15
    out = bs.run([rec(i, {"stream": "s", "ts": i, "value": v}) for i, v in enumerate(values)])
    docs = [orjson.loads(v) for _, v in out.scores]
    assert docs[0]["warming_up"] and not docs[0]["is_anomaly"]
    assert not docs[100]["warming_up"]
    anomalies = [orjson.loads(v) for _, v in out.anomalies]
    assert 150 in [a["ts"] for a in anomalies]
    assert all(0.0 <= d["score"] <= 1.0 for d in docs)
    assert len(anomalies) <= 5


def test_keyless_events_are_forwarded_not_scored():
    bs, _ = make()
    out = bs.run([rec(0, {"stream": "s", "value": 1.0}, key=b"")])
    assert not out.scores and len(out.forwards) == 1
    assert out.forwards[0][0] == b"s"


def test_every_event_of_an_array_record_is_scored_once():
    bs, _ = make()
    value = orjson.dumps([{"stream": "a", "value": float(i)} for i in range(5)])
    out = bs.run([RawRecord(b"a", value, 1_000, "t", 0, 7)])
    assert [orjson.loads(v)["source"]["index"] for _, v in out.scores] == [0, 1, 2, 3, 4]
    # A replay of the same record (same offset) is already covered; the next one is not.
    assert bs.run([RawRecord(b"a", value, 1_000, "t", 0, 7)]).scores == []
    assert len(bs.run([RawRecord(b"a", value, 1_000, "t", 0, 8)]).scores) == 5


def test_a_failing_detector_restarts_its_stream_instead_of_failing_the_batch():
    bs, registry = make()
    bs.run([rec(0, {"stream": "s", "ts": 0, "value": 1.0})])

    class Broken:
        name = "broken"
        warming_up = False

        def score_one(self, x):
            raise RuntimeError("boom")

        def learn_one(self, x):
            raise RuntimeError("boom")

    bs.scorer.pipelines["s"].detector = Broken()
    out = bs.run([rec(1, {"stream": "s", "ts": 1, "value": 2.0}), rec(2, {"stream": "t", "ts": 1, "value": 2.0})])
    assert len(out.scores) == 2
    assert orjson.loads(out.scores[0][1])["warming_up"]  # the fresh pipeline re-warms
    assert registry.get_sample_value("pynomaly_errors_total", {"component": "score"}) == 1


def test_warming_up_counter_moves():
    """pynomaly_events_warming_up_total counts exactly the events scored while warming up."""
    bs, registry = make()
    warmup = bs.settings.warmup_events
    out = bs.run([rec(i, {"stream": s, "ts": 1000 + i, "value": float(i % 5)})
                  for i in range(warmup + 20) for s in ("a", "b")])
    warming = sum(orjson.loads(v)["warming_up"] for _, v in out.scores)
    assert warming >= 2 * warmup  # both streams warm up first
    assert registry.get_sample_value("pynomaly_events_warming_up_total") == warming
    bs.run([rec(10_000, {"stream": "a", "ts": 5000, "value": 1.0})])  # warm by now: no change
    assert registry.get_sample_value("pynomaly_events_warming_up_total") == warming
