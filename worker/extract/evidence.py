"""Evidence check: a quote the model gives is kept only if it stands in the turns it was shown.

Pure. Stored as it stands in the turns (original case and spacing), not as the model re-typed it.
A dimension left without a quote that survived is no claim at all: it goes back to its defaults
(not identified, confidence 0, no values), so it changes nothing in the merge and cannot meet an
exit criterion (CONTRACT.md section 3, v3). A stage step keeps its quote only if it survived, and
learns who said it (the speaker of the turn it stands in, a prospect's turn first): the stage
machine needs a prospect's words before the AI may close a deal as lost.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import TypeVar, cast

import pydantic

from schemas import QualificationExtraction, Speaker, StageStep
from schemas.qualification import GroupSignals
from worker.extract.port import TurnText

_QUOTE_MARKS = "\"'\u201c\u201d\u2018\u2019 \t\n"

S = TypeVar("S", bound=pydantic.BaseModel)
G = TypeVar("G", bound=GroupSignals)


def normalize(text: str) -> str:
    """Case- and whitespace-insensitive form used to match quotes against turns."""
    return " ".join(text.casefold().split())


def clean_quote(quote: str) -> str:
    # Models often wrap quotes in quotation marks; those are not part of what was said.
    return quote.strip(_QUOTE_MARKS)


def verify_evidence(
    extraction: QualificationExtraction, turns: Sequence[TurnText]
) -> tuple[QualificationExtraction, dict[str, int]]:
    """Keep only quotes that occur in one of `turns`; returns {evidence field: dropped}
    (`stage_walk` for the quotes of stage steps). Dimensions left without evidence are reset."""
    texts = [turn.text for turn in turns]
    bant, bant_drops = _verified_signals(extraction.bant, texts)
    meddic, meddic_drops = _verified_signals(extraction.meddic, texts)
    walk = [_verified_step(step, turns) for step in extraction.stage_walk]
    drops = {**bant_drops, **meddic_drops}
    if unquoted := sum(step.quote is None for step in walk):
        drops["stage_walk"] = unquoted
    fields = {name: getattr(extraction, name) for name in QualificationExtraction.model_fields}
    # Rebuilt as the plain model (not instructor's wrapper class); the values are validated.
    verified = QualificationExtraction.model_construct(
        **{**fields, "bant": bant, "meddic": meddic, "stage_walk": walk}
    )
    return without_unevidenced_claims(verified), drops


def without_unevidenced_claims(extraction: QualificationExtraction) -> QualificationExtraction:
    """`extraction` with every dimension that has no evidence back at its defaults: a claim
    without a quote (say, an injected "mark the budget identified") changes nothing."""
    return extraction.model_copy(
        update={
            "bant": _without_unevidenced(extraction.bant),
            "meddic": _without_unevidenced(extraction.meddic),
        }
    )


def _without_unevidenced(signals: G) -> G:
    """The group's dimensions without a quote: flag, confidence and values at their defaults."""
    resets: dict[str, object] = {}
    for dimension in type(signals).dimensions:
        if dimension.evidence(signals):
            continue
        names = (dimension.identified_field, dimension.confidence_field, *dimension.value_names)
        resets |= {name: default_maker(type(signals), name)() for name in names if name}
    return signals.model_copy(update=resets)


@functools.cache
def default_maker(model: type[pydantic.BaseModel], name: str) -> Callable[[], object]:
    """What makes the field's default, a fresh one per call. pydantic's `get_default` inspects
    a default factory's signature on every call (4 % of the worker's CPU in W2-0ms-half, for
    every reset field of every extraction); a factory that takes no data is called as it is."""
    field = model.model_fields[name]
    factory = field.default_factory
    if factory is not None and not field.default_factory_takes_validated_data:
        return cast("Callable[[], object]", factory)
    return functools.partial(field.get_default, call_default_factory=True)


def _verified_step(step: StageStep, turns: Sequence[TurnText]) -> StageStep:
    """The step with its quote as it stands in the turns and who said it, or without a quote
    (and speaker) when the quote is in none of them."""
    found = locate_said(step.quote, turns) if step.quote else None
    quote, speaker = found if found is not None else (None, None)
    return step.model_copy(update={"quote": quote, "speaker": speaker})


def locate_said(quote: str, turns: Sequence[TurnText]) -> tuple[str, Speaker] | None:
    """The quote as it stands in a turn and that turn's speaker: a prospect's turn when any
    holds it (what the prospect also said is the prospect's word), else a rep's; or None."""
    for speaker in (Speaker.PROSPECT, Speaker.REP):
        texts = [turn.text for turn in turns if turn.speaker is speaker]
        if (located := locate(quote, texts)) is not None:
            return located, speaker
    return None


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
