"""Per-stream rules from the [detectors] table, and signed state checkpoints."""

from __future__ import annotations

import pickle
import tomllib
from concurrent.futures import ThreadPoolExecutor

import pytest

from detectors.pipeline import PipelineConfig, StreamPipeline
from detectors.rules import PipelineFactory, RulesError
from detectors.state import StateSignatureError, dumps_state, loads_state
from streams.settings import load_settings
from tests.detectors.streams import spiky_stream

TOML = """
[detectors.default]
detector = "zscore"
threshold = 0.999
params = { alpha = 0.05 }

[[detectors.rules]]
match = "host-*.cpu"
tags = { region = "eu" }
detector = "hst"
params = { n_trees = 5, height = 6, window_size = 50 }
threshold = 0.995
bands = { page = 0.9999, ticket = 0.995 }

[[detectors.rules]]
match = "db-*"
detector = "pyod.knn"
params = { window = 64, refit_every = 32, min_fit = 32 }
lower_threshold = 0.9
min_duration = 5
"""


def factory(**kw) -> PipelineFactory:
    return PipelineFactory.from_table(tomllib.loads(TOML)["detectors"], **kw)


def test_first_matching_rule_wins_and_default_applies() -> None:
    f = factory()
    eu = f.create("host-7.cpu", {"region": "eu", "team": "x"})
    assert eu.detector.name == "hst" and eu.config.threshold == 0.995
    assert eu.config.bands == (("page", 0.9999), ("ticket", 0.995))
    assert f.create("host-7.cpu", {"region": "us"}).detector.name == "zscore"
    assert f.create("host-7.cpu", None).detector.name == "zscore"
    db = f.create("db-main", None)
    assert db.detector.name == "pyod.knn" and db.config.min_duration == 5
    default = f("web.latency", None)  # callable like streams.scoring's factory type
    assert default.detector.name == "zscore" and default.detector.alpha == 0.05


def test_factory_injects_the_refit_executor() -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        p = factory(executor=pool).create("db-main", None)
        assert p.detector.executor is pool


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"rules": [{"match": "a*", "detector": "hts"}]}, "unknown detector 'hts'; choose one"),
        ({"rules": [{"match": "a*", "detektor": "hst"}]}, "unknown key(s) detektor"),
        ({"rules": [{"match": "a*", "detector": "hst", "params": {"trees": 3}}]},
         "bad parameters for detector 'hst'"),
        ({"default": {"threshold": 1.5}}, "threshold must be in [0, 1]"),
        ({"rules": [{"match": "a*", "min_duration": 0}]}, "min_duration must be >= 1"),
        ({"rules": {"match": "a*"}}, "must be an array of tables"),
        ({"rules": [{"match": "a*", "calibration": "magic"}]}, "unknown calibration 'magic'"),
    ],
)
def test_bad_rules_fail_at_start_up_with_clear_errors(table, message) -> None:
    with pytest.raises(RulesError) as info:
        PipelineFactory.from_table(table)
    assert message in str(info.value)
    assert info.value.retriable is False
    if "unknown detector" in message:
        assert "pyod.iforest" in str(info.value) and "zscore" in str(info.value)


KEY = b"0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("name", ["zscore", "hst", "pyod.pca"])
def test_signed_state_round_trip_continues_identically(name: str) -> None:
    events, _ = spiky_stream(n=200)
    params = {"window": 64, "refit_every": 32, "min_fit": 32} if name.startswith("pyod") else {}
    p = StreamPipeline(PipelineConfig(detector=name, params=params, warmup=10))
    for x in events[:150]:
        p.process(x)
    restored = loads_state(dumps_state(p, KEY), KEY)
    a = [p.process(x) for x in events[150:]]
    b = [restored.process(x) for x in events[150:]]
    assert [v.score for v in a] == [v.score for v in b]
    assert all(vb.version == va.version + 1 for va, vb in zip(a, b))


def test_tampered_unsigned_or_wrongly_keyed_state_is_never_unpickled() -> None:
    p = StreamPipeline(PipelineConfig())
    blob = dumps_state(p, KEY)
    flipped = bytearray(blob)
    flipped[-5] ^= 1
    evil = pickle.dumps(p)  # an unsigned pickle
    for bad, key in [(bytes(flipped), KEY), (evil, KEY), (blob, b"another-key-of-32-bytes-xxxxxxxx"),
                     (blob[:20], KEY), (b"", KEY)]:
        with pytest.raises(StateSignatureError) as info:
            loads_state(bad, key)
        assert info.value.retriable is False


def test_short_keys_are_refused() -> None:
    with pytest.raises(Exception, match="at least 16 bytes"):
        dumps_state(StreamPipeline(PipelineConfig()), b"short")


def test_factory_from_settings() -> None:
    from streams.settings import Settings, load_dataclass

    table = tomllib.loads(TOML.replace("[detectors.default]\n", "[detectors.default]\nwarmup = 7\n"))
    settings = load_dataclass(Settings, {}, {"detector": "sad", "threshold": 0.99, **table})
    f = PipelineFactory.from_settings(settings)
    assert f.create("host-1.cpu", {"region": "eu"}).detector.name == "hst"
    d = f.create("other")
    assert d.detector.name == "zscore" and d.config.warmup == 7  # [detectors.default] wins
    plain = PipelineFactory.from_settings(load_dataclass(Settings, {}, {"detector": "sad"}))
    assert plain.create("x").detector.name == "sad" and plain.default.warmup == load_settings(environ={}).warmup_events
