"""The demo's live view: which anomalies belong to an injection, which injections were found."""

from __future__ import annotations

import io

from streams.demo import LiveView
from streams.synthetic import EFFECT_TICKS, SyntheticStreams


def test_injections_have_effect_spans_and_streams_recover() -> None:
    synth = SyntheticStreams(n_streams=20, seed=3, anomaly_rate=0.01, warmup_ticks=10)
    ts = 1000.0
    for _ in range(400):
        ts += 2.0
        list(synth.next_tick(ts, step_s=2.0))
    kinds = {i.kind for i in synth.injections}
    assert kinds == {"spike", "level_shift", "drift"}
    for inj in synth.injections:
        assert inj.until == inj.ts + 2.0 * EFFECT_TICKS[inj.kind]
        assert inj.covers(inj.stream, inj.ts) and inj.covers(inj.stream, inj.until)
        assert not inj.covers(inj.stream, inj.until + 0.5) and not inj.covers("other", inj.ts)
    # A stream has one episode (shift or drift) at a time: no overlapping ground truth.
    for s in synth.streams:
        eps = sorted((i.ts, i.until) for i in synth.injections if i.stream == s.name and i.kind != "spike")
        assert all(a_end < b_start for (_, a_end), (b_start, _) in zip(eps, eps[1:], strict=False))


def test_status_counts_anomalies_from_injections_and_injections_found() -> None:
    synth = SyntheticStreams(n_streams=5, seed=1, anomaly_rate=0.05, warmup_ticks=5)
    ts = 0.0
    for _ in range(100):
        ts += 1.0
        list(synth.next_tick(ts))
    first, second = synth.injections[0], synth.injections[1]
    view = LiveView(synth, out=io.StringIO(), live_from=0.0)
    view.on_anomaly({"stream": first.stream, "ts": first.ts, "value": 1.0})
    view.on_anomaly({"stream": first.stream, "ts": first.ts + 1, "value": 1.0})
    view.on_anomaly({"stream": "nobody", "ts": second.ts, "value": 1.0})  # a false alarm
    view.on_scored({"ts": ts})
    anomalies, explained, due, hit = view.figures()
    assert (anomalies, explained, hit) == (3, 2, 1)
    assert due == sum(i.until <= ts for i in synth.injections) >= 2
    assert "(67% from an injection)" in view.status() and f"detected 1 of {due} due" in view.status()
    # The backfilled history is not shown or counted.
    quiet = LiveView(synth, out=io.StringIO(), live_from=first.ts + 1000)
    quiet.on_anomaly({"stream": first.stream, "ts": first.ts, "value": 1.0})
    assert quiet.figures()[0] == 0
