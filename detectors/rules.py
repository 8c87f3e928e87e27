"""Per-stream rules: which detector, parameters and thresholds a stream gets.

Rules come from the TOML ``[detectors]`` table (``Settings.extra["detectors"]``); the first
rule whose ``match`` glob fits the stream id and whose ``tags`` all fit the event's tags wins;
otherwise ``[detectors.default]`` (or the settings' default detector) applies::

    [detectors.default]
    detector = "zscore"
    threshold = 0.999

    [[detectors.rules]]
    match = "host-*.cpu"
    tags = { region = "eu" }
    detector = "hst"
    params = { n_trees = 10, height = 8, window_size = 100 }
    threshold = 0.995

Everything is validated at start-up (each rule builds one pipeline), so a typo stops the
worker with a message naming the rule and the fix.

>>> factory = PipelineFactory.from_table(
...     {"rules": [{"match": "host-*.cpu", "tags": {"region": "eu"}, "detector": "sad"}]})
>>> factory.create("host-1.cpu", {"region": "eu"}).detector.name
'sad'
>>> factory.create("host-1.cpu", {"region": "us"}).detector.name
'zscore'
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import Any

from detectors.errors import DetectorError
from detectors.pipeline import PipelineConfig, StreamPipeline
from detectors.registry import names


class RulesError(DetectorError):
    """The ``[detectors]`` configuration is invalid. Not retriable: fix the config file."""

    retriable = False


_CONFIG_KEYS = {f.name for f in dataclasses.fields(PipelineConfig)}
_RULE_KEYS = _CONFIG_KEYS | {"match", "tags"}


@dataclasses.dataclass(frozen=True)
class Rule:
    """A stream-id glob and tag globs, and the pipeline config they select."""

    match: str
    tags: Mapping[str, str]
    config: PipelineConfig

    def matches(self, stream: str, tags: Mapping[str, str] | None) -> bool:
        if not fnmatch.fnmatchcase(stream, self.match):
            return False
        if not self.tags:
            return True
        tags = tags or {}
        return all(k in tags and fnmatch.fnmatchcase(str(tags[k]), v)
                   for k, v in self.tags.items())


def _config(where: str, raw: Mapping[str, Any], base: PipelineConfig) -> PipelineConfig:
    unknown = sorted(set(raw) - _RULE_KEYS)
    if unknown:
        raise RulesError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(_RULE_KEYS))}")
    values = {k: v for k, v in raw.items() if k in _CONFIG_KEYS}
    detector = values.get("detector", base.detector)
    if detector not in names():
        raise RulesError(f"{where}: unknown detector {detector!r}; "
                         f"choose one of: {', '.join(names())}")
    if "detector" in values and values["detector"] != base.detector and "params" not in values:
        values["params"] = {}  # the default's params belong to the default's detector
    if "params" in values and not isinstance(values["params"], Mapping):
        raise RulesError(f"{where}: params must be a table, got {values['params']!r}")
    if "bands" in values:
        bands = values["bands"]
        if not isinstance(bands, Mapping) or not bands:
            raise RulesError(f"{where}: bands must be a table of name = lower bound, "
                             f"e.g. {{ critical = 0.99999, warning = 0.999 }}")
        values["bands"] = tuple(sorted(((str(k), float(v)) for k, v in bands.items()),
                                       key=lambda kv: -kv[1]))
    try:
        config = dataclasses.replace(base, **values)
        StreamPipeline(config)  # builds the detector: catches bad params and thresholds
    except DetectorError as exc:
        raise RulesError(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise RulesError(f"{where}: invalid value: {exc}") from None
    return config


def parse_rules(table: Mapping[str, Any], default: PipelineConfig | None = None
                ) -> tuple[PipelineConfig, list[Rule]]:
    """Validate a ``[detectors]`` table into the default config and the ordered rules."""
    base = _config("[detectors.default]", table.get("default", {}), default or PipelineConfig())
    raw_rules = table.get("rules", [])
    if not isinstance(raw_rules, list):
        raise RulesError("[detectors] rules must be an array of tables: [[detectors.rules]]")
    rules = []
    for i, raw in enumerate(raw_rules):
        where = f"[[detectors.rules]] #{i + 1} (match={raw.get('match', '*')!r})"
        if not isinstance(raw, Mapping):
            raise RulesError(f"{where}: must be a table")
        tags = raw.get("tags", {})
        if not isinstance(tags, Mapping):
            raise RulesError(f"{where}: tags must be a table like {{ region = \"eu\" }}")
        rules.append(Rule(str(raw.get("match", "*")), {str(k): str(v) for k, v in tags.items()},
                          _config(where, raw, base)))
    return base, rules


class PipelineFactory:
    """Builds each new stream's pipeline from the first matching rule.

    Windowed detectors get the injected refit ``executor`` (and ``clock``).
    """

    def __init__(self, default: PipelineConfig, rules: list[Rule],
                 executor: Executor | None = None, clock: Callable[[], float] | None = None
                 ) -> None:
        self.default = default
        self.rules = rules
        self.executor = executor
        self.clock = clock

    @classmethod
    def from_table(cls, table: Mapping[str, Any] | None, default: PipelineConfig | None = None,
                   executor: Executor | None = None,
                   clock: Callable[[], float] | None = None) -> PipelineFactory:
        base, rules = parse_rules(table or {}, default)
        return cls(base, rules, executor, clock)

    @classmethod
    def from_settings(cls, settings: Any, executor: Executor | None = None,
                      clock: Callable[[], float] | None = None) -> PipelineFactory:
        """From ``streams.settings.Settings``: its ``detector``, ``threshold`` and
        ``warmup_events`` are the default rule; ``extra["detectors"]`` holds the rules."""
        default = PipelineConfig(detector=settings.detector, threshold=settings.threshold,
                                 warmup=settings.warmup_events)
        table = dict(getattr(settings, "extra", {}) or {}).get("detectors")
        return cls.from_table(table, default, executor, clock)

    def config_for(self, stream: str, tags: Mapping[str, str] | None = None) -> PipelineConfig:
        for rule in self.rules:
            if rule.matches(stream, tags):
                return rule.config
        return self.default

    def create(self, stream: str, tags: Mapping[str, str] | None = None) -> StreamPipeline:
        pipeline = StreamPipeline(self.config_for(stream, tags))
        bind = getattr(pipeline.detector, "bind", None)
        if bind is not None:
            bind(self.executor, self.clock)
        return pipeline

    __call__ = create
