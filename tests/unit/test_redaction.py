"""Contact data out of the text the extractor sees (worker/extract/redaction.py)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from schemas import DealStage, NextStage, QualificationState
from worker.extract.port import ExtractionResult, TurnText
from worker.extract.redaction import RedactingExtractor, luhn_valid, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mail jane.doe@acme.com today", "Mail [email] today"),
        ("cc: j.o'neil+sales@eu.globex-corp.co.uk, thanks", "cc: [email], thanks"),
        ("<first.last@sub.example.org>", "<[email]>"),
        ("名前jane@acme.com", "名前[email]"),
    ],
)
def test_emails_become_placeholders(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_an_apostrophe_before_an_email_is_not_part_of_it() -> None:
    assert redact("Jane's address: 'jane@acme.com'") == "Jane's address: '[email]'"


@pytest.mark.parametrize(
    "phone",
    [
        "(415) 555-0132",
        "415-867-5309",
        "212 555 1234",
        "650.253.0000",
        "+1 (650) 253-0000",
        "+44 20 7946 0958",
        "+49 30 901820",
        "+33 1 42 68 53 00",
        "+61 2 9374 4000",
    ],
)
def test_us_and_international_phone_numbers_become_placeholders(phone: str) -> None:
    assert redact(f"Call me on {phone} after lunch.") == "Call me on [phone] after lunch."


@pytest.mark.parametrize(
    "card", ["4111 1111 1111 1111", "4111-1111-1111-1111", "5500005555555559", "378282246310005"]
)
def test_card_numbers_that_pass_luhn_become_placeholders(card: str) -> None:
    assert redact(f"my card is {card}, expires soon") == "my card is [card], expires soon"


@pytest.mark.parametrize(
    "text",
    [
        "Budget is $80,000 for the year, maybe $120k.",
        "We go live on 2026-10-05 or 12/05/2026.",
        "Signed in 2027, rollout by Q3 2027.",
        "Order 4111111111111112 was late.",  # 16 digits, fails Luhn: an id, not a card
        "Ticket 98765432 and PO #123456789.",
        "800 seats, 1,000,000 users, version 1.2.3.",
        "Between 50k and 80k, 15% discount.",
    ],
)
def test_amounts_dates_years_quarters_and_ids_are_left_alone(text: str) -> None:
    assert redact(text) == text


def test_everything_in_one_turn_is_redacted_and_the_rest_kept() -> None:
    text = (
        "Budget is $80,000 by Q3 2027. Reach me at jane@acme.com or +1 415-867-5309; "
        "pay with 4111 1111 1111 1111."
    )
    assert redact(text) == (
        "Budget is $80,000 by Q3 2027. Reach me at [email] or [phone]; pay with [card]."
    )


def test_luhn_check() -> None:
    assert luhn_valid("4111111111111111")
    assert luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("79927398710")


@dataclass(kw_only=True)
class RecordingExtractor:
    model_name: str = "recording"
    prompt_version: str = "p1"
    seen: list[str] = field(default_factory=list)

    async def extract_signals(
        self,
        turns: Sequence[TurnText],
        existing_state: QualificationState,
        current_stage: DealStage,
        *,
        next_stage: NextStage | None = None,
    ) -> ExtractionResult:
        self.seen.extend(turn.text for turn in turns)
        return ExtractionResult(
            status="failed", extraction=None, model=self.model_name, prompt_version="p1"
        )


async def test_the_wrapped_extractor_sees_only_redacted_text_and_keeps_its_identity() -> None:
    inner = RecordingExtractor()
    extractor = RedactingExtractor(inner=inner)
    turn = TurnText(
        event_id=uuid.uuid4(),
        speaker="prospect",  # type: ignore[arg-type]
        channel="chat",  # type: ignore[arg-type]
        text="I'm at jane@acme.com, (415) 555-0132.",
        occurred_at=datetime(2026, 10, 5, tzinfo=UTC),
    )
    result = await extractor.extract_signals([turn], QualificationState(), DealStage.PROSPECTING)
    assert inner.seen == ["I'm at [email], [phone]."]
    assert (extractor.model_name, extractor.prompt_version) == ("recording", "p1")
    assert result.model == "recording"
