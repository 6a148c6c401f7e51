"""Evidence check: a quote the model gives is kept only if it stands in the turns it was shown.

Pure. Stored as it stands in the turns (original case and spacing), not as the model re-typed it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import TypeVar

import pydantic

from schemas import QualificationExtraction
from worker.extract.port import TurnText

_QUOTE_MARKS = "\"'\u201c\u201d\u2018\u2019 \t\n"

S = TypeVar("S", bound=pydantic.BaseModel)


def normalize(text: str) -> str:
    """Case- and whitespace-insensitive form used to match quotes against turns."""
    return " ".join(text.casefold().split())


def clean_quote(quote: str) -> str:
    # Models often wrap quotes in quotation marks; those are not part of what was said.
    return quote.strip(_QUOTE_MARKS)


def verify_evidence(
    extraction: QualificationExtraction, turns: Sequence[TurnText]
) -> tuple[QualificationExtraction, dict[str, int]]:
    """Keep only quotes that occur in one of `turns`; returns {evidence field: dropped}."""
    texts = [turn.text for turn in turns]
    bant, bant_drops = _verified_signals(extraction.bant, texts)
    meddic, meddic_drops = _verified_signals(extraction.meddic, texts)
    fields = {name: getattr(extraction, name) for name in QualificationExtraction.model_fields}
    # Rebuilt as the plain model (not instructor's wrapper class); the values are validated.
    verified = QualificationExtraction.model_construct(**{**fields, "bant": bant, "meddic": meddic})
    return verified, {**bant_drops, **meddic_drops}


def _verified_signals(signals: S, texts: list[str]) -> tuple[S, dict[str, int]]:
    update: dict[str, list[str]] = {}
    drops: dict[str, int] = {}
    for name in _evidence_fields(type(signals)):
        quotes: list[str] = getattr(signals, name)
        located = [locate(quote, texts) for quote in quotes]
        kept = list(dict.fromkeys(quote for quote in located if quote is not None))
        if kept != quotes:
            update[name] = kept
        if None in located:
            drops[name] = located.count(None)
    return signals.model_copy(update=update), drops


def locate(quote: str, texts: list[str]) -> str | None:
    """The quote as it stands in the turns (original case and spacing), or None if absent."""
    needle = normalize(clean_quote(quote))
    if not needle or not any(needle in normalize(text) for text in texts):
        return None
    # Store what was said, not the model's re-spacing or re-casing of it.
    pattern = re.compile(r"\s+".join(map(re.escape, needle.split())), re.IGNORECASE)
    found = (pattern.search(text) for text in texts)
    return next((match.group(0) for match in found if match), clean_quote(quote))


@functools.cache
def _evidence_fields(model: type[pydantic.BaseModel]) -> tuple[str, ...]:
    return tuple(name for name in model.model_fields if name.endswith("_evidence"))
