"""Start-up check of `KAFKA_MAX_REQUEST_BYTES` against what the broker takes.

A produce request the broker refuses for its size fails however often it is retried, so a
producer limit above the broker's would let a dead letter or an update event through the
worker's own size checks and then be refused. Kafka says its limit through DescribeConfigs
(`max.message.bytes` of a topic, which defaults to the broker's `message.max.bytes`); brokers
that do not answer it (the embedded Tansu closes the connection) are logged and trusted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError

from worker.errors import ConfigurationError

log = structlog.get_logger(__name__)

TOPIC_LIMIT = "max.message.bytes"
ANSWER_WITHIN_S = 5.0  # a broker that cannot tell must not hold up the start for long

# Publish errors about the message itself (its size), which a retry would only repeat. A
# timeout or a lost connection is not among them: the broker may be down.
REFUSED_FOR_GOOD = (MessageSizeTooLargeError, RecordListTooLargeError)


async def check_request_limit(
    bootstrap_servers: str, topics: Sequence[str], max_request_bytes: int
) -> None:
    """Refuse to start (ConfigurationError) when a topic the worker publishes to takes less
    than `max_request_bytes`; log and go on when the broker cannot tell."""
    try:
        async with asyncio.timeout(ANSWER_WITHIN_S):
            limits = await topic_limits(bootstrap_servers, topics)
    except Exception as error:  # an old or partial Kafka protocol: nothing to compare with
        log.info("broker_limit_unknown", error=type(error).__name__, topics=list(topics))
        return
    refuse_over(limits, max_request_bytes)
    log.info("broker_limit_checked", limits=limits, max_request_bytes=max_request_bytes)


def refuse_over(limits: dict[str, int], max_request_bytes: int) -> None:
    """ConfigurationError naming the first topic that takes less than `max_request_bytes`."""
    for topic, limit in sorted(limits.items()):
        if limit < max_request_bytes:
            raise ConfigurationError(
                f"KAFKA_MAX_REQUEST_BYTES: {max_request_bytes} is more than topic {topic} "
                f"takes ({TOPIC_LIMIT}={limit}); raise the topic's limit"
            )


async def topic_limits(bootstrap_servers: str, topics: Sequence[str]) -> dict[str, int]:
    """`max.message.bytes` of each topic the broker describes (a missing topic is left out)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, topic, configs={TOPIC_LIMIT: None})
                for topic in topics
            ]
        )
    finally:
        await admin.close()
    limits: dict[str, int] = {}
    for response in responses:
        # DescribeConfigs v0/v1: (error_code, error_message, type, name, [(name, value, ...)]).
        for error_code, _, _, name, entries in response.resources:
            for entry in entries if error_code == 0 else ():
                if entry[0] == TOPIC_LIMIT and entry[1] is not None:
                    limits[name] = int(entry[1])
    return limits
