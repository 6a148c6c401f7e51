"""Contact data out of the text an extractor sees (`REDACT_CONTACT_DATA`, default on).

`redact(text)` replaces email addresses, phone numbers and payment-card-like numbers with
`[email]`, `[phone]` and `[card]`. `RedactingExtractor` wraps any extractor and hands it
redacted turns, so the LLM provider never receives them; the inner extractor checks evidence
quotes against the text it saw, so a quote around a placeholder is kept, as it was seen.

What is found, and what is deliberately not:
- emails: a plain `local@domain.tld` pattern (a library would add nothing here);
- phones: Google's libphonenumber (`phonenumbers`), numbers valid for the US written in
  national form, and numbers of any country written with `+` and the country code. A number
  written only in another country's national form (`07700 900123`) is not recognised;
- cards: 13 to 19 digits, optionally grouped by spaces or dashes, that pass the Luhn check,
  so order numbers and ids that merely look long stay as they are.
Amounts (`$80,000`), dates, years and quarters (`Q3 2027`) are none of these and stay.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import phonenumbers

from worker.extract.port import ExtractorDecorator, TurnText

EMAIL_PLACEHOLDER = "[email]"
PHONE_PLACEHOLDER = "[phone]"
CARD_PLACEHOLDER = "[card]"

# Numbers in national form are read as US numbers; `+` numbers as what their code says.
PHONE_REGION = "US"

_EMAIL = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9._%+'-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}\b"
)
# 13-19 digits, single spaces or dashes allowed between them; not part of a longer number.
_CARD_CANDIDATE = re.compile(r"(?<![\d.,])\d(?:[ -]?\d){12,18}(?![\d]|[.,]\d)")


def redact(text: str) -> str:
    """`text` with its emails, phone numbers and card numbers replaced by placeholders.

    Cards go first (a card's digit groups could otherwise read as a phone number), then
    emails (their digits are not phone numbers either), then phones."""
    text = _CARD_CANDIDATE.sub(_card_or_digits, text)
    text = _EMAIL.sub(EMAIL_PLACEHOLDER, text)
    return redact_phones(text)


# The fewest digits a phone number has with its country code (+683 and 4 digits, Niue); the
# matcher is slow pure Python, and most chat turns (and every turn already redacted, as the
# extractor sees each twice: to plan its prompts, then to extract) have fewer.
MIN_PHONE_DIGITS = 7


def redact_phones(text: str) -> str:
    if sum(char.isdigit() for char in text) < MIN_PHONE_DIGITS:
        return text
    matches = list(phonenumbers.PhoneNumberMatcher(text, PHONE_REGION))
    for match in reversed(matches):  # from the end, so earlier offsets stay valid
        text = text[: match.start] + PHONE_PLACEHOLDER + text[match.end :]
    return text


def _card_or_digits(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return CARD_PLACEHOLDER if luhn_valid(digits) else match.group(0)


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies (and 9 in 10 random ids fail)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def redact_turn(turn: TurnText) -> TurnText:
    return replace(turn, text=redact(turn.text))


@dataclass(kw_only=True)
class RedactingExtractor(ExtractorDecorator):
    """An Extractor that passes redacted turns to `inner` (to plan and to extract); everything
    else is `inner`'s."""

    def prepare(self, turns: Sequence[TurnText]) -> Sequence[TurnText]:
        return [redact_turn(turn) for turn in turns]
