"""Which extractor the settings ask for: the offline rules or the LLM adapter, behind
redaction of contact data when `REDACT_CONTACT_DATA` is on (the default)."""

from __future__ import annotations

from worker.extract.port import Extractor
from worker.extract.redaction import RedactingExtractor
from worker.extract.rules import RulesExtractor
from worker.settings import Settings


def build_extractor(settings: Settings) -> Extractor:
    """`LLM_MODEL` picks the extractor; with `REDACT_CONTACT_DATA` it only ever sees turn text
    with emails, phone numbers, card numbers, IBANs and SSNs replaced by placeholders, and the
    LLM adapter redacts the known state of its prompts too (worker/extract/redaction.py)."""
    inner = _inner(settings)
    return RedactingExtractor(inner=inner) if settings.redact_contact_data else inner


def _inner(settings: Settings) -> Extractor:
    if settings.uses_rules:
        return RulesExtractor()
    # Imported here: LiteLLM costs ~130 MB and a second of start-up that the rules never need.
    from worker.extract.llm import QualificationExtractor

    return QualificationExtractor.from_settings(settings)
