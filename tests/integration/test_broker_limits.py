"""KAFKA_MAX_REQUEST_BYTES against what the broker takes, at start-up."""

from __future__ import annotations

import pytest
import structlog

from tests.harness import Topics
from worker.errors import ConfigurationError
from worker.ingest.broker_limits import check_request_limit, refuse_over

MIB = 1024 * 1024


def test_a_topic_that_takes_less_than_the_producer_sends_refuses_the_start() -> None:
    with pytest.raises(ConfigurationError) as refused:
        refuse_over({"updates": 1_048_588, "dlq": 500_000}, MIB)
    assert str(refused.value) == (
        "KAFKA_MAX_REQUEST_BYTES: 1048576 is more than topic dlq takes "
        "(max.message.bytes=500000); raise the topic's limit"
    )


def test_topics_that_take_kafkas_default_pass() -> None:
    refuse_over({"updates": 1_048_588, "dlq": 1_048_588}, MIB)  # Kafka's message.max.bytes


async def test_a_broker_that_cannot_tell_its_limit_is_logged_and_trusted(
    kafka_bootstrap_servers: str, topics: Topics
) -> None:
    """The embedded broker (Tansu) closes the connection on DescribeConfigs: logged, and the
    start goes on (a broker that answers with enough room passes too)."""
    with structlog.testing.capture_logs() as logs:
        await check_request_limit(kafka_bootstrap_servers, [topics.updates, topics.dlq], MIB)
    events = [entry["event"] for entry in logs]
    assert events in (["broker_limit_unknown"], ["broker_limit_checked"])
