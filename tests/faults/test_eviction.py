"""streams.eviction in-process on the real broker: the cap holds, and eviction is lossless.

Waves of new streams arrive, go idle, and the first wave comes back. A capped scorer must
never hold more than ``cap`` + one batch's new streams, and every score must equal the
score of an uncapped scorer fed the same records (evicted state restored exactly).
"""

from __future__ import annotations

import orjson
import pytest
from prometheus_client import CollectorRegistry, Counter

from streams.checkpoints import CheckpointStore, state_key
from streams.eviction import StreamEvictor
from streams.metrics import Metrics
from streams.scoring import BatchScorer, RawRecord, StreamScorer, default_pipeline_factory
from streams.settings import load_settings
from tests.faults.support import report, size
from tests.support.kafka import create_topics, topic_env, unique

pytestmark = pytest.mark.faults

PARTITIONS = 4


def waves(n_waves: int, per_wave: int, events: int) -> list[list[RawRecord]]:
    """Batches: each wave's streams interleaved for ``events`` rounds; wave 0 returns last."""
    offsets = [0] * PARTITIONS
    batches = []
    order = [*range(n_waves), 0]
    for round_no, w in enumerate(order):
        batch = []
        for i in range(events):
            for j in range(per_wave):
                stream = f"w{w:02d}-{j:03d}"
                p = (w * per_wave + j) % PARTITIONS
                value = 10 + (j % 5) + ((i * 31 + j) % 7) / 10 + (25 if (i, j) == (events - 1, 3) else 0)
                doc = {"stream": stream, "ts": 1_790_000_000 + round_no * events + i, "value": value}
                batch.append(RawRecord(stream.encode(), orjson.dumps(doc), None, "ev", p, offsets[p]))
                offsets[p] += 1
            if len(batch) >= 500:
                batches.append(batch)
                batch = []
        if batch:
            batches.append(batch)
    return batches


def scores(out) -> list[tuple[str, float, bool]]:
    return [(d["stream"], d["score"], d["warming_up"]) for d in map(orjson.loads, (v for _, v in out.scores))]


async def test_capped_scorer_matches_uncapped_and_holds_the_cap(kafka_bootstrap):
    cap = 60
    n_waves, per_wave, events = size(6, 40), 50, 40
    env = {**topic_env(unique("evict"), PARTITIONS), "PYNOMALY_KAFKA_BOOTSTRAP": kafka_bootstrap,
           "PYNOMALY_DEV_BROKER": "true"}
    settings = load_settings(environ=env)
    create_topics(kafka_bootstrap, [settings.topic_state], PARTITIONS)
    key = state_key(settings)
    assert key is not None

    def scorer_stack() -> tuple[StreamScorer, BatchScorer, Metrics]:
        metrics = Metrics(CollectorRegistry())
        scorer = StreamScorer(default_pipeline_factory(settings))
        return scorer, BatchScorer(settings, scorer, metrics, clock=lambda: 1_790_000_000.0), metrics

    ref_scorer, ref_batches, _ = scorer_stack()
    scorer, batcher, metrics = scorer_stack()
    registry = CollectorRegistry()
    evicted = Counter("pynomaly_streams_evicted", "test", registry=registry)
    restored = Counter("pynomaly_streams_restored", "test", registry=registry)
    store = CheckpointStore(settings, scorer, metrics, key)
    evictor = StreamEvictor(scorer, store, cap, evictions=evicted, restores=restored)
    peak = 0
    mismatches = 0
    total = 0
    try:
        for batch in waves(n_waves, per_wave, events):
            expected = scores(ref_batches.run(batch))
            await evictor.restore_for(r.key for r in batch)
            out = batcher.run(batch)
            peak = max(peak, len(scorer.pipelines))
            evictor.touch_output(out)
            await evictor.enforce()
            assert len(scorer.pipelines) <= cap
            got = scores(out)
            total += len(got)
            mismatches += sum(a != b for a, b in zip(got, expected, strict=True))
    finally:
        await evictor.stop()
        await store.stop()
    n_evicted = registry.get_sample_value("pynomaly_streams_evicted_total")
    n_restored = registry.get_sample_value("pynomaly_streams_restored_total")
    report("eviction", streams=n_waves * per_wave, cap=cap, peak_in_memory=peak, evicted=n_evicted,
           restored=n_restored, index=len(evictor.index), scores=total, mismatches=mismatches)
    assert mismatches == 0, f"{mismatches} of {total} scores differ from the uncapped scorer"
    assert len(ref_scorer.pipelines) == n_waves * per_wave
    assert peak <= cap + per_wave  # the cap plus one batch's new streams
    assert n_restored == per_wave  # the returning first wave, and only it
    assert n_evicted >= n_waves * per_wave - cap
