"""pynomaly detectors: streams, state memory, refits, checkpoints, scores and calibration."""

from grafanalib.core import Template

from dashboards.common import DATASOURCE, build, quantile, rate, series, target, targets
from streams import metrics as m

# Observed share of scored events at or above each calibrated-score band. For a calibrated
# detector the share above 0.999 should be near 0.001, and so on.
TAILS = ("0.99", "0.999", "0.99999")


def _tail(le: str) -> str:
    return (f"1 - sum(rate({m.SCORE}_bucket{{le=\"{le}\"}}[$__rate_interval]))"
            f" / sum(rate({m.SCORE}_count[$__rate_interval]))")


# Alerts link here with var-stream=<stream> (streams/alerting/notify.py); a score point links
# to the stream explorer over the dashboard's time range. explore_url is the explorer's
# base (PYNOMALY_EXPLORE_URL): set it when provisioning the dashboard.
STREAM_VARIABLES = [
    Template(name="stream", label="Stream", query=f"label_values({m.STREAM_SCORE}, stream)",
             dataSource=DATASOURCE, includeAll=True, multi=True, allValue=".*", default="All"),
    Template(name="explore_url", label="Explorer URL", type="textbox", query="http://localhost:6066",
             default="http://localhost:6066"),
]
EXPLORE_LINK = {"title": "Open ${__field.labels.stream} in the stream explorer", "targetBlank": True,
                "url": "${explore_url}/explore?stream=${__field.labels.stream}"
                       "&from=${__from:date:seconds}&to=${__to:date:seconds}"}

dashboard = build(
    title="pynomaly: detectors",
    uid="pynomaly-detectors",
    description="Detector state, refits, checkpoints, opted-in stream scores and calibration.",
    panels=[
        series("Active streams", "Streams with a detector in memory, per worker",
               [target(f"sum by (instance)({m.ACTIVE_STREAMS})", "{{instance}}")]),
        series("Detector state memory", "Estimated bytes of detector state, per worker",
               [target(f"sum by (instance)({m.DETECTOR_STATE_BYTES})", "{{instance}}")],
               unit="bytes"),
        series("Refits by detector", "Detector refits per second",
               [target(rate(m.REFITS, "detector"), "{{detector}}")], unit="ops"),
        series("Refit duration (p99)", "Time one refit takes, by detector",
               [target(quantile(0.99, m.REFIT_DURATION, "detector"), "{{detector}}")],
               unit="s"),
        series("Checkpoint writes", "State checkpoints written per second, by outcome",
               [target(rate(m.CHECKPOINT_WRITES, "outcome"), "{{outcome}}")], unit="ops"),
        series("Checkpoint duration", "Serialize, sign and produce one checkpoint",
               targets((quantile(0.5, m.CHECKPOINT_DURATION), "p50"),
                       (quantile(0.99, m.CHECKPOINT_DURATION), "p99")), unit="s"),
        series("Checkpoint restores", "Stream states read back per second; rejected = bad HMAC",
               targets((rate(m.CHECKPOINT_RESTORES, "outcome"), "{{outcome}}"),
                       (rate(m.EVENTS_REPLAYED), "replayed events skipped")), unit="ops"),
        series("Scores of opted-in streams", "Latest calibrated score, per configured stream "
               "(the stream variable filters; click a point to open the stream explorer)",
               [target(f"max by (stream)({m.STREAM_SCORE}{{stream=~\"$stream\"}})", "{{stream}}")],
               links=[EXPLORE_LINK]),
        series("Calibration: observed tail share", "Share of scores above each band; a "
               "calibrated detector shows about 1 - band",
               targets(*[(_tail(le), f"above {le}") for le in TAILS]), unit="percentunit"),
        series("Warm-up share", "Share of scored events whose stream was still warming up",
               [target(f"{rate(m.EVENTS_WARMING_UP)} / {rate(m.EVENTS_SCORED)}", "warming up")],
               unit="percentunit"),
        series("Anomaly rate", "Anomalous share of scored events",
               [target(f"{rate(m.ANOMALIES)} / {rate(m.EVENTS_SCORED)}", "anomalous")],
               unit="percentunit"),
    ],
)
dashboard.templating.list.extend(STREAM_VARIABLES)
