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


def test_pipelines_are_built_per_stream_with_its_tags():
    settings = load_settings(environ={})
    real = default_pipeline_factory(settings)
    calls = []

    def factory(stream, tags):
        calls.append((stream, tags))
        return real(stream, tags)

    bs = BatchScorer(settings, StreamScorer(factory), Metrics(CollectorRegistry()), clock=lambda: 2e9)
    bs.run([rec(0, {"stream": "a", "value": 1.0, "tags": {"env": "prod"}}),
            rec(1, {"stream": "a", "value": 2.0}), rec(2, {"stream": "b", "value": 1.0})])
    assert calls == [("a", {"env": "prod"}), ("b", None)]  # once per stream, with its tags


def test_every_event_after_a_dead_letter_or_forward_is_still_scored():
    bs, registry = make()
    records = [rec(0, {"stream": "s", "value": 1.0}), rec(1, b"garbage"),
               rec(2, {"stream": "t", "value": 1.0}, key=b"s"),  # forwarded to t's partition
               rec(3, {"stream": "s", "value": 2.0}), rec(4, {"stream": "s", "value": "x"}),
               rec(5, {"stream": "s", "value": 3.0})]
    out = bs.run(records)
    assert [orjson.loads(v)["source"]["offset"] for _, v in out.scores] == [0, 3, 5]
    assert len(out.deadletters) == 2 and len(out.forwards) == 1
    assert out.forwards[0][0] == b"t"


def test_score_histogram_samples_every_16th_score_and_lag_is_not_floored():
    settings = load_settings(environ={"PYNOMALY_WARMUP_EVENTS": "0"})
    registry = CollectorRegistry()
    bs = BatchScorer(settings, StreamScorer(default_pipeline_factory(settings)), Metrics(registry),
                     clock=lambda: 1000.0)
    bs.run([rec(i, {"stream": "s", "ts": 1000.0, "value": float(i % 3)}) for i in range(40)])
    warming = registry.get_sample_value("pynomaly_events_warming_up_total") or 0
    sampled = [n for n in range(1, 41) if n > warming and not n & 15]
    assert registry.get_sample_value("pynomaly_calibrated_score_count") == len(sampled)
    assert registry.get_sample_value("pynomaly_event_time_lag_seconds_sum") == 0.0  # ts == now


def test_only_opted_in_streams_export_their_score():
    settings = load_settings(environ={})
    registry = CollectorRegistry()
    bs = BatchScorer(settings, StreamScorer(default_pipeline_factory(settings)),
                     Metrics(registry, score_streams=["watched"]), clock=lambda: 2e9)
    out = bs.run([rec(0, {"stream": "watched", "value": 1.0}), rec(1, {"stream": "other", "value": 1.0})])
    score = orjson.loads(out.scores[0][1])["score"]
    assert registry.get_sample_value("pynomaly_stream_score", {"stream": "watched"}) == score
    assert registry.get_sample_value("pynomaly_stream_score", {"stream": "other"}) is None


def test_forgetting_partitions_and_streams_drops_only_those():
    bs, _ = make()
    scorer = bs.scorer
    bs.run([RawRecord(b"a", orjson.dumps({"stream": "a", "value": 1.0}), 0, "ev", 0, 10),
            RawRecord(b"b", orjson.dumps({"stream": "b", "value": 1.0}), 0, "ev", 1, 20)])
    scorer.emitted.update({0: 5, 1: 15})
    scorer.forget_partitions({0})
    assert set(scorer.pipelines) == {"b"} and set(scorer.owner) == {"b"} and scorer.dirty == {"b"}
    assert scorer.progress == {1: 20} and scorer.emitted == {1: 15}
    kept = scorer.pipelines["b"]
    scorer.forget(["b", "never-seen"])
    assert scorer.pipelines == {} and scorer.owner == {"b": (1, 20)}
    scorer.restore("b", kept, 1, 20)
    assert scorer.pipelines == {"b": kept} and scorer.owner == {"b": (1, 20)}
