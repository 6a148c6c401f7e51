"""The service's AsyncAPI document: its topics and their payload schemas.

`make docs` writes it to docs/asyncapi.yaml (worker/tools/asyncapi_document.py, in a stable
order) for the contract's default topic names; a test fails when the file is stale. The running
worker also serves it at `/docs/asyncapi` (and `/docs/asyncapi.json`), with "try it out"
publishing disabled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faststream.specification import AsyncAPI

from schemas import DeadLetter, QualificationUpdated

if TYPE_CHECKING:
    from faststream.kafka import KafkaBroker

    from worker.settings import Settings

TITLE = "qualification-worker"
VERSION = "0.1.0"  # pyproject's version; bump both together
DESCRIPTION = (
    "Extracts BANT and MEDDIC qualification signals from B2B sales conversation turns and "
    "publishes one `QualificationUpdated` per committed state version (at least once; "
    "dedupe on `event_id`). Records it cannot read go to the dead-letter topic."
)


def specification() -> AsyncAPI:
    return AsyncAPI(title=TITLE, version=VERSION, description=DESCRIPTION)


def declare_publishers(broker: KafkaBroker, settings: Settings) -> None:
    """What the worker publishes, for the document. The outbox relay sends the updates with
    its own producer and the consumer sends dead letters with `broker.publish`."""
    broker.publisher(
        settings.update_topic,
        title=f"{settings.update_topic} publisher",
        description="One event per committed state version, keyed by conversation, "
        "header `event_id`.",
        schema=QualificationUpdated,
    )
    broker.publisher(
        settings.dlq_topic,
        title=f"{settings.dlq_topic} publisher",
        description="Records that could not be applied, with the reason and their position.",
        schema=DeadLetter,
    )


def contract_settings() -> Settings:
    """Settings with the contract's default topics and servers, whatever the environment says."""
    from worker.settings import TOPIC_SETTINGS, Settings

    names = ("kafka_bootstrap_servers", *TOPIC_SETTINGS)
    defaults: dict[str, Any] = {name: Settings.model_fields[name].default for name in names}
    return Settings(**defaults)
