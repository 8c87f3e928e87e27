"""Issue 13, finding 3: a stream's state cannot grow with every feature name it ever sent.

On main 1,000 new feature names per event grew a zscore stream's state from 58 KB to 2 MB
in 60 events (gaussian: 235 MB), until its checkpoint exceeded the request size. New names
past ``max_features_per_stream`` are dead-lettered (``too_many_features``); the cap
survives checkpoints.
"""

import pickle

import orjson
from prometheus_client import CollectorRegistry

from streams.checkpoints import dump_state, load_state
from streams.metrics import Metrics
from streams.scoring import BatchScorer, RawRecord, StreamScorer, default_pipeline_factory
from streams.settings import load_settings
from tests.faults.support import size

CAP = 50


def make(detector="zscore"):
    settings = load_settings(environ={}, max_features_per_stream=CAP, detector=detector)
    registry = CollectorRegistry()
    scorer = StreamScorer(default_pipeline_factory(settings))
    return BatchScorer(settings, scorer, Metrics(registry), clock=lambda: 2e9), scorer, registry


def churn(i, n_new=10):
    values = {f"f{i}-{k}": float(k) for k in range(n_new)}
    return RawRecord(b"churn", orjson.dumps({"stream": "churn", "ts": 1000 + i, "values": values}),
                     None, "ev", 0, i)


def test_new_feature_names_past_the_cap_are_dead_lettered_and_state_stays_bounded():
    bs, scorer, registry = make()
    n = size(2_000, 100_000)
    sizes = []
    for start in range(0, n, 500):
        out = bs.run([churn(i) for i in range(start, min(n, start + 500))])
        sizes.append(len(pickle.dumps(scorer.pipelines["churn"])))
        assert all(orjson.loads(v)["reason"] == "too_many_features" for _, v in out.deadletters)
    assert registry.get_sample_value("pynomaly_events_deadlettered_total",
                                     {"reason": "too_many_features"}) == n - CAP // 10
    assert max(sizes) == sizes[0], f"state grew from {sizes[0]} to {max(sizes)} bytes"
    # known names are still scored
    out = bs.run([RawRecord(b"churn", orjson.dumps({"stream": "churn", "ts": 9e4, "values": {"f0-1": 2.0}}),
                            None, "ev", 0, n)])
    assert len(out.scores) == 1


def test_the_cap_survives_a_checkpoint():
    bs, scorer, _ = make()
    bs.run([churn(i) for i in range(5)])  # 50 names: the cap
    key = b"k" * 32
    blob = dump_state(key, "ev", 0, "churn", 4, scorer.pipelines["churn"], scorer.features.get("churn"))
    offset, pipeline, features = load_state(blob, key, "ev", 0, "churn")
    bs2, scorer2, _ = make()
    scorer2.restore("churn", pipeline, 0, offset, features)
    out = bs2.run([churn(5)])
    assert [orjson.loads(v)["reason"] for _, v in out.deadletters] == ["too_many_features"]
