"""Merging a new extraction into the stored qualification (CONTRACT.md section 3).

Pure and deterministic: no I/O, no clock (the caller passes `now`). Merging the same extraction
twice changes nothing more, so a redelivered batch cannot drift the state.

Each dimension is described once, in the dimension table (schemas.dimensions), and the models
are built from it: the merge and `changed_fields` go through the rows of the models they are
given, so a dimension added to the table is merged with no change here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from schemas import BANTSignals, MEDDICSignals, QualificationSignals, QualificationState
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
    return type(existing)(
        bant=_merge_signals(existing.bant, new.bant),
        meddic=_merge_signals(existing.meddic, new.meddic),
        overall_confidence=max(existing.overall_confidence, new.overall_confidence),
        key_insights=_union(existing.key_insights, new.key_insights),
        recommended_next_questions=(
            new.recommended_next_questions or existing.recommended_next_questions
        ),
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
        dimension.evidence_field: _union_of(dimension.evidence_field, existing, new),
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
        field: _union_of(field, existing, new) for field in dimension.of_kind(ValueKind.LIST)
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


def _union_of(field: str, existing: BaseModel, new: BaseModel) -> list[str]:
    return _union(getattr(existing, field), getattr(new, field))


def _union(first: Iterable[str], then: Iterable[str]) -> list[str]:
    """Items in arrival order, each once (dict keys keep insertion order)."""
    return list(dict.fromkeys([*first, *then]))


def _dimension_changed(dimension: DimensionSpec, before: BaseModel, after: BaseModel) -> bool:
    return any(getattr(before, field) != getattr(after, field) for field in dimension.fields)
