"""The qualification dimensions, defined once (CONTRACT.md section 2).

`DIMENSION_TABLE` is the only place a dimension is described: its name, its group (the `bant`
or `meddic` model that holds it), its value fields and how each merges, and the words the
prompt, the rules extractor and the operator views use for it. The flat signals models, the
override models, the prompt's sections, the lean response schema, the merge, ownership, the
criteria parser, the evaluation scorer and the rules' dispatch are all derived from it, so a
new dimension is one row (plus, for the rules extractor, a detector that finds it).

Every derivation takes a table, so a copy of the table with another row builds a whole
pipeline that carries that row (tests/unit/test_dimension_table.py). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Group(StrEnum):
    """The field of `QualificationSignals` that holds a dimension's flat fields."""

    BANT = "bant"
    MEDDIC = "meddic"

    @property
    def heading(self) -> str:
        return self.value.upper()


class ValueKind(StrEnum):
    """How a value field merges (CONTRACT.md section 3)."""

    TEXT = "text"  # taken as a group from the winning side
    CONTACT = "contact"  # as TEXT, except that a null never replaces a known contact
    LIST = "list"  # always extended with the new unique items, whichever side wins


@dataclass(frozen=True, kw_only=True)
class Slot:
    """A field of the lean `DimensionSignal` the model fills in; value fields map onto slots,
    so the lean schema stays small however many dimensions there are."""

    name: str
    description: str
    many: bool = False  # a list of items rather than one text


VALUE = Slot(name="value", description="Range, description, or contact name (see prompt)")
ROLE = Slot(name="role", description="authority only: title")
CRITERIA = Slot(name="criteria", description="decision_criteria only", many=True)
COMPETITORS = Slot(name="competitors", description="competition only", many=True)


@dataclass(frozen=True, kw_only=True)
class ValueField:
    name: str
    kind: ValueKind = ValueKind.TEXT
    slot: Slot = VALUE

    def __post_init__(self) -> None:
        if self.slot.many != (self.kind is ValueKind.LIST):
            raise ValueError(f"{self.name}: a list field needs a list slot, a text one a text slot")


@dataclass(frozen=True, kw_only=True)
class DimensionSpec:
    """One dimension: `{name}_confidence` and `{name}_evidence` always exist, then
    `{name}_identified` when `flagged` (decision_criteria has no flag: a non-empty list means
    identified), then its value fields."""

    name: str
    group: Group
    values: tuple[ValueField, ...]
    flagged: bool = True
    letter: str  # in the pipeline view's BANT / MEDDPICC columns
    label: str  # for people: "Economic buyer"
    meaning: str  # the prompt's definition
    lean_values: str  # the prompt's account of what the lean signal's slots hold
    full_values: str  # the prompt's account of the full model's value fields
    question: str  # what a rep asks while it is unknown

    @property
    def identified_field(self) -> str | None:
        return f"{self.name}_identified" if self.flagged else None

    @property
    def confidence_field(self) -> str:
        return f"{self.name}_confidence"

    @property
    def evidence_field(self) -> str:
        return f"{self.name}_evidence"

    @property
    def value_names(self) -> tuple[str, ...]:
        return tuple(value.name for value in self.values)

    @property
    def fields(self) -> tuple[str, ...]:
        """Every field of the flat model this dimension owns, in the model's order."""
        flag = (self.identified_field,) if self.identified_field else ()
        return (*flag, self.confidence_field, self.evidence_field, *self.value_names)

    def of_kind(self, kind: ValueKind) -> tuple[str, ...]:
        return tuple(value.name for value in self.values if value.kind is kind)

    def is_identified(self, signals: Any) -> bool:
        """Read from its flat model (BANT or MEDDIC signals)."""
        if self.identified_field is not None:
            return bool(getattr(signals, self.identified_field))
        return any(getattr(signals, name) for name in self.of_kind(ValueKind.LIST))

    def confidence(self, signals: Any) -> float:
        return float(getattr(signals, self.confidence_field))

    def evidence(self, signals: Any) -> list[str]:
        return list(getattr(signals, self.evidence_field))

    def cleared_values(self) -> dict[str, Any]:
        """The value fields as an unidentified dimension has them: null, or an empty list."""
        return {value.name: [] if value.kind is ValueKind.LIST else None for value in self.values}

    def value_fields(self, signals: Any) -> dict[str, Any]:
        return {name: getattr(signals, name) for name in self.value_names}


@dataclass(frozen=True)
class DimensionTable:
    """The dimensions in the contract's order (BANT first, then MEDDIC)."""

    rows: tuple[DimensionSpec, ...]

    def __post_init__(self) -> None:
        names = [row.name for row in self.rows]
        if len(set(names)) != len(names):
            raise ValueError(f"a dimension is defined twice: {names}")
        if [row.group for row in self.rows] != sorted(
            (row.group for row in self.rows), key=list(Group).index
        ):
            raise ValueError("BANT dimensions come first, then MEDDIC")

    def __iter__(self) -> Iterator[DimensionSpec]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(row.name for row in self.rows)

    def spec(self, name: str) -> DimensionSpec:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"unknown dimension {name!r}; one of: {', '.join(self.names)}")

    def in_group(self, group: Group) -> tuple[DimensionSpec, ...]:
        return tuple(row for row in self.rows if row.group is group)

    def slots(self) -> tuple[Slot, ...]:
        """The lean signal's value slots, in the order the table first uses them."""
        return tuple(dict.fromkeys(value.slot for row in self.rows for value in row.values))


def _text(name: str) -> tuple[ValueField, ...]:
    return (ValueField(name=name),)


def _contact(name: str) -> tuple[ValueField, ...]:
    return (ValueField(name=name, kind=ValueKind.CONTACT),)


DIMENSIONS = DimensionTable(
    (
        DimensionSpec(
            name="budget",
            group=Group.BANT,
            values=_text("budget_range"),
            letter="B",
            label="Budget",
            meaning="money available or allocated for this purchase",
            lean_values='value: the range, e.g. "$50k-$80k per year".',
            full_values='budget_range, e.g. "$50k-$80k per year".',
            question="Is there a budget set aside for this, and roughly what range?",
        ),
        DimensionSpec(
            name="authority",
            group=Group.BANT,
            values=(
                ValueField(name="authority_contact", kind=ValueKind.CONTACT),
                ValueField(name="authority_role", slot=ROLE),
            ),
            letter="A",
            label="Authority",
            meaning="who decides or signs",
            lean_values="value: their name; role: their title.",
            full_values="authority_contact (a name), authority_role (a title).",
            question="Who besides you is involved in making this decision?",
        ),
        DimensionSpec(
            name="need",
            group=Group.BANT,
            values=_text("need_description"),
            letter="N",
            label="Need",
            meaning="the problem or capability they need solved",
            lean_values="value: a description.",
            full_values="need_description.",
            question="What problem are you hoping to solve, and why now?",
        ),
        DimensionSpec(
            name="timeline",
            group=Group.BANT,
            values=_text("timeline_description"),
            letter="T",
            label="Timeline",
            meaning="when they want to decide, buy or go live",
            lean_values="value: a description.",
            full_values="timeline_description.",
            question="When do you need a solution in place?",
        ),
        DimensionSpec(
            name="metrics",
            group=Group.MEDDIC,
            values=_text("metrics_description"),
            letter="M",
            label="Metrics",
            meaning="quantified goals or impact (hours saved, % reduction, revenue)",
            lean_values="value: a description.",
            full_values="metrics_description.",
            question="How will you measure success?",
        ),
        DimensionSpec(
            name="economic_buyer",
            group=Group.MEDDIC,
            values=_contact("economic_buyer_contact"),
            letter="E",
            label="Economic buyer",
            meaning="the person with final budget authority",
            lean_values="value: their name.",
            full_values="economic_buyer_contact.",
            question="Who signs off on the budget?",
        ),
        DimensionSpec(
            name="decision_criteria",
            group=Group.MEDDIC,
            values=(ValueField(name="decision_criteria", kind=ValueKind.LIST, slot=CRITERIA),),
            flagged=False,
            letter="D",
            label="Decision criteria",
            meaning="requirements vendors are judged by",
            lean_values="criteria: a list of short items.",
            full_values="decision_criteria: a list of short items.",
            question="What will you compare vendors on?",
        ),
        DimensionSpec(
            name="decision_process",
            group=Group.MEDDIC,
            values=_text("decision_process_description"),
            letter="D",
            label="Decision process",
            meaning="the steps, people and approvals before a purchase",
            lean_values="value: a description.",
            full_values="decision_process_description.",
            question="What steps does a purchase like this go through on your side?",
        ),
        DimensionSpec(
            name="identify_pain",
            group=Group.MEDDIC,
            values=_text("pain_description"),
            letter="I",
            label="Pain",
            meaning="the business pain and what it costs them",
            lean_values="value: a description.",
            full_values="pain_description.",
            question="What does the current process cost you today?",
        ),
        DimensionSpec(
            name="champion",
            group=Group.MEDDIC,
            values=_contact("champion_contact"),
            letter="C",
            label="Champion",
            meaning="someone inside the account who actively sells for us internally",
            lean_values="value: their name.",
            full_values="champion_contact.",
            question="Who else on your team would benefit most from this?",
        ),
        # v3: MEDDPICC's P and the second C.
        DimensionSpec(
            name="paper_process",
            group=Group.MEDDIC,
            values=_text("paper_process_description"),
            letter="P",
            label="Paper process",
            meaning="how the contract gets signed once they have chosen: legal review, "
            "procurement, security review, signature order, paperwork lead time",
            lean_values="value: a description.",
            full_values="paper_process_description.",
            question="Once you decide, what does it take to get the contract signed?",
        ),
        DimensionSpec(
            name="competition",
            group=Group.MEDDIC,
            values=(ValueField(name="competitors", kind=ValueKind.LIST, slot=COMPETITORS),),
            letter="C",
            label="Competition",
            meaning="who else is in the deal: vendors they also evaluate, building it in-house, "
            'or doing nothing (staying with what they have). "We only talk to you" is no '
            "competitor",
            lean_values='competitors: names as said; "in-house build" and "do nothing" count.',
            full_values='competitors: names as said; "in-house build" and "do nothing" count.',
            question="Who else are you looking at, or could you solve this in-house?",
        ),
    )
)
