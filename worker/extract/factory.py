"""Which extractor the settings ask for: the offline rules, or the LLM adapter."""

from __future__ import annotations

from worker.extract.port import Extractor
from worker.extract.rules import RulesExtractor
from worker.settings import Settings


def build_extractor(settings: Settings) -> Extractor:
    """The rules when `LLM_MODEL=rules`, else the LLM extractor configured from settings."""
    if settings.uses_rules:
        return RulesExtractor()
    # Imported here: LiteLLM costs ~130 MB and a second of start-up that the rules never need.
    from worker.extract.llm import QualificationExtractor

    return QualificationExtractor.from_settings(settings)
