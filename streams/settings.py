"""One typed settings object, read from ``PYNOMALY_*`` variables and an optional TOML file.

Precedence: defaults < TOML file < environment. Every value is validated up front so
that a bad setting stops start-up with a message naming the setting and the expected
form, instead of failing later inside Kafka or Faust.

Other packages declare their own settings dataclasses and load them with
:func:`load_dataclass`, so every setting in the project follows the same rules.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from detectors.thresholds import DEFAULT_THRESHOLD
from streams.errors import SettingsError

ENV_PREFIX = "PYNOMALY_"

T = TypeVar("T")


class Secret(str):
    """A string that never shows its value in repr, logs or exceptions."""

    def __repr__(self) -> str:
        return "Secret('***')" if self else "Secret('')"

    def reveal(self) -> str:
        return str.__str__(self)


def _doc(text: str, **kw: Any) -> Any:
    return dataclasses.field(metadata={"doc": text}, **kw)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Worker, CLI and topic settings. Env var = ``PYNOMALY_`` + the upper-cased name."""

    kafka_bootstrap: str = _doc("host:port[,host:port...] of the Kafka brokers", default="127.0.0.1:9092")
    app_id: str = _doc("Faust app id; also the consumer group id", default="pynomaly")
    dev_broker: bool = _doc("apply the Tansu dev-broker workarounds (tests, demo)", default=False)
    topic_events: str = _doc("input topic", default="pynomaly.events")
    topic_scores: str = _doc("every scored event", default="pynomaly.scores")
    topic_anomalies: str = _doc("anomalous scored events", default="pynomaly.anomalies")
    topic_deadletter: str = _doc("invalid input with reasons", default="pynomaly.deadletter")
    topic_alerts: str = _doc("incident transitions (audit log of alerts)", default="pynomaly.alerts")
    topic_feedback: str = _doc("user feedback on incidents", default="pynomaly.feedback")
    topic_state: str = _doc(
        "compacted topic of per-stream detector checkpoints (default: APP_ID.state)", default=""
    )
    # 30 s as Kafka Streams' commit interval: a checkpoint writes every changed stream, so
    # at 10,000 streams a 5 s cadence cost more CPU than scoring. After a crash the restored
    # state is at most this old; every event is still scored (see docs/reliability.md).
    checkpoint_interval_s: float = _doc("how often changed stream state is checkpointed, seconds",
                                        default=30.0)
    state_hmac_key: Secret = _doc(
        "key that signs checkpoints (secret); without it checkpoints are off, except on the dev broker",
        default=Secret(""),
    )
    topic_partitions: int = _doc("partitions for topics created at start-up", default=8)
    topic_replication: int = _doc("replication factor for topics created at start-up", default=1)
    web_port: int = _doc("port of the worker's web server (/metrics, /healthz)", default=6066)
    web_host: str = _doc("address the web server binds", default="127.0.0.1")
    data_dir: str = _doc("directory for Faust's local data", default=".pynomaly-data")
    log_level: str = _doc("debug, info, warning or error", default="info")
    max_record_bytes: int = _doc("larger input records are dead-lettered", default=1_000_000)
    # Kafka producers' max.request.size defaults to 1 MiB and brokers' message.max.bytes to
    # ~1 MiB; Faust's own default is 1,000,000. Every output is kept under this (dead letters
    # are truncated, outputs over it are dead-lettered), so one record can never fail a batch.
    producer_max_request_bytes: int = _doc(
        "largest produce request (the producer's max.request.size); outputs are kept under it",
        default=1_000_000)
    # Every feature name a stream ever sent is kept in its detector's state: without a cap a
    # producer sending new names grows it without bound (zscore: 58 KB -> 2 MB in 60 events).
    max_features_per_stream: int = _doc(
        "most distinct feature names a multivariate stream may send; events with new names "
        "past it are dead-lettered (too_many_features)", default=1000)
    max_events_per_record: int = _doc("largest JSON array of events in one record", default=10_000)
    # A day ahead: producers' clock skew, and local times sent as UTC (up to 14 h ahead).
    # Producers with synchronised clocks can use minutes. No age limit by default:
    # backfills and replays of old data (NAB is from 2013-2015) are legitimate.
    max_event_future_s: float = _doc(
        "events whose time is further ahead of the worker's clock are dead-lettered "
        "(ts_out_of_range), seconds", default=86_400.0)
    max_event_age_s: float = _doc(
        "events whose time is further behind the worker's clock are dead-lettered, seconds "
        "(0 = no limit)", default=0.0)
    batch_max_events: int = _doc("events taken from the stream per scoring batch", default=1000)
    # A young default stream takes ~2 KiB, a warm one ~50-66 KiB per feature (its 1,000-value
    # windows, docs/scaling.md): 100,000 warm univariate streams are ~6.3 GiB. The cap bounds
    # what a flood of new keys can cost; size it to the worker's memory.
    max_streams_in_memory: int = _doc(
        "most streams kept in memory; least recently scored ones are evicted to the checkpoint "
        "topic and restored on their next event (0 = no cap)", default=100_000)
    batch_within_s: float = _doc("longest wait to fill a scoring batch, seconds", default=0.02)
    producer_linger_ms: int = _doc("producer linger; batches output records", default=5)
    session_timeout_s: float = _doc("consumer group session timeout, seconds", default=30.0)
    heartbeat_interval_s: float = _doc("consumer group heartbeat interval, seconds", default=3.0)
    # 0.1 s: a killed worker's replacement re-scores what was processed since the last
    # commit; at 1 s that was 10-27% of a 20k-event burst (tests/faults), at 0.1 s ~0%.
    commit_interval_s: float = _doc("how often processed offsets are committed, seconds", default=0.1)
    detector: str = _doc("default detector name (see `pynomaly detectors`)", default="rarity_likelihood")
    threshold: float = _doc(
        "score in [0, 1] at or above which an event is anomalous (default: the false-alarm "
        "budget of one per stream per 30 days of one-minute data, docs/detectors.md)",
        default=DEFAULT_THRESHOLD)
    warmup_events: int = _doc("events a new stream learns from before it can alert", default=50)
    kafka_security_protocol: str = _doc(
        "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", default="PLAINTEXT"
    )
    kafka_sasl_mechanism: str = _doc("PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", default="PLAIN")
    kafka_sasl_username: str = _doc("SASL user name", default="")
    kafka_sasl_password: Secret = _doc("SASL password (secret)", default=Secret(""))
    kafka_ssl_cafile: str = _doc("CA bundle for TLS", default="")
    kafka_ssl_certfile: str = _doc("client certificate for mutual TLS", default="")
    kafka_ssl_keyfile: str = _doc("client key for mutual TLS", default="")
    # Not in repr: the [alerting] table may hold webhook URLs, tokens and secrets.
    extra: Mapping[str, Any] = _doc(
        "TOML tables other packages read (detectors, alerting...)", default_factory=dict, repr=False
    )

    def __post_init__(self) -> None:
        if not self.topic_state:
            # Per app: another app's checkpoints (another key) would only be rejected.
            object.__setattr__(self, "topic_state", f"{self.app_id}.state")
        _check(self.topic_partitions >= 1, "topic_partitions", "an integer >= 1")
        _check(self.topic_replication >= 1, "topic_replication", "an integer >= 1")
        _check(0 < self.web_port < 65536, "web_port", "a TCP port between 1 and 65535")
        _check(0.0 < self.threshold <= 1.0, "threshold", "a number in (0, 1]")
        _check(self.max_record_bytes >= 64, "max_record_bytes", "an integer >= 64")
        _check(self.producer_max_request_bytes >= 131_072, "producer_max_request_bytes",
               "an integer >= 131072 (a dead letter takes up to ~100 KB)")
        _check(self.max_event_future_s > 0, "max_event_future_s", "a number of seconds > 0")
        _check(self.max_event_age_s >= 0, "max_event_age_s", "a number of seconds >= 0 (0 = no limit)")
        _check(self.max_features_per_stream >= 1, "max_features_per_stream", "an integer >= 1")
        _check(self.batch_max_events >= 1, "batch_max_events", "an integer >= 1")
        _check(self.max_streams_in_memory >= 0, "max_streams_in_memory", "an integer >= 0 (0 = no cap)")
        _check(self.batch_within_s > 0, "batch_within_s", "a number of seconds > 0")
        _check(self.warmup_events >= 0, "warmup_events", "an integer >= 0")
        _check(self.checkpoint_interval_s > 0, "checkpoint_interval_s", "a number of seconds > 0")
        _check(not self.state_hmac_key or len(self.state_hmac_key) >= 16, "state_hmac_key",
               "a secret of at least 16 characters (a long random value)")
        _check(
            self.log_level.lower() in {"debug", "info", "warning", "error"},
            "log_level",
            "one of debug, info, warning, error",
        )
        _check(
            self.kafka_security_protocol in {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"},
            "kafka_security_protocol",
            "one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
        )
        _check(
            self.kafka_sasl_mechanism in {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"},
            "kafka_sasl_mechanism",
            "one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
        )
        for part in self.kafka_bootstrap.split(","):
            host, _, port = part.strip().rpartition(":")
            _check(
                bool(host) and port.isdigit(),
                "kafka_bootstrap",
                "host:port[,host:port...], for example 127.0.0.1:9092",
                self.kafka_bootstrap,
            )

    @property
    def max_output_bytes(self) -> int:
        """Largest key + value of one output record: the request size less batch overhead."""
        return self.producer_max_request_bytes - 1024

    @property
    def output_topics(self) -> tuple[str, ...]:
        return (self.topic_scores, self.topic_anomalies, self.topic_deadletter)

    def with_overrides(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (a name may resolve to anything)."""
    host = host.strip().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check(ok: bool, name: str, expected: str, value: object = None) -> None:
    if not ok:
        shown = f" (got {value!r})" if value is not None else ""
        raise SettingsError(
            f"invalid setting {name} / {ENV_PREFIX}{name.upper()}{shown}: expected {expected}"
        )


def dev_broker_profile(settings: Settings) -> Settings:
    """The Tansu workarounds; never part of the production defaults.

    Tansu's group joins take half the session timeout, so a short session keeps
    rebalances to seconds.
    """
    return settings.with_overrides(
        dev_broker=True,
        session_timeout_s=min(settings.session_timeout_s, 3.0),
        heartbeat_interval_s=min(settings.heartbeat_interval_s, 0.5),
    )


def _convert(name: str, raw: Any, typ: Any) -> Any:
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if raw is None or raw == "":
            return None
        return _convert(name, raw, args[0])
    if typ is Secret:
        return Secret(str(raw))
    if typ is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off", ""}:
            return False
        _check(False, name, "a boolean (true/false, 1/0, yes/no)", raw)
    if typ is int:
        if isinstance(raw, bool):
            _check(False, name, "an integer", raw)
        try:
            return int(str(raw).replace("_", ""))
        except ValueError:
            _check(False, name, "an integer", raw)
    if typ is float:
        try:
            value = float(raw)
        except (TypeError, ValueError):
            _check(False, name, "a number", raw)
        return value
    if typ is str:
        if not isinstance(raw, str | int | float):
            _check(False, name, "a string", raw)
        return str(raw)
    if origin is tuple:
        if isinstance(raw, str):
            return tuple(p.strip() for p in raw.split(",") if p.strip())
        if isinstance(raw, list):
            return tuple(str(p) for p in raw)
        _check(False, name, "a comma-separated list", raw)
    return raw


def load_dataclass(
    cls: type[T],
    environ: Mapping[str, str] | None = None,
    table: Mapping[str, Any] | None = None,
    prefix: str = ENV_PREFIX,
    **overrides: Any,
) -> T:
    """Build dataclass ``cls`` from a TOML table, then ``prefix``+NAME env vars, then overrides."""
    environ = os.environ if environ is None else environ
    table = table or {}
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = [k for k in table if k not in fields and not isinstance(table[k], dict)]
    if unknown:
        raise SettingsError(
            f"unknown setting(s) {', '.join(sorted(unknown))} in the config file; "
            f"known: {', '.join(sorted(fields))}"
        )
    values: dict[str, Any] = {}
    for name, _field in fields.items():
        if name == "extra":
            continue
        if name in table:
            values[name] = _convert(name, table[name], hints[name])
        env_name = prefix + name.upper()
        if env_name in environ:
            values[name] = _convert(name, environ[env_name], hints[name])
    values.update(overrides)
    if "extra" in fields:
        values["extra"] = {k: v for k, v in table.items() if isinstance(v, dict)}
    return cls(**values)


def read_toml(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    if path is None:
        return {}
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"config file {p} does not exist; pass an existing TOML file to --config") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {p} is not valid TOML: {exc}") from None


def load_settings(
    config: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Settings from defaults, the TOML file (``--config`` or ``PYNOMALY_CONFIG``) and env."""
    environ = os.environ if environ is None else environ
    config = config or environ.get(ENV_PREFIX + "CONFIG") or None
    settings = load_dataclass(Settings, environ, read_toml(config), **overrides)
    if settings.dev_broker:
        settings = dev_broker_profile(settings)
    return settings


def describe_settings() -> list[tuple[str, str, str]]:
    """(env var, default, doc) for every setting: used by the CLI help and docs."""
    rows = []
    for f in dataclasses.fields(Settings):
        if f.name == "extra":
            continue
        default = f.default if f.default is not dataclasses.MISSING else ""
        rows.append((ENV_PREFIX + f.name.upper(), str(default), f.metadata.get("doc", "")))
    return rows
