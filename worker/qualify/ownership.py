"""Human-owned dimensions in the merge (CONTRACT.md section 3, v2). Pure: no I/O, no clock.

An extraction never changes a dimension a person owns. The merge runs as usual; then
`protect_owned` puts the owned dimensions back as they were stored and keeps the extraction's view
of each one, when it differs, as that dimension's suggestion.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas import (
    Owner,
    QualificationExtraction,
    QualificationSignals,
    QualificationState,
    Suggestion,
    is_identified,
    signals_of,
)


def value_fields_of(signals: QualificationSignals, dimension: str) -> dict[str, Any]:
    return signals.spec(dimension).value_fields(signals_of(signals, dimension))


def with_dimension_of(
    target: QualificationState, source: QualificationSignals, dimension: str
) -> QualificationState:
    """`target` with every field of `dimension` taken from `source`."""
    spec = target.spec(dimension)
    origin = signals_of(source, dimension)
    update = {field: getattr(origin, field) for field in spec.fields}
    group = spec.group.value
    model = getattr(target, group)
    return target.model_copy(update={group: model.model_copy(update=update)})


def protect_owned(
    existing: QualificationState,
    merged: QualificationState,
    extraction: QualificationExtraction,
    owners: Mapping[str, Owner],
    previous_suggestions: Mapping[str, Suggestion],
    version: int,
) -> tuple[QualificationState, dict[str, Suggestion], list[str]]:
    """The merged state with every owned dimension as `existing` had it; the suggestions after
    this extraction; and the dimensions whose suggestion changed (recorded or dropped).

    `version` is the state version this merge makes (recorded in new suggestions). A dimension's
    suggestion is replaced when the extraction says something about it that differs from the
    owned value, dropped when the extraction says the same as the owned value, and kept when
    the extraction says nothing about it. Suggestions of dimensions nobody owns are dropped.
    """
    protected = merged
    suggestions: dict[str, Suggestion] = {}
    changed: list[str] = []
    for name in existing.dimension_table().names:
        previous = previous_suggestions.get(name)
        if name not in owners:
            if previous is not None:
                changed.append(name)
            continue
        protected = with_dimension_of(protected, existing, name)
        current = _suggestion(existing, extraction, name, version, previous)
        if current is not None:
            suggestions[name] = current
        if current != previous:
            changed.append(name)
    return protected, suggestions, changed


def _suggestion(
    owned: QualificationSignals,
    extraction: QualificationExtraction,
    dimension: str,
    version: int,
    previous: Suggestion | None,
) -> Suggestion | None:
    if not says_something(extraction, dimension):
        return previous
    if not differs(owned, extraction, dimension):
        return None  # the AI now agrees with the person: nothing left to suggest
    spec, model = extraction.spec(dimension), signals_of(extraction, dimension)
    return Suggestion(
        values=spec.value_fields(model),
        identified=spec.is_identified(model),
        confidence=spec.confidence(model),
        evidence=spec.evidence(model),
        version=version,
    )


def says_something(extraction: QualificationSignals, dimension: str) -> bool:
    """An extraction informs a dimension when it identifies it or gives it a value. The lean
    extraction reports only what the new turns tell, so silence is no opinion."""
    return is_identified(extraction, dimension) or any(
        _present(value) for value in value_fields_of(extraction, dimension).values()
    )


def differs(owned: QualificationSignals, extraction: QualificationSignals, dimension: str) -> bool:
    """Whether the extraction's view disagrees with the owned one: it identifies what the person
    did not, or one of its values is not what the person has.

    Values compare without case and surrounding or repeated spaces ("$90K" is "$90k "); a null
    value of the extraction is no opinion (a known contact stays known). For a list (decision
    criteria, competitors) the extraction differs when it names an item the person's list lacks.
    """
    if is_identified(extraction, dimension) and not is_identified(owned, dimension):
        return True
    mine = value_fields_of(owned, dimension)
    for field, theirs in value_fields_of(extraction, dimension).items():
        if not _present(theirs):
            continue
        if isinstance(theirs, list):
            known = {_normalized(item) for item in mine[field]}
            if any(_normalized(item) not in known for item in theirs):
                return True
        elif mine[field] is None or _normalized(theirs) != _normalized(mine[field]):
            return True
    return False


def _present(value: Any) -> bool:
    return bool(value) if isinstance(value, list) else value is not None and value != ""


def _normalized(text: str) -> str:
    return " ".join(text.split()).casefold()
