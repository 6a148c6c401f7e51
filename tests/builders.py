"""Builders the tests share: a turn as the extractor reads it, a consumer record, a stored state.

(The wire payload of a turn is `tests.harness.turn`; a labelled dataset's turn is
`tests.eval_conversations.turn`.)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from schemas import (
    Channel,
    ConversationKey,
    ConversationState,
    DealStage,
    QualificationState,
    Speaker,
)
from worker.extract.port import TurnText

START = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
KEY = ConversationKey(uuid.UUID("00000000-0000-4000-8000-000000000002"), "acme", "jane")


def turn_text(
    text: str,
    minute: int = 0,
    *,
    speaker: Speaker = Speaker.PROSPECT,
    channel: Channel = Channel.CHAT,
    start: datetime = START,
) -> TurnText:
    """A stored turn as the extractor reads it, `minute` minutes after `start`."""
    return TurnText(
        event_id=uuid.uuid4(),
        speaker=speaker,
        channel=channel,
        text=text,
        occurred_at=start + timedelta(minutes=minute),
    )


def turn_texts(
    lines: Iterable[tuple[Speaker, str]],
    *,
    channel: Channel = Channel.CHAT,
    start: datetime = START,
) -> list[TurnText]:
    """One turn per (speaker, text) line, a minute apart."""
    return [
        turn_text(text, minute, speaker=speaker, channel=channel, start=start)
        for minute, (speaker, text) in enumerate(lines)
    ]


@dataclass(kw_only=True)
class Record:
    """What the consumer reads of a Kafka record (aiokafka's ConsumerRecord has more)."""

    value: bytes | None
    key: bytes | None = b"k"
    topic: str = "conversation.turn"
    partition: int = 0
    offset: int = 0


def state_at(
    stage: DealStage,
    *,
    stalled_from: DealStage | None = None,
    qualification: QualificationState | None = None,
    last_interaction: datetime | None = None,
    interaction_count: int = 0,
    version: int = 1,
) -> ConversationState:
    """The stored state of KEY's conversation at `stage`."""
    return ConversationState(
        tenant_id=KEY.tenant_id,
        account_id=KEY.account_id,
        contact_id=KEY.contact_id,
        contact_email="jane@acme.example",
        deal_stage=stage,
        stalled_from=stalled_from,
        qualification=qualification or QualificationState(),
        last_interaction=last_interaction,
        interaction_count=interaction_count,
        version=version,
    )
