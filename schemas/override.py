"""`QualificationOverride`: a person's or a system of record's correction (CONTRACT.md 1, v2).

`set` names dimensions and gives their value fields as the person sees them (section 2's types),
plus optional `identified` and `confidence`. Only the fields given are taken: a field left out
keeps its stored value, an explicit null (or `[]` for a list) clears it. Setting
`identified: false` clears the value fields not given, since an unidentified dimension has no
value. Evidence cannot be set: quotes come from the conversation only.

Every rule break is a `ValidationError` whose location names the offending path
(`set.budget.budget_rnage: unknown field for budget; its fields: …`), which the consumer turns
into an `invalid_event` dead letter.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from schemas.bounds import OVERRIDE_LIST_ITEM_CHARS, OVERRIDE_LIST_ITEMS
from schemas.dimensions import DIMENSIONS, DimensionSpec, ValueKind
from schemas.enums import DealStage, Dimension
from schemas.events import ConversationKey
from schemas.ownership import Actor
from schemas.qualification import DIMENSION_FIELDS, Confidence, ShortText

# Fields every dimension accepts besides its value fields.
# (v3) A list value field's items, as a person gives them: bounded like the state that keeps them.
ListItem = Annotated[str, Field(min_length=1, max_length=OVERRIDE_LIST_ITEM_CHARS)]

CONFIDENCE_FIELD = "confidence"
IDENTIFIED_FIELD = "identified"  # not for unflagged ones: a non-empty list means identified


def _reject_nul(value: str) -> str:
    # PostgreSQL text and jsonb cannot hold U+0000 (as for turns).
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _unknown_keys_error(
    title: str, data: dict[str, Any], unknown: list[str], message: str, **context: Any
) -> ValidationError:
    """One error per unknown key, located at the key itself, so the dead letter's detail points
    at the typo (`set.budget.budget_rnage`) instead of at its parent."""
    return ValidationError.from_exception_data(
        title,
        [
            InitErrorDetails(
                type=PydanticCustomError("unknown_field", message, context),
                loc=(key,),
                input=data[key],
            )
            for key in unknown
        ],
    )


class DimensionValues(BaseModel):
    """What a person sets for one dimension; subclasses add the dimension's value fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dimension: ClassVar[Dimension]

    confidence: Confidence = Field(
        default=1.0, description="How sure the person is; 1.0 unless given"
    )

    @model_validator(mode="before")
    @classmethod
    def _known_fields_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(str(key) for key in data if key not in cls.model_fields)
            if unknown:
                raise _unknown_keys_error(
                    cls.__name__,
                    data,
                    unknown,
                    "unknown field for {dimension}; its fields: {fields}",
                    dimension=cls.dimension.value,
                    fields=", ".join(cls.accepted_fields()),
                )
        return data

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _reject_nul(value)
        if isinstance(value, list):
            return [_reject_nul(item) if isinstance(item, str) else item for item in value]
        return value

    @classmethod
    def accepted_fields(cls) -> tuple[str, ...]:
        """The value fields first, then `identified` (where it exists) and `confidence`."""
        values = DIMENSION_FIELDS[cls.dimension]
        return values + tuple(field for field in cls.model_fields if field not in values)

    def identified_flag(self) -> bool | None:
        """`identified` as given (true unless given); None for a dimension with no
        flag (its list, given or stored, says whether it is identified)."""
        flag = getattr(self, IDENTIFIED_FIELD, None)
        return None if flag is None else bool(flag)

    def given_values(self) -> dict[str, Any]:
        """The value fields the override gives (an explicit null included), by field name."""
        return {
            field: getattr(self, field)
            for field in DIMENSION_FIELDS[self.dimension]
            if field in self.model_fields_set
        }


class _FlaggedValues(DimensionValues):
    identified: bool = Field(
        default=True,
        description="False marks the dimension not identified (and clears the value fields not "
        "given); true unless given",
    )


def values_model(row: DimensionSpec) -> type[DimensionValues]:
    """`{Name}Values`: the fields a person may set for `row`'s dimension."""
    fields: dict[str, Any] = {}
    for value in row.values:
        if value.kind is ValueKind.LIST:
            described: Any = Field(
                default_factory=list,
                max_length=OVERRIDE_LIST_ITEMS,
                description=f"Replaces the stored list; [] clears it. At most "
                f"{OVERRIDE_LIST_ITEMS} items of at most {OVERRIDE_LIST_ITEM_CHARS} characters",
            )
            fields[value.name] = (list[ListItem], described)
        else:
            fields[value.name] = (ShortText | None, None)
    name = "".join(part.capitalize() for part in row.name.split("_")) + "Values"
    base: type[DimensionValues] = _FlaggedValues if row.flagged else DimensionValues
    model = create_model(
        name,
        __base__=base,
        __module__=__name__,
        __doc__=None if row.flagged else _UNFLAGGED_DOC,
        **fields,
    )
    model.dimension = Dimension(row.name)
    return model


_UNFLAGGED_DOC = "No `identified`: a non-empty list means identified (CONTRACT.md section 2)."

# The model of each dimension's values, for tools that build an override field by field.
VALUES_MODELS: dict[Dimension, type[DimensionValues]] = {
    Dimension(row.name): values_model(row) for row in DIMENSIONS
}


class _DimensionSetBase(BaseModel):
    """`set`: dimension name -> its values. Named fields, so the JSON Schema lists each one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_dimensions_only(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        unknown = sorted(str(key) for key in data if key not in cls.model_fields)
        if unknown:
            raise _unknown_keys_error(
                cls.__name__,
                data,
                unknown,
                "unknown dimension; one of: {dimensions}",
                dimensions=", ".join(cls.model_fields),
            )
        nulls = sorted(str(key) for key, value in data.items() if value is None)
        if nulls:
            raise _unknown_keys_error(
                cls.__name__,
                data,
                nulls,
                "null is not a value: give the dimension's fields (an empty object confirms "
                "the stored ones), or leave it out",
            )
        return data

    def by_dimension(self) -> dict[Dimension, DimensionValues]:
        """The dimensions set, in the contract's order."""
        found: dict[Dimension, DimensionValues] = {}
        for dimension in Dimension:
            values = getattr(self, dimension.value)
            if values is not None:
                found[dimension] = values
        return found


if TYPE_CHECKING:
    DimensionSet = _DimensionSetBase
else:
    DimensionSet = create_model(
        "DimensionSet",
        __base__=_DimensionSetBase,
        __module__=__name__,
        __doc__=_DimensionSetBase.__doc__,
        **{dimension.value: (model | None, None) for dimension, model in VALUES_MODELS.items()},
    )


class StageSetting(BaseModel):
    """A person moves the deal to any stage; the stage machine binds the AI only."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    to: DealStage
    reason: Annotated[str, Field(min_length=1, max_length=500)]

    @field_validator("reason")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        return _reject_nul(value)


class QualificationOverride(BaseModel):
    """Published on `qualification.override`, keyed like turns."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: UUID
    tenant_id: UUID
    account_id: Annotated[str, Field(min_length=1, max_length=100)]
    contact_id: Annotated[str, Field(min_length=1, max_length=100)]
    actor: Actor
    occurred_at: AwareDatetime
    set: DimensionSet | None = Field(
        default=None, description="Dimension -> its values; setting a dimension locks it"
    )
    # Bounded by the number of dimensions: a longer list only repeats names.
    lock: list[Dimension] | None = Field(
        default=None,
        max_length=len(Dimension),
        description="Take ownership without changing values",
    )
    unlock: list[Dimension] | None = Field(
        default=None,
        max_length=len(Dimension),
        description="Give ownership back to the AI without changing values",
    )
    stage: StageSetting | None = None

    @field_validator("account_id", "contact_id")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        return _reject_nul(value)

    @field_validator("occurred_at")
    @classmethod
    def _representable_in_utc(cls, value: datetime) -> datetime:
        # As for turns: valid ISO 8601 near year 9999 can leave datetime's range once in UTC.
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError("is out of range once converted to UTC") from None
        return value

    @model_validator(mode="after")
    def _does_something_consistent(self) -> QualificationOverride:
        if not (self.set_dimensions() or self.lock or self.unlock or self.stage):
            raise PydanticCustomError(
                "empty_override", "nothing to do: give at least one of set, lock, unlock or stage"
            )
        unlocked = set(self.unlock or ())
        for name, taken in (("set", self.set_dimensions()), ("lock", self.lock or [])):
            both = sorted(d.value for d in unlocked.intersection(taken))
            if both:
                raise PydanticCustomError(
                    "contradictory_override",
                    "{dimensions} in both {name} and unlock",
                    {"dimensions": ", ".join(both), "name": name},
                )
        return self

    def set_dimensions(self) -> dict[Dimension, DimensionValues]:
        return self.set.by_dimension() if self.set is not None else {}

    @property
    def key(self) -> ConversationKey:
        return ConversationKey(self.tenant_id, self.account_id, self.contact_id)

    def to_json(self) -> str:
        """The payload as a producer sends it: fields left out stay left out, because a value
        field that is not given (kept) and one given as null (cleared) mean different things."""
        return self.model_dump_json(exclude_unset=True)

    def fingerprint(self) -> str:
        """sha256 of the override's canonical JSON (sorted keys, fields given only): equal for
        a redelivery, different when a producer reuses an event_id for other content."""
        canonical = json.dumps(
            self.model_dump(mode="json", exclude_unset=True),
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()
