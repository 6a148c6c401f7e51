"""Merging a new extraction into the stored qualification (CONTRACT.md section 3).

Pure and deterministic: no I/O, no clock (the caller passes `now`). Merging the same extraction
twice changes nothing more, so a redelivered batch cannot drift the state.

Each dimension is described once, in the dimension table (schemas.dimensions), and the models
are built from it: the merge and `changed_fields` go through the rows of the models they are
given, so a dimension added to the table is merged with no change here.

(v3) Every list is bounded (schemas/bounds.py): the merge keeps the newest items, so a state and
its update event always fit the producer's request limit (`newest_within`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from schemas import (
    BANTSignals,
    MEDDICSignals,
    QualificationExtraction,
    QualificationSignals,
    QualificationState,
)
from schemas.bounds import EVIDENCE, KEY_INSIGHTS, LIST_VALUES, RECOMMENDED_QUESTIONS, ListBound
from schemas.dimensions import DimensionSpec, Group, ValueKind
from schemas.qualification import GroupSignals, signals_of

_Signals = TypeVar("_Signals", bound=GroupSignals)

_GROUPS = tuple(group.value for group in Group)

# The state-wide fields, read from the model so a new one is reported by `changed_fields` too.
# `last_updated` belongs to QualificationState only: it changes on every merge, so it is no news.
_STATE_WIDE = tuple(field for field in QualificationSignals.model_fields if field not in _GROUPS)


def merge_bant_signals(existing: BANTSignals, new: BANTSignals) -> BANTSignals:
    return _merge_signals(existing, new)


def merge_meddic_signals(existing: MEDDICSignals, new: MEDDICSignals) -> MEDDICSignals:
    return _merge_signals(existing, new)


def merge_qualification_signals(
    existing: QualificationState, new: QualificationSignals, *, now: datetime
) -> QualificationState:
    """The stored state with an extraction merged in; `last_updated` becomes `now`.

    `recommended_next_questions` are replaced by the new ones, except that an empty new list keeps
    the old questions: an extraction that found nothing to ask must not wipe what is still open,
    and merging the same extraction twice stays idempotent either way.
    """
    # The first ones: a model lists the most pressing question first.
    questions = (new.recommended_next_questions or existing.recommended_next_questions)[
        : RECOMMENDED_QUESTIONS.items
    ]
    return type(existing)(
        bant=_merge_signals(existing.bant, new.bant),
        meddic=_merge_signals(existing.meddic, new.meddic),
        overall_confidence=max(existing.overall_confidence, new.overall_confidence),
        key_insights=newest_within(existing.key_insights, new.key_insights, KEY_INSIGHTS),
        recommended_next_questions=newest_within((), questions, RECOMMENDED_QUESTIONS),
        last_updated=now,
    )


def changed_fields(before: QualificationState, after: QualificationState) -> list[str]:
    """Dotted paths that differ: `bant.budget`, `meddic.champion`, …, then the state-wide fields.

    A dimension counts as changed when any of its fields changed (evidence included).
    """
    paths = [
        f"{dimension.group.value}.{dimension.name}"
        for dimension in before.dimension_table()
        if _dimension_changed(
            dimension, signals_of(before, dimension.name), signals_of(after, dimension.name)
        )
    ]
    paths += [field for field in _STATE_WIDE if getattr(before, field) != getattr(after, field)]
    return paths


def _merge_signals(existing: _Signals, new: _Signals) -> _Signals:
    merged: dict[str, Any] = {}
    for dimension in type(existing).dimensions:
        merged |= _merge_dimension(dimension, existing, new)
    return type(existing).model_validate(merged)


def _merge_dimension(
    dimension: DimensionSpec, existing: BaseModel, new: BaseModel
) -> dict[str, Any]:
    winner = new if _new_wins(dimension, existing, new) else existing
    merged: dict[str, Any] = {
        dimension.confidence_field: max(dimension.confidence(existing), dimension.confidence(new)),
        dimension.evidence_field: _newest_of(dimension.evidence_field, existing, new, EVIDENCE),
    }
    if dimension.identified_field is not None:
        # Once identified, always identified: an extraction that missed it does not undo it.
        merged[dimension.identified_field] = dimension.is_identified(
            existing
        ) or dimension.is_identified(new)
    merged |= {field: getattr(winner, field) for field in dimension.of_kind(ValueKind.TEXT)}
    merged |= {
        field: _contact(field, winner, existing) for field in dimension.of_kind(ValueKind.CONTACT)
    }
    merged |= {
        field: _newest_of(field, existing, new, LIST_VALUES)
        for field in dimension.of_kind(ValueKind.LIST)
    }
    return merged


def _new_wins(dimension: DimensionSpec, existing: BaseModel, new: BaseModel) -> bool:
    """Identification first, then confidence; a tie goes to the later statement.

    The contract (v2) takes the new values when the new side identifies what the stored side
    did not, or when both identify it and the new confidence is higher *or equal*: a later
    statement as sure as the old one is the current truth (a budget revised from $50k to $80k
    reads $80k). An extraction that does not identify a dimension never displaces the values
    of one that did, even with a higher confidence: it has no values to offer, and taking its
    nulls would leave an identified dimension without its content.

    Idempotent: once the new side won, the kept confidence is max(old, new); merging the same
    extraction again either wins again (same values) or loses to values that are already its own.
    """
    if not dimension.is_identified(new):
        return False
    if not dimension.is_identified(existing):
        return True
    return dimension.confidence(new) >= dimension.confidence(existing)


def _contact(field: str, winner: BaseModel, existing: BaseModel) -> Any:
    """The winner's contact, unless it is null: a known contact is never forgotten."""
    value = getattr(winner, field)
    return value if value is not None else getattr(existing, field)


def _newest_of(field: str, existing: BaseModel, new: BaseModel, bound: ListBound) -> list[str]:
    return newest_within(getattr(existing, field), getattr(new, field), bound)


def _union(first: Iterable[str], then: Iterable[str]) -> list[str]:
    """Items in arrival order, each once (dict keys keep insertion order)."""
    return list(dict.fromkeys([*first, *then]))


def newest_within(existing: Sequence[str], new: Sequence[str], bound: ListBound) -> list[str]:
    """The union of `existing` and `new` (existing order first, no duplicates) within `bound`.

    Every item is cut to `bound.item_bytes`; then `new`'s items are kept (its last ones, if it
    has more than `bound.items`) and as many of the newest other ones as there is room for.
    Keeping all of `new` is what makes the merge idempotent: merging the same extraction
    again finds every one of its items already there and drops nothing more. (Keeping the
    union's last items instead would drop a re-quoted old item, and the next merge would add
    it back as new.)
    """
    fresh = list(dict.fromkeys(_cut(item, bound.item_bytes) for item in new))[-bound.items :]
    kept = set(fresh)
    older = list(dict.fromkeys(_cut(item, bound.item_bytes) for item in existing))
    others = [item for item in older if item not in kept]
    kept.update(others[max(len(others) - (bound.items - len(fresh)), 0) :])
    return [item for item in _union(older, fresh) if item in kept]


def bounded(extraction: QualificationExtraction) -> QualificationExtraction:
    """The extraction with every list within its bound, as a merge would keep it: what the
    suggestions beside human-owned dimensions are made from."""
    return extraction.model_copy(
        update={
            "bant": _bounded_signals(extraction.bant),
            "meddic": _bounded_signals(extraction.meddic),
            "key_insights": newest_within((), extraction.key_insights, KEY_INSIGHTS),
            "recommended_next_questions": newest_within(
                (),
                extraction.recommended_next_questions[: RECOMMENDED_QUESTIONS.items],
                RECOMMENDED_QUESTIONS,
            ),
        }
    )


def _bounded_signals(signals: _Signals) -> _Signals:
    update: dict[str, list[str]] = {}
    for dimension in type(signals).dimensions:
        field = dimension.evidence_field
        update[field] = newest_within((), getattr(signals, field), EVIDENCE)
        update |= {
            f: newest_within((), getattr(signals, f), LIST_VALUES)
            for f in dimension.of_kind(ValueKind.LIST)
        }
    return signals.model_copy(update=update)


def _cut(text: str, max_bytes: int) -> str:
    """`text`, or its longest start whose JSON string takes at most `max_bytes`."""
    if _json_bytes(text) <= max_bytes:
        return text
    low, high = 0, len(text)  # _json_bytes(text[:low]) fits, text[:high] does not
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if _json_bytes(text[:middle]) <= max_bytes else (low, middle)
    return text[:low]


def _json_bytes(text: str) -> int:
    """The bytes of `text` as a published JSON string (orjson escapes quotes, backslashes and
    control characters only)."""
    if text.isprintable():  # no control character: counted without encoding (4x faster)
        return len(text.encode()) + text.count('"') + text.count("\\") + 2
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8", "surrogatepass"))


def _dimension_changed(dimension: DimensionSpec, before: BaseModel, after: BaseModel) -> bool:
    return any(getattr(before, field) != getattr(after, field) for field in dimension.fields)
