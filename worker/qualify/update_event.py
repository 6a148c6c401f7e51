"""The `qualification.updated` event that announces a version (CONTRACT.md section 2). Pure."""

from __future__ import annotations

from schemas import QualificationUpdated, update_event_id
from worker.qualify.versioning import NextVersion


def update_event(version: NextVersion) -> QualificationUpdated:
    state = version.state
    key = version.key
    assert state.updated_at is not None, "a new version carries the time it was made"
    return QualificationUpdated(
        event_id=update_event_id(key, state.version, state.incarnation),
        tenant_id=key.tenant_id,
        account_id=key.account_id,
        contact_id=key.contact_id,
        version=state.version,
        deal_stage=state.deal_stage,
        previous_stage=version.before.deal_stage,
        # One field for what may be two records (a resume, then the extraction's proposal
        # judged from the resumed stage): the proposal when there is one, else the resume.
        # `previous_stage` is where the deal was before this version in either case.
        stage_change=version.stage_change or version.resumed,
        qualification=state.qualification,
        changed_fields=version.changed_fields,
        interaction_count=state.interaction_count,
        confidence_score=state.confidence_score,
        extraction=version.extraction,
        turn_event_ids=version.turn_event_ids,
        source=version.source,
        actor=version.actor,
        owners=state.owners,
        suggestions=state.suggestions,
        next_stage=version.next_stage,
        occurred_at=state.updated_at,
    )
