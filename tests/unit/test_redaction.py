"""Contact data out of the text the extractor sees and the prompt the provider receives
(worker/extract/redaction.py, worker/extract/prompt.py)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from schemas import (
    BANTSignals,
    Channel,
    DealStage,
    MEDDICSignals,
    NextStage,
    QualificationState,
)
from tests.builders import turn_text
from worker.extract.port import ExtractionResult, TurnText
from worker.extract.prompt import SYSTEM_PROMPTS, build_messages, user_message
from worker.extract.redaction import RedactingExtractor, iban_valid, luhn_valid, redact

OCTOBER_5 = datetime(2026, 10, 5, tzinfo=UTC)  # the date these prompts' turns carry


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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Schreiben Sie an jörg@müller.de bitte", "Schreiben Sie an [email] bitte"),
        ("mail: jane@例え.jp", "mail: [email]"),
        ("пишите ivan@пример.рф сегодня", "пишите [email] сегодня"),
        ("ПЁТР@почта.рф", "[email]"),
        ("punycode: info@xn--mller-kva.de works too", "punycode: [email] works too"),
        ("Zoë.Müller@sub.bücher.example.com.", "[email]."),
    ],
)
def test_emails_with_non_ascii_domains_or_local_parts_become_placeholders(
    text: str, expected: str
) -> None:
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
    "card", ["4111.1111.1111.1111", "5500.0055.5555.5559", "3782.822463.10005"]
)
def test_card_numbers_grouped_by_dots_become_placeholders(card: str) -> None:
    assert redact(f"card {card}.") == "card [card]."


@pytest.mark.parametrize(
    "iban",
    [
        "DE89370400440532013000",
        "GB82WEST12345698765432",
        "NO9386011117947",  # the shortest, 15 characters
        "DE89 3704 0044 0532 0130 00",
        "FR14 2004 1010 0505 0001 3M02 606",
    ],
)
def test_ibans_with_or_without_spaces_become_placeholders(iban: str) -> None:
    assert redact(f"Wire it to {iban}, thanks.") == "Wire it to [iban], thanks."


def test_words_in_capitals_after_an_iban_stay() -> None:
    assert redact("BE68 5390 0754 7034 THEN CALL") == "[iban] THEN CALL"
    assert redact("IBAN: BE68539007547034 OK") == "IBAN: [iban] OK"


def test_iban_check() -> None:
    assert iban_valid("DE89370400440532013000")
    assert not iban_valid("DE89370400440532013001")  # one digit off
    assert not iban_valid("DE8937040044")  # too short for any country


@pytest.mark.parametrize("ssn", ["123-45-6789", "078-05-1120", "665-01-0001"])
def test_us_social_security_numbers_become_placeholders(ssn: str) -> None:
    assert redact(f"SSN {ssn} on file") == "SSN [ssn] on file"


@pytest.mark.parametrize(
    "text",
    [
        "000-12-3456 and 666-12-3456 and 912-34-5678",  # areas never issued
        "123-00-4567 and 123-45-0000",  # group 00, serial 0000: never issued
        "part 1123-45-6789-0 of the kit",  # inside a longer number
    ],
)
def test_numbers_shaped_like_ssns_that_no_ssn_can_be_stay(text: str) -> None:
    assert redact(text) == text


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
        "Pi is 3.14159265358979, the rate 1.234.567.890 per year.",  # dots, not card groups
        "Invoice DE89370400440532013001 is open.",  # IBAN-shaped, fails the mod-97 check
        "SKU AB12CDEFGH345678 ships Monday, ticket 2026-12-04-0042.",
        "Call on 2026-12-04 at 10:30, confidence 0.85, 40 seats at $1,200.50 each.",
        "Write to us at support@ or @jane on Slack.",
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


def test_the_whole_variable_part_of_the_prompt_is_redacted_and_the_fixed_part_kept() -> None:
    """An override's values reach the known-state summary unredacted: the prompt redacts it."""
    state = QualificationState(
        bant=BANTSignals(
            authority_identified=True,
            authority_confidence=1.0,
            authority_contact="Jane Doe <jane.doe@acme.com>",
        ),
        meddic=MEDDICSignals(
            champion_identified=True, champion_confidence=1.0, champion_contact="+44 20 7946 0958"
        ),
        key_insights=["pays from DE89370400440532013000"],
    )
    turns = [turn_text("Call me at (415) 555-0132.", channel=Channel.EMAIL, start=OCTOBER_5)]

    redacted = build_messages(turns, state, DealStage.DISCOVERY, redacted=True)
    plain = build_messages(turns, state, DealStage.DISCOVERY)

    assert redacted[0] == plain[0] == {"role": "system", "content": SYSTEM_PROMPTS["lean"]}
    sent = redacted[1]["content"]
    for value in ("jane.doe@acme.com", "+44 20 7946 0958", "DE8937", "555-0132"):
        assert value not in sent and value in plain[1]["content"]
    assert 'authority_contact="Jane Doe <[email]>"' in sent
    assert 'champion_contact="[phone]"' in sent and "[iban]" in sent and "[phone]." in sent


def test_the_words_of_a_prompt_without_contact_data_are_none_of_the_patterns() -> None:
    """Stage names, dates in turn headers, confidences and amounts come through unchanged."""
    state = QualificationState(
        bant=BANTSignals(
            budget_identified=True,
            budget_confidence=0.9,
            budget_range="$80,000 per year",
            budget_evidence=["budget is around $80,000 for the year"],
        ),
        key_insights=["go-live in Q3 2027"],
        overall_confidence=0.55,
    )
    turns = [
        turn_text(
            f"We have 40 agents, ticket {n} of 2026-10-05.", channel=Channel.EMAIL, start=OCTOBER_5
        )
        for n in range(12)
    ]
    text = user_message(turns, state, DealStage.DISCOVERY, NextStage(stage=DealStage.QUALIFICATION))

    assert redact(text) == text


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


def test_a_turn_is_redacted_once_however_often_it_is_prepared_or_prompted() -> None:
    """The extractor sees a turn to plan, to extract and in the prompt: the first redaction
    marks it, and the later ones leave the marked turn as it is."""
    turn = turn_text("I'm at jane@acme.com, (415) 555-0132.")
    once = RedactingExtractor(inner=RecordingExtractor()).prepare([turn])[0]
    assert (once.text, once.redacted, turn.redacted) == ("I'm at [email], [phone].", True, False)
    assert RedactingExtractor(inner=RecordingExtractor()).prepare([once])[0] is once
    prompt = build_messages([once], QualificationState(), DealStage.DISCOVERY, redacted=True)
    assert "I'm at [email], [phone]." in prompt[1]["content"]
    unredacted = build_messages([turn], QualificationState(), DealStage.DISCOVERY, redacted=True)
    assert prompt == unredacted
