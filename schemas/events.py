"""The Kafka payloads (CONTRACT.md section 1): what producers send and downstream services read."""

from __future__ import annotations

import functools
import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NamedTuple
from uuid import UUID, uuid5

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    SerializeAsAny,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from schemas.enums import Channel, DealStage, PersonaType, Speaker
from schemas.ownership import Actor, NextStage, Owner, Suggestion
from schemas.qualification import QualificationState

DEFAULT_MAX_TURN_CHARS = 20_000
# `QualificationUpdated.event_id` is uuid5(UPDATE_EVENT_NAMESPACE, "{conversation key}:{version}")
# for a conversation's first incarnation, and "{conversation key}:{version}:{incarnation}" for one
# created again after n erasures (incarnation n + 1): a republished version carries the same id,
# and a conversation created again never reuses the erased one's ids.
UPDATE_EVENT_NAMESPACE = UUID("6f1d8a52-3c1e-5b8e-9a57-2d5c7c0e4b11")
MAX_METADATA_BYTES = 16 * 1024
# Deeper metadata is refused before it is serialized: Python's json encoder overflows its stack
# near 1000 levels, and orjson (the jsonb codec of the database layer) refuses 255 or more.
MAX_METADATA_DEPTH = 32
MAX_SEQUENCE = 2**31 - 1  # tenant.conversation_turns.sequence is a PostgreSQL integer
TOO_LARGE = "too_large"  # the ValidationError type the consumer maps to the DLQ reason `too_large`


def _reject_nul(value: str) -> str:
    # PostgreSQL text and jsonb cannot hold U+0000; refuse it here rather than fail in the database.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        for child in children:
            stack.append((child, depth + 1))
        deepest = max(deepest, depth + (1 if children else 0))
    return deepest


class ConversationTurn(BaseModel):
    """One chat turn of a B2B sales conversation, as published on `conversation.turn`.

    The text limit is `MAX_TURN_CHARS`, passed as validation context `{"max_turn_chars": n}`.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: UUID
    tenant_id: UUID
    account_id: Annotated[str, Field(min_length=1, max_length=100)]
    contact_id: Annotated[str, Field(min_length=1, max_length=100)]
    contact_email: Annotated[EmailStr, Field(max_length=255)]
    contact_name: Annotated[str, Field(max_length=200)] | None = None
    persona_type: PersonaType | None = None
    channel: Channel
    speaker: Speaker
    text: Annotated[
        str,
        Field(
            min_length=1,
            description=f"1..MAX_TURN_CHARS characters (default {DEFAULT_MAX_TURN_CHARS})",
            json_schema_extra={"maxLength": DEFAULT_MAX_TURN_CHARS},
        ),
    ]
    occurred_at: AwareDatetime
    sequence: Annotated[int, Field(ge=0, le=MAX_SEQUENCE)] | None = None
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="At most 16 KiB serialized; stored, never interpreted"
    )

    @field_validator("account_id", "contact_id", "contact_name", "text")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        return None if value is None else _reject_nul(value)

    @field_validator("text")
    @classmethod
    def _text_within_limit(cls, value: str, info: ValidationInfo) -> str:
        limit = (info.context or {}).get("max_turn_chars", DEFAULT_MAX_TURN_CHARS)
        if len(value) > limit:
            raise PydanticCustomError(
                TOO_LARGE,
                "text has {length} characters, the limit is {limit}",
                {"length": len(value), "limit": limit},
            )
        return value

    @field_validator("occurred_at")
    @classmethod
    def _representable_in_utc(cls, value: datetime) -> datetime:
        # 9999-12-31T23:59-05:00 is valid ISO 8601 but past datetime's range once stored as UTC.
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError("is out of range once converted to UTC") from None
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_within_limit(cls, value: dict[str, Any]) -> dict[str, Any]:
        if _depth(value) > MAX_METADATA_DEPTH:
            raise ValueError(f"metadata is nested deeper than {MAX_METADATA_DEPTH} levels")
        serialized = json.dumps(value, ensure_ascii=False)
        if len(serialized.encode()) > MAX_METADATA_BYTES:
            raise PydanticCustomError(
                TOO_LARGE,
                "metadata is larger than {limit} bytes serialized",
                {"limit": MAX_METADATA_BYTES},
            )
        if "\\u0000" in serialized:
            raise ValueError("metadata must not contain NUL characters")
        return value

    @property
    def key(self) -> ConversationKey:
        return ConversationKey(self.tenant_id, self.account_id, self.contact_id)

    def fingerprint(self) -> str:
        """sha256 of the turn's canonical JSON (sorted keys): equal for a redelivery of the
        same turn, different when a producer reuses an event_id for other content. Computed
        once per turn (the model is frozen)."""
        return self._content_fingerprint

    @functools.cached_property
    def _content_fingerprint(self) -> str:
        canonical = json.dumps(
            self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False, separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


class ConversationKey(NamedTuple):
    """The identity of a conversation; expands as the first three parameters of every query."""

    tenant_id: UUID
    account_id: str
    contact_id: str

    def __str__(self) -> str:
        return conversation_key(self.tenant_id, self.account_id, self.contact_id)


def conversation_key(tenant_id: UUID, account_id: str, contact_id: str) -> str:
    """The Kafka key of a conversation: `"{tenant_id}:{account_id}:{contact_id}"`.

    `%` and `:` inside the ids are written `%25` and `%3A`: otherwise account "acme:emea" with
    contact "x" and account "acme" with contact "emea:x" would share a key and, through it,
    their update event_ids (so one conversation's events would be dropped as duplicates).
    Ids without `%` or `:` are written as they are."""
    return f"{tenant_id}:{_key_part(account_id)}:{_key_part(contact_id)}"


def _key_part(value: str) -> str:
    return value.replace("%", "%25").replace(":", "%3A")


def update_event_id(key: ConversationKey, version: int, incarnation: int = 1) -> UUID:
    # The key holds exactly two ':' (ids escape theirs), so the two forms never meet.
    name = f"{key}:{version}" if incarnation == 1 else f"{key}:{version}:{incarnation}"
    return uuid5(UPDATE_EVENT_NAMESPACE, name)


class StageMove(BaseModel):
    """One move between two stages, accepted or not, and why."""

    model_config = ConfigDict(populate_by_name=True)

    from_stage: DealStage = Field(alias="from")
    to_stage: DealStage = Field(alias="to")
    accepted: bool
    reason: str


class StageChange(StageMove):
    """The stage proposed or set in a version. For an AI proposal (v3: a stage walk of one or
    more steps), `steps` are its steps as judged, in order: the accepted ones, then the one
    rejected, where the walk stopped. `from`/`to`/`accepted` say where the deal went: from the
    stage before the walk to the last accepted step's stage (accepted), or, when the first
    step was rejected, to that step's stage (not accepted)."""

    steps: list[StageMove] = Field(
        default_factory=list,
        description="An AI proposal's steps as judged, in order (the walk stops at the first "
        "rejected one); empty for a stage a person or the worker set",
    )


class ExtractionInfo(BaseModel):
    status: Literal["ok", "failed"]
    model: str
    prompt_version: str
    turns: int = Field(description="How many turns the extraction read")
    prompt_tokens: int | None = Field(
        default=None, description="Input tokens billed, the cached ones included"
    )
    completion_tokens: int | None = Field(default=None, description="Output tokens billed")
    cache_read_tokens: int | None = Field(
        default=None, description="Input tokens read from the provider's prompt cache"
    )
    cache_write_tokens: int | None = Field(
        default=None, description="Input tokens written to the provider's prompt cache"
    )
    cost_usd: float | None = Field(
        default=None, description="Cost of the tokens in USD; null when the price is unknown"
    )


# What made a state version (v2).
VersionSource = Literal["turns", "override", "inactivity", "reextract"]


class QualificationUpdated(BaseModel):
    """Published on `qualification.updated` once per committed state version."""

    model_config = ConfigDict(populate_by_name=True)

    event_id: UUID
    tenant_id: UUID
    account_id: str
    contact_id: str
    version: Annotated[int, Field(ge=1)]
    deal_stage: DealStage
    previous_stage: DealStage
    stage_change: StageChange | None = Field(
        default=None,
        description="The stage proposed or set in this version, accepted or not; null if none. "
        "When a turn resumed a deal stalled by inactivity, the extraction's proposal (judged "
        "from the resumed stage) if it made one, else the resume; previous_stage is `stalled`",
    )
    # Serialized as what it is: the state of another dimension table (a subclass) keeps its own
    # dimensions in the event (schemas.qualification.qualification_models).
    qualification: SerializeAsAny[QualificationState]
    changed_fields: list[str]
    interaction_count: int
    confidence_score: float
    extraction: ExtractionInfo | None = Field(
        default=None, description="Null for a version no extraction made (override, inactivity)"
    )
    turn_event_ids: list[UUID]
    source: VersionSource = "turns"
    actor: Actor | None = Field(default=None, description="The override's actor, else null")
    owners: dict[str, Owner] = Field(
        default_factory=dict, description="Every human-owned dimension: who owns it since when"
    )
    suggestions: dict[str, Suggestion] = Field(
        default_factory=dict,
        description="The AI's latest differing view of each human-owned dimension",
    )
    next_stage: NextStage | None = Field(
        default=None, description="The next stage and what its exit criteria lack; null if closed"
    )
    occurred_at: AwareDatetime


# `conflict`: an event_id already stored with other content (the first one wins).
# `unknown_conversation` (v2): an override for a conversation no turn has created yet.
DeadLetterReason = Literal[
    "invalid_json", "invalid_event", "too_large", "conflict", "unknown_conversation"
]


class DeadLetter(BaseModel):
    """A record the worker could not accept, with why and where it came from.

    (v3) It always fits the producer's request limit (`KAFKA_MAX_REQUEST_BYTES`): when the whole
    original would not, `value` holds its head only, and `value_size` and `value_sha256` say
    what the original was."""

    error: DeadLetterReason
    detail: str
    topic: str
    partition: int
    offset: int
    key: str | None = None
    value: str
    value_encoding: Literal["utf-8", "base64"] = "utf-8"
    value_truncated: bool = Field(
        default=False, description="True when `value` holds the original's head only"
    )
    value_size: int | None = Field(
        default=None, description="Bytes of the original value, when `value` is truncated"
    )
    value_sha256: str | None = Field(
        default=None, description="Hex sha256 of the original value, when `value` is truncated"
    )
    failed_at: datetime
