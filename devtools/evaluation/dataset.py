"""The labelled conversations of an evaluation dataset (CONTRACT.md section 8), line by line.

A bad line is reported with its number and reason; the others are still evaluated. The dataset
in examples/eval/ comes in two parts: `development.jsonl` (the rules' patterns may be tuned on
it) and `held_out.jsonl` (written without reading the patterns, never used to tune them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas import Channel, DealStage, Dimension, Speaker
from worker.errors import ConfigurationError

NonEmpty = Annotated[str, Field(min_length=1)]

# CONTRACT.md section 8 (v3): every conversation labels every dimension of the table (twelve).
LABELLED_DIMENSIONS: tuple[str, ...] = tuple(d.value for d in Dimension)
EXAMPLES = Path("examples/eval")
HELD_OUT = EXAMPLES / "held_out.jsonl"
DEVELOPMENT = EXAMPLES / "development.jsonl"


class ExpectedDimension(BaseModel):
    """`identified` null means ambiguous: not scored. Substrings match case-insensitively."""

    model_config = ConfigDict(extra="forbid")

    identified: bool | None
    mentions: list[NonEmpty] = Field(default_factory=list)
    stale: list[NonEmpty] = Field(default_factory=list)


class LabelledTurn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    speaker: Speaker
    text: NonEmpty
    channel: Channel | None = None
    occurred_at: AwareDatetime | None = None


class Expectations(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labels: dict[str, ExpectedDimension]
    stage: Annotated[list[DealStage], Field(min_length=1)]

    @model_validator(mode="before")
    @classmethod
    def _split(cls, data: object) -> object:
        """The file keeps the dimensions' labels beside `stage`; the model keeps them apart."""
        if not isinstance(data, dict):
            return data
        labels = {key: value for key, value in data.items() if key != "stage"}
        return {"labels": labels, "stage": data.get("stage")}

    @model_validator(mode="after")
    def _all_twelve(self) -> Expectations:
        missing = [name for name in LABELLED_DIMENSIONS if name not in self.labels]
        if missing:
            raise ValueError(f"expect lacks {', '.join(missing)}")
        unknown = [name for name in self.labels if name not in LABELLED_DIMENSIONS]
        if unknown:
            raise ValueError(f"expect has unknown dimensions {', '.join(unknown)}")
        return self

    @property
    def dimensions(self) -> dict[Dimension, ExpectedDimension]:
        """The labels by dimension, as the scorer reads them."""
        return {dimension: self.labels[dimension.value] for dimension in Dimension}


class LabelledConversation(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: NonEmpty
    title: str = ""
    turns: Annotated[list[LabelledTurn], Field(min_length=1)]
    expect: Expectations


@dataclass(kw_only=True)
class Dataset:
    path: Path
    conversations: list[LabelledConversation] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)

    @property
    def part(self) -> str:
        """The name the report gives it: the file's name without `.jsonl` (`held_out`)."""
        return self.path.stem


def read_dataset(path: Path) -> Dataset:
    """Every valid line; a file that cannot be read, or holds no valid line, is an error."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise ConfigurationError(f"cannot read dataset {path}: {reason}") from None
    dataset = Dataset(path=path)
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            conversation = LabelledConversation.model_validate_json(line)
        except ValidationError as error:
            dataset.problems.append((number, describe(error)))
            continue
        if conversation.id in seen:
            dataset.problems.append((number, f"id {conversation.id!r} is used twice"))
            continue
        seen.add(conversation.id)
        dataset.conversations.append(conversation)
    if not dataset.conversations:
        raise ConfigurationError(f"dataset {path} has no valid conversation")
    return dataset


def describe(error: ValidationError) -> str:
    """The first problem of a line, in one line: where and what."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "line"
    return f"{where}: {first['msg']}"
