"""A person's override applied to a conversation's locked state (CONTRACT.md sections 1, 3, 4).

Pure: no I/O, no clock (the caller passes `now`). The commit path calls `apply_override` with the
state it just locked and stores `OverrideResult.as_next_version()` like the version of a batch of
turns; the update event gets `source="override"`, `actor=result.actor`, `extraction=None` and no
turn ids, and the stage transition (if any) is recorded with `source` and `actor` as well.

What an override does:
- `set`: the values given are taken as they are (no merge rule, no confidence comparison); the
  dimension's confidence becomes the given one (1.0 unless given) and `identified` the given one
  (true unless given). Evidence stays as it was: quotes come from the conversation only, and the
  superseded statement stays quoted, as in the merge. The dimension becomes owned by the actor
  and its suggestion is dropped (the person has just decided; the next extraction suggests again
  if it still differs).
- `lock`: the dimension becomes owned by the actor; values and suggestions stay.
- `unlock`: the dimension is no longer owned and its suggestion is dropped: nothing is applied
  by itself, the next extraction decides through the ordinary merge. The person's value keeps
  its confidence, so that extraction replaces it only when at least as confident.
- `stage`: the deal moves to `stage.to`, whatever the stage machine would say about it (the
  machine binds the AI only). Moving to `stalled` remembers the open stage the deal left in
  `stalled_from`; leaving `stalled` forgets it. Naming the current stage changes nothing.

Ownership: `set` and `lock` make the actor the owner since `now`, unless that actor already owns
the dimension (then its `since` stays). The order inside one override is set, lock, unlock
(the schema refuses a dimension both set or locked and unlocked), then stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas import (
    Actor,
    ConversationState,
    Dimension,
    DimensionValues,
    Owner,
    QualificationOverride,
    QualificationState,
    StageChange,
    VersionSource,
    signals_of,
)
from worker.qualify.criteria import StageCriteria
from worker.qualify.merge import changed_fields
from worker.qualify.stages import stalled_from_after
from worker.qualify.versioning import NextVersion, gap_report


@dataclass(frozen=True, kw_only=True)
class OverrideResult:
    """The next version an override makes. `state` already has `version + 1` and
    `updated_at = now`; `stage_change` is accepted whenever present."""

    state: ConversationState
    stage_change: StageChange | None
    # Dotted paths as for extractions (`bant.budget`, `deal_stage`), plus `owners.<dimension>`
    # and `suggestions.<dimension>` for the ownership an override takes or gives back, so a
    # version that only locks a dimension still says what it changed.
    changed_fields: list[str]
    actor: Actor
    source: VersionSource = "override"

    def as_next_version(self, before: ConversationState, criteria: StageCriteria) -> NextVersion:
        """What the commit path stores and publishes for any new version."""
        return NextVersion(
            before=before,
            state=self.state,
            source=self.source,
            stage_change=self.stage_change,
            changed_fields=self.changed_fields,
            actor=self.actor,
            next_stage=gap_report(self.state, criteria),
        )


def apply_override(
    state: ConversationState, override: QualificationOverride, *, now: datetime
) -> OverrideResult:
    qualification = _with_set_values(state.qualification, override, now=now)
    owners = dict(state.owners)
    suggestions = dict(state.suggestions)
    for dimension in override.set_dimensions():
        _take_ownership(owners, dimension, override.actor, now)
        suggestions.pop(dimension.value, None)
    for dimension in override.lock or ():
        _take_ownership(owners, dimension, override.actor, now)
    for dimension in override.unlock or ():
        owners.pop(dimension.value, None)
        suggestions.pop(dimension.value, None)

    stage_change = _stage_change(state, override)
    update: dict[str, Any] = {
        "qualification": qualification,
        "owners": owners,
        "suggestions": suggestions,
        "updated_at": now,
        "version": state.version + 1,
    }
    if stage_change is not None:
        update |= {
            "deal_stage": stage_change.to_stage,
            "stalled_from": stalled_from_after(
                state.deal_stage, stage_change.to_stage, state.stalled_from
            ),
        }
    updated = state.model_copy(update=update)
    return OverrideResult(
        state=updated,
        stage_change=stage_change,
        changed_fields=_changed(state, updated),
        actor=override.actor,
    )


def _with_set_values(
    qualification: QualificationState, override: QualificationOverride, *, now: datetime
) -> QualificationState:
    dimensions = override.set_dimensions()
    if not dimensions:
        return qualification
    for dimension, values in dimensions.items():
        qualification = _with_values(qualification, dimension, values)
    return qualification.model_copy(update={"last_updated": now})


def _with_values(
    qualification: QualificationState, dimension: Dimension, values: DimensionValues
) -> QualificationState:
    spec, model = qualification.spec(dimension), signals_of(qualification, dimension)
    update = values.given_values()
    update[spec.confidence_field] = values.confidence
    flag = values.identified_flag()
    if flag is not None and spec.identified_field is not None:
        update[spec.identified_field] = flag
        if not flag:
            # Not identified means no value: clear what the person did not give.
            update = spec.cleared_values() | update
    group = spec.group.value
    # Validated again, so the state can never hold what the signals model refuses.
    replaced = type(model).model_validate(model.model_dump() | update)
    return qualification.model_copy(update={group: replaced})


def _take_ownership(
    owners: dict[str, Owner], dimension: Dimension, actor: Actor, now: datetime
) -> None:
    current = owners.get(dimension.value)
    if current is None or current.actor != actor:
        owners[dimension.value] = Owner(actor=actor, since=now)


def _stage_change(state: ConversationState, override: QualificationOverride) -> StageChange | None:
    if override.stage is None or override.stage.to == state.deal_stage:
        return None
    return StageChange(
        from_stage=state.deal_stage,
        to_stage=override.stage.to,
        accepted=True,
        reason=override.stage.reason,
    )


def _changed(before: ConversationState, after: ConversationState) -> list[str]:
    fields = changed_fields(before.qualification, after.qualification)
    if before.deal_stage != after.deal_stage:
        fields.append("deal_stage")
    for name, old, new in (
        ("owners", before.owners, after.owners),
        ("suggestions", before.suggestions, after.suggestions),
    ):
        fields += [
            f"{name}.{dimension}"
            for dimension in after.qualification.dimension_table().names
            if old.get(dimension) != new.get(dimension)
        ]
    return fields
