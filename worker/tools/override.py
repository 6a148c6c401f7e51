"""`python -m worker override TENANT ACCOUNT CONTACT --actor TYPE:ID …`: publish a correction.

Builds a `QualificationOverride` from the arguments, validates it like the worker will, and
publishes it to `OVERRIDE_TOPIC` keyed by the conversation. Every bad argument is a one-line
`ConfigurationError` (exit 2) before anything is sent.

`--set DIM.FIELD=VALUE` gives one field of a dimension: a value field (an empty VALUE clears it;
a list field such as `decision_criteria.decision_criteria` or `competition.competitors` may be
repeated, one item each, and an empty VALUE clears the list), `DIM.identified=true|false` or
`DIM.confidence=0..1`. `--set DIM` alone confirms the stored values of DIM (the person takes
ownership at confidence 1.0).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, get_args

from pydantic import ValidationError

from schemas import Actor, DealStage, Dimension, QualificationOverride
from schemas.dimensions import DIMENSIONS, ValueKind
from schemas.override import CONFIDENCE_FIELD, IDENTIFIED_FIELD, VALUES_MODELS
from worker.errors import ConfigurationError
from worker.ingest.decoding import describe

ACTOR_TYPES: tuple[str, ...] = get_args(Actor.model_fields["type"].annotation)
TRUE_WORDS = frozenset({"true", "yes", "1"})
FALSE_WORDS = frozenset({"false", "no", "0"})


@dataclass(frozen=True, kw_only=True)
class OverrideArguments:
    tenant: str
    account: str
    contact: str
    actor: str | None
    sets: Sequence[str] = ()
    locks: Sequence[str] = ()
    unlocks: Sequence[str] = ()
    stage: str | None = None
    reason: str | None = None


def build_override(
    args: OverrideArguments, *, event_id: uuid.UUID, now: datetime
) -> QualificationOverride:
    """The override the arguments describe; a ConfigurationError names the first bad one."""
    payload: dict[str, Any] = {
        "event_id": str(event_id),
        "tenant_id": str(parse_tenant(args.tenant)),
        "account_id": args.account,
        "contact_id": args.contact,
        "actor": parse_actor(args.actor),
        "occurred_at": now.isoformat(),
    }
    if args.sets:
        payload["set"] = parse_sets(args.sets)
    if args.locks:
        payload["lock"] = [parse_dimension(name, "--lock").value for name in args.locks]
    if args.unlocks:
        payload["unlock"] = [parse_dimension(name, "--unlock").value for name in args.unlocks]
    if stage := parse_stage_setting(args.stage, args.reason):
        payload["stage"] = stage
    if not any(key in payload for key in ("set", "lock", "unlock", "stage")):
        raise ConfigurationError("nothing to do: give --set, --lock, --unlock or --stage")
    try:
        return QualificationOverride.model_validate(payload)
    except ValidationError as error:
        raise ConfigurationError(f"invalid override: {describe(error)}") from None


def parse_tenant(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ConfigurationError(f"TENANT must be a UUID, got {value!r}") from None


def parse_actor(value: str | None) -> dict[str, str]:
    kind, _, identity = (value or "").partition(":")
    if kind not in ACTOR_TYPES or not identity:
        raise ConfigurationError(
            f"--actor must be TYPE:ID with TYPE one of {', '.join(ACTOR_TYPES)}, got {value!r}"
        )
    return {"type": kind, "id": identity}


def parse_dimension(name: str, option: str) -> Dimension:
    try:
        return Dimension(name)
    except ValueError:
        choices = ", ".join(d.value for d in Dimension)
        message = f"{option}: unknown dimension {name!r}; one of: {choices}"
        raise ConfigurationError(message) from None


def parse_sets(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`DIM.FIELD=VALUE` (or a bare `DIM`) items as the override's `set` object."""
    dimensions: dict[str, dict[str, Any]] = {}
    for item in items:
        target, has_value, text = item.partition("=")
        name, _, field = target.partition(".")
        dimension = parse_dimension(name, "--set")
        values = dimensions.setdefault(dimension.value, {})
        if not field and not has_value:
            continue  # `--set DIM`: confirm the stored values
        accepted = VALUES_MODELS[dimension].accepted_fields()
        if field not in accepted or not has_value:
            raise ConfigurationError(
                f"--set {item!r}: expected {dimension.value}.FIELD=VALUE with FIELD one of "
                f"{', '.join(accepted)}"
            )
        _set_field(
            values, field, field in DIMENSIONS.spec(dimension).of_kind(ValueKind.LIST), text, item
        )
    return dimensions


def _set_field(values: dict[str, Any], field: str, is_list: bool, text: str, item: str) -> None:
    if is_list:  # given once per item: `--set competition.competitors=Acme --set ...`
        items = values.setdefault(field, [])
        if text:
            items.append(text)
        return
    if field in values:
        raise ConfigurationError(f"--set {item!r}: {field} is given twice")
    values[field] = _typed(field, text, item)


def _typed(field: str, text: str, item: str) -> Any:
    if field == CONFIDENCE_FIELD:
        try:
            return float(text)
        except ValueError:
            raise ConfigurationError(f"--set {item!r}: confidence must be a number") from None
    if field == IDENTIFIED_FIELD:
        if text.lower() in TRUE_WORDS | FALSE_WORDS:
            return text.lower() in TRUE_WORDS
        raise ConfigurationError(f"--set {item!r}: identified must be true or false")
    return text or None  # an empty value clears the field


def parse_stage_setting(stage: str | None, reason: str | None) -> dict[str, str] | None:
    if stage is None:
        if reason is not None:
            raise ConfigurationError("--reason explains a --stage: give both")
        return None
    try:
        to = DealStage(stage)
    except ValueError:
        choices = ", ".join(s.value for s in DealStage)
        raise ConfigurationError(f"--stage: unknown stage {stage!r}; one of: {choices}") from None
    if not reason:
        raise ConfigurationError("--stage needs --reason: say why the deal moves")
    return {"to": to.value, "reason": reason}


def new_override(args: OverrideArguments) -> QualificationOverride:
    return build_override(args, event_id=uuid.uuid4(), now=datetime.now(UTC))
