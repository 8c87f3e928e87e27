"""The hot path, free of Kafka: a batch of raw records in, the records to produce out.

Keeping this pure makes it testable without a broker and lets the agent hand whole
batches to the producer instead of awaiting per event.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor

from detectors.pipeline import StreamPipeline
from detectors.protocol import Verdict
from detectors.rules import PipelineFactory as RulesFactory
from streams.codec import (
    MAX_UNIX_SECONDS,
    DeadLetter,
    Event,
    Source,
    deadletter_key,
    decode_record,
    encode_deadletter,
    encode_forward,
    encode_scored,
)
from streams.metrics import Metrics
from streams.settings import Settings

log = logging.getLogger(__name__)

PipelineFactory = Callable[[str, Mapping[str, str] | None], StreamPipeline]
Output = tuple[bytes | None, bytes]  # (key, value)


@dataclasses.dataclass(slots=True)
class RawRecord:
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None
    topic: str
    partition: int
    offset: int


@dataclasses.dataclass(slots=True)
class BatchOutput:
    scores: list[Output] = dataclasses.field(default_factory=list)
    anomalies: list[Output] = dataclasses.field(default_factory=list)
    deadletters: list[Output] = dataclasses.field(default_factory=list)
    forwards: list[Output] = dataclasses.field(default_factory=list)


def default_pipeline_factory(settings: Settings, executor: Executor | None = None) -> PipelineFactory:
    """Per-stream pipelines from the settings' default rule and ``[detectors]`` rules;
    windowed detectors refit on ``executor``."""
    return RulesFactory.from_settings(settings, executor=executor)


class StreamScorer:
    """Owns one pipeline per stream that this worker's partitions route to it."""

    def __init__(self, factory: PipelineFactory) -> None:
        self.factory = factory
        self.pipelines: dict[str, StreamPipeline] = {}
        # stream -> (events partition, offset of the last event it learned): for checkpoints
        self.owner: dict[str, tuple[int, int]] = {}
        self.dirty: set[str] = set()  # changed since their last checkpoint
        # multivariate stream -> every feature name it sent (checkpointed with its state)
        self.features: dict[str, set[str]] = {}
        # events partition -> highest offset learned: every output up to it is written once
        # the batch's outputs are acknowledged (the checkpoint store marks it durably)
        self.progress: dict[int, int] = {}
        # events partition -> offset up to which a previous owner wrote every output (its
        # last progress mark): replayed events up to it are learned, their outputs not
        # written again. Emptied as the replay passes it.
        self.emitted: dict[int, int] = {}

    def reset(self, event: Event) -> StreamPipeline:
        p = self.pipelines[event.stream] = self.factory(event.stream, event.tags)
        return p

    def restore(self, stream: str, pipeline: StreamPipeline, partition: int, offset: int,
                features: Iterable[str] | None = None) -> None:
        self.pipelines[stream] = pipeline
        self.owner[stream] = (partition, offset)
        if features is not None:
            self.features[stream] = set(features)

    def learned(self, stream: str, partition: int, offset: int) -> None:
        owned = self.owner.get(stream)
        if owned is None or owned[0] == partition:
            # The owning partition stays the first one learned from: its offsets (and only
            # its) tell replays apart. Events of other partitions are learned too, never
            # skipped; a crash can only make them duplicates.
            self.owner[stream] = (partition, offset)
        self.dirty.add(stream)
        self.progress[partition] = offset

    def replayed_quietly(self, partition: int, offset: int) -> bool:
        """True for a replayed record whose outputs a previous owner already wrote."""
        upto = self.emitted.get(partition)
        if upto is None:
            return False
        if offset <= upto:
            return True
        del self.emitted[partition]  # offsets only grow within a partition: replay is over
        return False

    def forget_partitions(self, partitions: set[int]) -> None:
        gone = [s for s, (p, _) in self.owner.items() if p in partitions]
        for s in gone:
            self.drop(s)
        for p in partitions:
            self.progress.pop(p, None)
            self.emitted.pop(p, None)

    def pipeline(self, event: Event) -> StreamPipeline:
        p = self.pipelines.get(event.stream)
        if p is None:
            p = self.pipelines[event.stream] = self.factory(event.stream, event.tags)
        return p

    def drop(self, stream: str) -> None:
        """Everything held for ``stream`` (it moved away or was evicted)."""
        self.pipelines.pop(stream, None)
        self.owner.pop(stream, None)
        self.features.pop(stream, None)
        self.dirty.discard(stream)

    def forget(self, streams: Iterable[str]) -> None:
        for s in streams:
            self.pipelines.pop(s, None)
            self.features.pop(s, None)


class BatchScorer:
    """Decodes, validates, scores and encodes one batch of input records."""

    def __init__(
        self,
        settings: Settings,
        scorer: StreamScorer,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.scorer = scorer
        self.metrics = metrics
        self.clock = clock
        self._traced: set[str] = set()  # detector types whose failure was logged with a traceback

    def run(self, records: Iterable[RawRecord]) -> BatchOutput:
        s = self.settings
        m = self.metrics
        out = BatchOutput()
        scorer = self.scorer
        pipeline = scorer.pipeline
        n_records = n_scored = n_warming = 0
        watched = m.score_streams
        lag_sum_count: list[float] = []
        now = self.clock()
        # Event times far ahead of the clock (milliseconds sent as seconds, a wrong year)
        # would move alerting's watermark past every open incident and silence.
        ts_range = (now - s.max_event_age_s if s.max_event_age_s else 0.0,
                    min(now + s.max_event_future_s, MAX_UNIX_SECONDS))
        emitted = scorer.emitted  # empty except while replaying after a restart
        owner_of = scorer.owner.get
        for rec in records:
            n_records += 1
            quiet = bool(emitted) and scorer.replayed_quietly(rec.partition, rec.offset)
            items = decode_record(
                rec.key, rec.value, rec.timestamp_ms, rec.topic, rec.partition, rec.offset,
                s.max_record_bytes, s.max_events_per_record, ts_range,
            )
            # The events of one array record share its offset: mark them learned only after
            # the whole record, or every event after the first would look replayed.
            learned_here: list[str] | None = None
            for item in items:
                if quiet and (isinstance(item, DeadLetter) or item.forward):
                    continue  # written before the restart
                if isinstance(item, DeadLetter):
                    self._deadletter(out, item)
                    continue
                if item.forward:
                    fwd = encode_forward(item)
                    if self._fits(item, fwd):
                        out.forwards.append((item.stream.encode("utf-8"), fwd))
                    else:
                        self._too_large(out, item, fwd, rec)
                    continue
                owned = owner_of(item.stream)
                if owned is not None:
                    if owned[0] != rec.partition:
                        m.ownership_violations.inc()  # scored all the same, never dropped
                    elif rec.offset <= owned[1]:
                        m.events_replayed.inc()  # the restored checkpoint covers it
                        continue
                if item.multivariate and not self._features_fit(item):
                    self._deadletter(out, DeadLetter(
                        "too_many_features", f"stream {item.stream[:64]!r} already has "
                        f"{len(scorer.features.get(item.stream, ()))} feature names; new ones past "
                        f"max_features_per_stream={s.max_features_per_stream} are refused: send a "
                        "fixed set of names (put varying parts in tags)",
                        encode_forward(item), item.stream.encode("utf-8"), item.source))
                    continue
                try:
                    verdict = pipeline(item).process(item.features, item.ts)
                except Exception as exc:
                    # A detector bug or an incompatible restored state must not fail the batch
                    # (and every retry of it): the stream starts over with a fresh pipeline.
                    m.errors.labels(component="score").inc()
                    fresh = self._detector_failed(out, item, exc)
                    if fresh is None:
                        continue
                    verdict = fresh
                if learned_here is None:
                    learned_here = [item.stream]
                else:
                    learned_here.append(item.stream)
                if quiet:  # learned again (state is that of the last checkpoint), not re-emitted
                    m.events_replayed.inc()
                    continue
                key = item.stream.encode("utf-8")
                value = encode_scored(item, verdict)
                if not self._fits(item, value):
                    self._too_large(out, item, value, rec)
                    continue
                out.scores.append((key, value))
                if verdict.is_anomaly:
                    out.anomalies.append((key, value))
                    m.anomalies.labels(verdict.severity).inc()
                n_scored += 1
                lag_sum_count.append(now - item.ts)
                if verdict.warming_up:
                    n_warming += 1
                elif not n_scored & 15:
                    # Every 16th score feeds the calibration histogram: unbiased, and it keeps
                    # a ~5 µs histogram update off most events.
                    m.score.observe(verdict.score)
                if watched and item.stream in watched:
                    m.observe_stream_score(item.stream, verdict.score)
            if learned_here is not None:
                for stream in learned_here:
                    scorer.learned(stream, rec.partition, rec.offset)
        m.events_consumed.inc(n_records)
        if n_warming:
            m.events_warming_up.inc(n_warming)
        m.events_scored.inc(n_scored)
        if out.forwards:
            m.events_forwarded.inc(len(out.forwards))
        # One histogram observation per batch keeps metrics off the per-event path.
        if lag_sum_count:
            m.event_lag.observe(max(0.0, sum(lag_sum_count) / len(lag_sum_count)))
        m.active_streams.set(len(self.scorer.pipelines))
        return out

    def _features_fit(self, event: Event) -> bool:
        """Record ``event``'s feature names for its stream; False if new ones pass the cap."""
        known = self.scorer.features.get(event.stream)
        if known is None:
            known = self.scorer.features[event.stream] = set()
        elif event.features.keys() <= known:
            return True
        new = event.features.keys() - known
        if len(known) + len(new) > self.settings.max_features_per_stream:
            return False
        known.update(new)
        return True

    def _detector_failed(self, out: BatchOutput, event: Event, exc: Exception) -> Verdict | None:
        """The verdict of a fresh pipeline for ``event``; None (and a dead letter) if that
        fails too. One traceback per detector type: a detector failing on every event must
        not write one per event."""
        kind = type(getattr(self.scorer.pipelines.get(event.stream), "detector", None)).__name__
        if kind not in self._traced:
            self._traced.add(kind)
            log.error("stream %r: its detector %s failed; starting it over", event.stream, kind,
                      exc_info=exc)
        else:
            log.warning("stream %r: its detector %s failed (%s: %s); starting it over",
                        event.stream, kind, type(exc).__name__, str(exc)[:200])
        try:
            return self.scorer.reset(event).process(event.features, event.ts)
        except Exception as again:
            self._deadletter(out, DeadLetter(
                "detector_failed", f"the detector {kind} failed on this event, even freshly started "
                f"({type(again).__name__}: {str(again)[:200]}); report it with the raw event",
                encode_forward(event), event.stream.encode("utf-8"), event.source))
            return None

    def _deadletter(self, out: BatchOutput, dl: DeadLetter) -> None:
        out.deadletters.append((deadletter_key(dl), encode_deadletter(dl)))
        counter = self.metrics.events_deadlettered
        if dl.reasons:
            for reason, n in dl.reasons.items():
                counter.labels(reason).inc(n)
        else:
            counter.labels(dl.reason).inc()

    def _fits(self, event: Event, value: bytes) -> bool:
        # The stream id (<= 256 characters) is the key of scored and forwarded records.
        return len(value) + 4 * len(event.stream) <= self.settings.max_output_bytes

    def _too_large(self, out: BatchOutput, event: Event, value: bytes, rec: RawRecord) -> None:
        """An output the producer would reject (and with it the whole batch, forever):
        dead-lettered with the input truncated instead."""
        limit = self.settings.max_output_bytes
        self._deadletter(out, DeadLetter(
            "output_too_large",
            f"the output for stream {event.stream[:64]!r} is {len(value)} bytes, over the "
            f"producer's max request size allows ({limit}); send fewer or shorter tags and "
            "feature names", rec.value, rec.key,
            Source(event.source.topic, event.source.partition, event.source.offset, event.source.index)))
