"""Which extractor the worker runs: the LLM or the rules, behind redaction when it is on."""

from __future__ import annotations

from worker.extract.llm import build_extractor as build_inner_extractor
from worker.extract.port import Extractor
from worker.extract.redaction import RedactingExtractor
from worker.settings import Settings


def build_extractor(settings: Settings) -> Extractor:
    """`LLM_MODEL` picks the extractor; with `REDACT_CONTACT_DATA` (the default) it only ever
    sees turn text with emails, phone numbers and card numbers replaced by placeholders."""
    inner = build_inner_extractor(settings)
    return RedactingExtractor(inner=inner) if settings.redact_contact_data else inner
