"""AlertingSettings: sinks (from secrets in env vars), lifecycle timings, routes, silences.

Loaded with :func:`streams.settings.load_dataclass` from ``PYNOMALY_*`` variables and the
TOML ``[alerting]`` table (``[[alerting.routes]]`` and ``[[alerting.silences]]`` are
arrays of tables). A sink is enabled when its URL or key is set. URLs, keys and secrets
are :class:`~streams.settings.Secret`: their repr never shows the value, and so is
``control_token`` (``PYNOMALY_CONTROL_TOKEN``), the bearer token of the control endpoints
(:mod:`streams.alerting.control`). ``false_positive_strict_*`` bound how much stricter
false-positive feedback makes a stream's threshold, and for how long
(:class:`~streams.alerting.feedback.Strictness`). See docs/alerting.md.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Mapping
from typing import Any

from sinks.delivery import DeliveryPolicy
from streams.alerting.lifecycle import Timings
from streams.alerting.routing import Route, Router
from streams.alerting.silences import Silence, SilenceSet
from streams.errors import SettingsError
from streams.settings import Secret, is_loopback_host, load_dataclass

SINK_NAMES = ("slack", "teams", "pagerduty", "webhook", "kafka")


def _doc(text: str, **kw: Any) -> Any:
    return dataclasses.field(metadata={"doc": text}, **kw)


@dataclasses.dataclass(frozen=True)
class AlertingSettings:
    """Env var = ``PYNOMALY_`` + upper-cased name; TOML keys go in ``[alerting]``."""

    slack_webhook_url: Secret = _doc("Slack incoming webhook URL (enables Slack)", default=Secret(""))
    teams_webhook_url: Secret = _doc("Teams Workflows webhook URL (enables Teams)", default=Secret(""))
    pagerduty_routing_key: Secret = _doc("PagerDuty Events v2 integration key (enables PagerDuty)",
                                         default=Secret(""))
    pagerduty_url: Secret = _doc("PagerDuty Events API base URL",
                                 default=Secret("https://events.pagerduty.com"))
    webhook_url: Secret = _doc("generic webhook URL (enables the webhook sink)", default=Secret(""))
    webhook_secret: Secret = _doc("HMAC-SHA256 key for the webhook signature", default=Secret(""))
    notify_topic: str = _doc("Kafka topic that receives every notification as JSON (enables the "
                             "kafka sink)", default="")
    dashboard_url: Secret = _doc("Grafana base URL for links in notifications", default=Secret(""))
    explore_url: str = _doc("base URL of the stream explorer that notifications link to "
                            "(default: the worker's own web address)", default="")
    dashboard_uid: str = _doc("uid of the Grafana dashboard linked from notifications",
                              default="pynomaly-detectors")
    min_duration_s: float = _doc("an anomaly run must last this long to open an incident", default=0.0)
    min_count: int = _doc("...and hold this many anomalous records", default=1)
    # A minute: real-time alerting resolves a spike's incident a minute after it ends, and
    # spikes more than quiet_s + cooldown_s apart page separately.
    quiet_s: float = _doc("event-time seconds without anomalies that resolve an incident", default=60.0)
    update_interval_s: float = _doc("at most one 'updated' alert record per incident per interval",
                                    default=300.0)
    cooldown_s: float = _doc("new incidents on a stream this soon after a notified resolve stay quiet "
                             "(short: quiet_s already merges anomalies closer than that)", default=30.0)
    lateness_s: float = _doc("event-time lateness allowed before the watermark resolves", default=60.0)
    new_sink_lookback_s: float = _doc("a sink enabled for the first time starts with the alert records "
                                      "of this many seconds before the worker started", default=600.0)
    idle_resolve_s: float = _doc("wall-clock seconds without any scored record on a partition that "
                                 "resolve its open incidents (0: quiet_s)", default=0.0)
    group_window_s: float = _doc("window in which many new incidents become one group", default=120.0)
    group_max_individual: int = _doc("incidents per window notified one by one", default=5)
    group_top_n: int = _doc("members listed in a group notification", default=10)
    false_positive_suppress_s: float = _doc("quiet period after false-positive feedback", default=3600.0)
    false_positive_strict_s: float = _doc("how long false-positive feedback keeps a stricter "
                                          "threshold on that stream+detector", default=86400.0)
    false_positive_strict_factor: float = _doc("each false positive multiplies the accepted tail "
                                               "(1 - threshold) by this (0 < f < 1)", default=0.1)
    false_positive_strict_max_steps: int = _doc("at most this many stricter steps stack up",
                                                default=3)
    control_token: Secret = _doc("bearer token the control endpoints (/incidents, /silences, "
                                 "/feedback) require; empty: no token (bind 127.0.0.1 only)",
                                 default=Secret(""))
    allow_http_sinks: bool = _doc("allow plain http:// sink URLs beyond loopback (https otherwise)",
                                  default=False)
    control_max_silences: int = _doc("most silences the control API holds at once", default=1000)
    control_max_silence_s: float = _doc("longest silence the control API creates, seconds",
                                        default=7 * 86_400.0)
    notify_update_interval_s: float = _doc("chat updates (on escalation) at most this often",
                                           default=1800.0)
    default_sinks: tuple[str, ...] = _doc("sinks of the default route (empty: all enabled)", default=())
    max_attempts: int = _doc("delivery attempts per notification", default=6)
    base_backoff_s: float = _doc("first retry delay; doubles per attempt, with jitter", default=0.5)
    max_backoff_s: float = _doc("longest retry delay", default=60.0)
    deadline_s: float = _doc("give up and dead-letter after this long", default=300.0)
    breaker_failures: int = _doc("consecutive failures that open a sink's circuit", default=5)
    breaker_reset_s: float = _doc("open-circuit time before a trial send", default=30.0)
    slack_rate_per_s: float = _doc("Slack messages per second per webhook", default=1.0)
    rate_per_s: float = _doc("messages per second for the other sinks", default=5.0)
    http_timeout_s: float = _doc("HTTP timeout per attempt", default=10.0)
    routes: list[dict[str, Any]] = _doc("[[alerting.routes]]: streams, tags, min_severity, sinks",
                                        default_factory=list)
    silences: list[dict[str, Any]] = _doc("[[alerting.silences]]: stream, tags, starts_at, ends_at",
                                          default_factory=list)

    def __post_init__(self) -> None:
        for name in ("quiet_s", "group_window_s", "http_timeout_s", "rate_per_s", "slack_rate_per_s",
                     "control_max_silence_s",
                     "deadline_s", "base_backoff_s"):
            if not getattr(self, name) > 0:
                raise SettingsError(f"invalid setting {name} / PYNOMALY_{name.upper()}: expected > 0")
        for name in ("min_duration_s", "cooldown_s", "lateness_s", "update_interval_s", "idle_resolve_s",
                     "new_sink_lookback_s"):
            if getattr(self, name) < 0:
                raise SettingsError(f"invalid setting {name} / PYNOMALY_{name.upper()}: expected >= 0")
        if not 0 < self.false_positive_strict_factor < 1:
            raise SettingsError("invalid setting false_positive_strict_factor / "
                                "PYNOMALY_FALSE_POSITIVE_STRICT_FACTOR: expected 0 < f < 1")
        if self.false_positive_strict_s < 0:
            raise SettingsError("invalid setting false_positive_strict_s / "
                                "PYNOMALY_FALSE_POSITIVE_STRICT_S: expected >= 0")
        for name in ("min_count", "max_attempts", "breaker_failures", "group_top_n", "control_max_silences",
                     "false_positive_strict_max_steps"):
            if getattr(self, name) < 1:
                raise SettingsError(f"invalid setting {name} / PYNOMALY_{name.upper()}: expected >= 1")
        if self.explore_url and not self.explore_url.startswith(("http://", "https://")):
            raise SettingsError("invalid setting explore_url / PYNOMALY_EXPLORE_URL: expected an "
                                f"http(s):// URL such as https://explore.example.com, got {self.explore_url!r}")
        for name in ("slack_webhook_url", "teams_webhook_url", "webhook_url", "pagerduty_url",
                     "dashboard_url"):
            value = getattr(self, name)
            if value and not str(value).startswith(("http://", "https://")):
                raise SettingsError(f"invalid setting {name} / PYNOMALY_{name.upper()}: expected an "
                                    "http(s):// URL (value hidden: it is a secret)")
            if (value and name != "dashboard_url" and str(value).startswith("http://")
                    and not self.allow_http_sinks
                    and not is_loopback_host(urllib.parse.urlsplit(str(value)).hostname or "")):
                raise SettingsError(f"invalid setting {name} / PYNOMALY_{name.upper()}: plain http "
                                    "sends the alert (and the URL's secret) unencrypted; use https, "
                                    "or set PYNOMALY_ALLOW_HTTP_SINKS=true (value hidden: it is a secret)")
        key = self.pagerduty_routing_key
        if key and len(key) != 32:
            raise SettingsError("invalid setting PYNOMALY_PAGERDUTY_ROUTING_KEY: expected the "
                                f"32-character Events API v2 integration key, got {len(key)} characters")
        if self.webhook_url and not self.webhook_secret:
            raise SettingsError("PYNOMALY_WEBHOOK_URL is set but PYNOMALY_WEBHOOK_SECRET is not: "
                                "set a shared secret so receivers can verify the signature")
        unknown = sorted(set(self.default_sinks) - set(SINK_NAMES))
        if unknown:
            raise SettingsError(f"invalid setting default_sinks: unknown {', '.join(unknown)}; "
                                f"known: {', '.join(SINK_NAMES)}")
        self.router()  # validates routes now, not at the first alert
        self.silence_set()

    @property
    def enabled_sinks(self) -> list[str]:
        configured = {"slack": self.slack_webhook_url, "teams": self.teams_webhook_url,
                      "pagerduty": self.pagerduty_routing_key, "webhook": self.webhook_url,
                      "kafka": self.notify_topic}
        return [name for name in SINK_NAMES if configured[name]]

    def timings(self) -> Timings:
        return Timings(self.min_duration_s, self.min_count, self.quiet_s, self.update_interval_s,
                       self.cooldown_s, self.lateness_s)

    def router(self) -> Router:
        routes = [Route.from_dict(r, i, SINK_NAMES) for i, r in enumerate(self.routes)]
        return Router(routes, self.default_sinks, self.enabled_sinks)

    def silence_set(self) -> SilenceSet:
        return SilenceSet(Silence.from_dict(s, f"[[alerting.silences]] #{i + 1}")
                          for i, s in enumerate(self.silences))

    def policy(self, sink: str) -> DeliveryPolicy:
        return DeliveryPolicy(
            max_attempts=self.max_attempts, base_backoff_s=self.base_backoff_s,
            max_backoff_s=self.max_backoff_s, deadline_s=self.deadline_s,
            rate_per_s=self.slack_rate_per_s if sink == "slack" else self.rate_per_s,
            burst=1 if sink == "slack" else 5, breaker_failures=self.breaker_failures,
            breaker_reset_s=self.breaker_reset_s)


def load_alerting_settings(environ: Mapping[str, str] | None = None,
                           table: Mapping[str, Any] | None = None, **overrides: Any) -> AlertingSettings:
    """From env vars and the ``[alerting]`` TOML table (``Settings.extra["alerting"]``)."""
    return load_dataclass(AlertingSettings, environ, table, **overrides)


def describe_alerting_settings() -> list[tuple[str, str, str]]:
    """(env var, default, doc) for every alerting setting, like ``describe_settings``."""
    rows = []
    for f in dataclasses.fields(AlertingSettings):
        if f.name in ("routes", "silences"):
            rows.append((f"[[alerting.{f.name}]]", "", f.metadata.get("doc", "")))
            continue
        default = f.default if f.default is not dataclasses.MISSING else ""
        if isinstance(default, Secret):
            default = Secret("") if not default else default  # shown: defaults are not secret
        rows.append((f"PYNOMALY_{f.name.upper()}", str(default), f.metadata.get("doc", "")))
    return rows
