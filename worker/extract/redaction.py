"""Contact data out of what an extractor sees and the LLM provider receives
(`REDACT_CONTACT_DATA`, default on).

`redact(text)` replaces email addresses, phone numbers, payment-card numbers, IBANs and US
social security numbers with `[email]`, `[phone]`, `[card]`, `[iban]` and `[ssn]`.
`RedactingExtractor` wraps any extractor and hands it redacted turns, so the inner extractor
checks evidence quotes against the text it saw and a quote around a placeholder is kept, as
it was seen. The LLM adapter also redacts the whole variable part of each prompt
(worker/extract/prompt.py), piece by piece: the known-state summary holds values people set
in overrides, which no turn redaction saw, and a turn it is given unredacted is redacted
there; a turn is redacted once (`TurnText.redacted`).

What is found, and what is deliberately not:
- emails: `local@domain.tld`; the local part in Latin, Greek or Cyrillic letters, the domain
  in any script (`jörg@müller.de`, `jane@例え.jp`, punycode `xn--` labels). A local part in a
  script written without spaces (`名前@例え.jp`) is not told apart from the words before it,
  so such an address is not found; a domain of such a script takes the words right after it
  into the placeholder;
- phones: Google's libphonenumber (`phonenumbers`), numbers valid for the US written in
  national form, and numbers of any country written with `+` and the country code. A number
  written only in another country's national form (`07700 900123`) is not recognised;
- cards: 13 to 19 digits, optionally grouped by spaces or dashes, or by dots in groups of
  four (`4111.1111.1111.1111`, and Amex's 4-6-5), that pass the Luhn check, so order numbers
  and ids that merely look long stay as they are;
- IBANs: in capitals, with or without the usual spaces every four characters, that pass
  the ISO 13616 mod-97 check;
- US social security numbers written `123-45-6789`, of a valid area, group and serial (not
  000, 666 or 9xx, not 00, not 0000); nine digits without dashes are not told from ids.
Amounts (`$80,000`), dates, years and quarters (`Q3 2027`) are none of these and stay. Names
and street addresses are not found at all (docs/personal-data.md).
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
IBAN_PLACEHOLDER = "[iban]"
SSN_PLACEHOLDER = "[ssn]"

# Numbers in national form are read as US numbers; `+` numbers as what their code says.
PHONE_REGION = "US"

# Letters of the scripts written with spaces between words (Latin, Greek, Cyrillic; not the
# multiplication and division signs of Latin-1), for an email's local part.
_LOCAL_LETTERS = r"A-Za-z0-9\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u024F\u0370-\u03FF\u0400-\u04FF"
# A domain label: letters or digits of any script, hyphens inside.
_LABEL = r"[^\W_](?:[\w-]*[^\W_])?"
_EMAIL = re.compile(
    rf"[{_LOCAL_LETTERS}][{_LOCAL_LETTERS}._%+'-]*@{_LABEL}(?:\.{_LABEL})*"
    r"\.(?:[^\W\d_]{2,}|xn--[A-Za-z0-9-]+)\b"
)
# 13-19 digits, single spaces or dashes allowed between them, or dots between groups of four
# (Amex: 4-6-5); not part of a longer number.
_CARD_CANDIDATE = re.compile(
    r"(?<![\d.,])"
    r"(?:\d(?:[ -]?\d){12,18}|\d{4}(?:\.\d{4}){2}\.\d{1,4}(?:\.\d{1,3})?|\d{4}\.\d{6}\.\d{5})"
    r"(?![\d]|[.,]\d)"
)
# Country code, check digits, then 11-30 letters or digits, bare or in groups of four.
_IBAN_CANDIDATE = re.compile(
    r"\b[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)\b"
)
IBAN_LENGTHS = range(15, 35)  # ISO 13616 allows 15 (Norway's) to 34 characters
# Area 001-899 but 666, group 01-99, serial 0001-9999: no SSN is issued outside these.
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")


def redact(text: str) -> str:
    """`text` with its IBANs, card numbers, SSNs, emails and phone numbers replaced by
    placeholders.

    IBANs and cards go first (their digit groups could otherwise read as phone numbers), then
    SSNs and emails (their digits are not phone numbers either), then phones."""
    text = _IBAN_CANDIDATE.sub(_iban_or_text, text)
    text = _CARD_CANDIDATE.sub(_card_or_digits, text)
    text = _SSN.sub(SSN_PLACEHOLDER, text)
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


def _iban_or_text(match: re.Match[str]) -> str:
    """The IBAN the candidate starts with, as a placeholder; the groups of four the pattern
    may have taken from the words after it (`… 7034 THEN`) stay as they were."""
    candidate = match.group(0)
    while True:
        if iban_valid(candidate.replace(" ", "")):
            return IBAN_PLACEHOLDER + match.group(0)[len(candidate) :]
        if " " not in candidate:
            return match.group(0)
        candidate = candidate.rsplit(" ", 1)[0]


def iban_valid(iban: str) -> bool:
    """ISO 13616: the country code and check digits moved to the end, letters read as
    10-35, the number modulo 97 is 1 (one random string in 97 passes)."""
    if len(iban) not in IBAN_LENGTHS:
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


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
    """`turn` with its text redacted, once: a turn redacted before is returned as it is."""
    return turn if turn.redacted else replace(turn, text=redact(turn.text), redacted=True)


@dataclass(kw_only=True)
class RedactingExtractor(ExtractorDecorator):
    """An Extractor that passes redacted turns to `inner` (to plan and to extract); everything
    else is `inner`'s."""

    def prepare(self, turns: Sequence[TurnText]) -> Sequence[TurnText]:
        return [redact_turn(turn) for turn in turns]
