"""Topic names and their creation at start-up."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.errors import BrokerError
from streams.kafka_auth import aiokafka_auth_kwargs
from streams.settings import Settings

log = logging.getLogger(__name__)


def all_topics(settings: Settings) -> list[str]:
    return [
        settings.topic_events,
        settings.topic_scores,
        settings.topic_anomalies,
        settings.topic_deadletter,
        settings.topic_alerts,
        settings.topic_feedback,
    ]


async def ensure_topics(settings: Settings, topics: list[str] | None = None) -> list[str]:
    """Create the missing topics with the configured partitions; returns those created."""
    wanted = topics or all_topics(settings)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, **aiokafka_auth_kwargs(settings)
    )
    try:
        await admin.start()
    except Exception as exc:
        raise BrokerError(
            f"cannot reach Kafka at {settings.kafka_bootstrap} ({type(exc).__name__}); "
            "check PYNOMALY_KAFKA_BOOTSTRAP, or run `pynomaly broker` for a local one"
        ) from None
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(t, settings.topic_partitions, settings.topic_replication)
                    for t in missing
                ]
            )
            log.info("created topics %s with %d partitions", missing, settings.topic_partitions)
        if topics is None and settings.topic_state not in existing:
            # State partition p holds the streams of events partition p: same count, compacted.
            described = await admin.describe_topics([settings.topic_events])
            partitions = len(described[0]["partitions"]) or settings.topic_partitions
            await admin.create_topics([NewTopic(
                settings.topic_state, partitions, settings.topic_replication,
                topic_configs={"cleanup.policy": "compact"},
            )])
            missing.append(settings.topic_state)
        return missing
    finally:
        await admin.close()
