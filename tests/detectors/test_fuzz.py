"""Arbitrary feature dicts (NaN, inf, huge, changing keys) never crash a pipeline, and its
calibrated scores stay in [0, 1]."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors import registry
from detectors.pipeline import PipelineConfig, StreamPipeline
from tests.detectors.names import detector_params

values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e6, max_value=1e6),
)
events = st.lists(
    st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), values, min_size=1, max_size=4),
    min_size=1, max_size=60,
)


@pytest.mark.parametrize("name", detector_params())
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=events)
def test_any_stream_is_processed(name: str, stream) -> None:
    params = registry.test_params(name)
    warmup = params.pop("warmup", 5)
    p = StreamPipeline(PipelineConfig(detector=name, params=params, warmup=min(warmup, 5),
                                      rebaseline_after=5))
    for x in stream:
        v = p.process(x)
        assert 0.0 <= v.score <= 1.0 and not math.isnan(v.score)
        if v.contributions is not None:
            assert abs(sum(v.contributions.values()) - 1.0) < 1e-6
