"""Issue 13: pause detection of the checkpoint store (the zombie fault test drives it
through real workers: tests/faults/test_zombie.py)."""

from prometheus_client import CollectorRegistry

from streams.checkpoints import CheckpointStore
from streams.metrics import Metrics
from streams.scoring import StreamScorer, default_pipeline_factory
from streams.settings import load_settings


def test_a_gap_longer_than_the_session_timeout_holds_writes_until_reassigned():
    now = [100.0]
    settings = load_settings(environ={}, session_timeout_s=3.0)
    scorer = StreamScorer(default_pipeline_factory(settings))
    store = CheckpointStore(settings, scorer, Metrics(CollectorRegistry()), b"k" * 32, clock=lambda: now[0])
    assert store.tick()  # not watching before the worker's timer ticks
    now[0] += 60
    assert store.tick()
    assert store.tick(timer=True)
    now[0] += 1.0
    assert store.tick(timer=True)
    now[0] += 10.0  # SIGSTOP past the session timeout
    assert not store.tick() and store.paused
    now[0] += 1.0
    assert not store.tick(timer=True)  # held until the group says who owns what


async def test_writes_resume_after_two_session_timeouts_without_a_rebalance():
    now = [100.0]
    settings = load_settings(environ={}, session_timeout_s=3.0)
    scorer = StreamScorer(default_pipeline_factory(settings))
    store = CheckpointStore(settings, scorer, Metrics(CollectorRegistry()), b"k" * 32, clock=lambda: now[0])
    store.tick(timer=True)
    now[0] += 10.0
    assert not store.tick(timer=True)
    for _ in range(7):
        now[0] += 1.0
        store.tick(timer=True)
    assert store.tick(timer=True) and not store.paused
    now[0] += 10.0
    store.tick(timer=True)
    scorer.progress[0] = 5
    assert await store.mark_progress() == 0  # held: nothing written
    await store.reassigned({0})
    assert not store.paused and scorer.progress == {}
