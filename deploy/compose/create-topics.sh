#!/usr/bin/env bash
# Create pynomaly's topics with explicit partitions, retention and cleanup policy.
# Runs once in the apache/kafka image (kafka-init service); safe to re-run.
# Every topic gets the same partition count: the worker's tables and forwards require
# co-partitioned topics (a stream's key maps to the same partition number everywhere).
set -euo pipefail

BOOTSTRAP="${BOOTSTRAP:-kafka:9092}"
PARTITIONS="${PARTITIONS:-8}"
REPLICATION="${REPLICATION:-1}"
TOPICS_BIN="${TOPICS_BIN:-/opt/kafka/bin/kafka-topics.sh}"

DAY_MS=86400000
# name|retention.ms (empty: none)|cleanup.policy
TOPICS=(
  "pynomaly.events|$((7 * DAY_MS))|delete"
  "pynomaly.scores|$((3 * DAY_MS))|delete"
  "pynomaly.anomalies|$((30 * DAY_MS))|delete"
  "pynomaly.deadletter|$((14 * DAY_MS))|delete"
  "pynomaly.alerts|$((90 * DAY_MS))|delete"
  "pynomaly.feedback|$((90 * DAY_MS))|delete"
  # Latest detector state per stream: compaction only, never time-based deletion, or
  # quiet streams would lose their state. Small segments so compaction keeps up.
  "pynomaly.state||compact"
)

for spec in "${TOPICS[@]}"; do
  IFS='|' read -r name retention policy <<< "$spec"
  configs=(--config "cleanup.policy=$policy")
  if [[ -n "$retention" ]]; then
    configs+=(--config "retention.ms=$retention")
  else
    configs+=(--config "segment.ms=3600000" --config "min.compaction.lag.ms=60000")
  fi
  "$TOPICS_BIN" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
    --topic "$name" --partitions "$PARTITIONS" --replication-factor "$REPLICATION" \
    "${configs[@]}"
done
"$TOPICS_BIN" --bootstrap-server "$BOOTSTRAP" --list
