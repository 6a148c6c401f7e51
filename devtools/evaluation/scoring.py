"""How a final state compares with a conversation's labels (CONTRACT.md section 8). Pure.

Per dimension of the table (schemas.dimensions): identification as a binary classification
over the labelled true/false cases (null is not scored), the labelled mentions found in the
dimension's value fields or evidence, and stale values still shown as the current value. Per
conversation: whether the final stage is one of the acceptable ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from devtools.evaluation.dataset import Expectations
from schemas import (
    ConversationState,
    DealStage,
    Dimension,
    QualificationSignals,
    is_identified,
    signals_of,
)


@dataclass(frozen=True, kw_only=True)
class DimensionScore:
    dimension: Dimension
    expected: bool | None  # the label; None: not scored
    predicted: bool
    mentions: int  # labelled
    mentions_found: int
    stale: int  # labelled
    stale_shown: int  # stale substrings still in the value fields


@dataclass(frozen=True, kw_only=True)
class ConversationScore:
    conversation_id: str
    dimensions: tuple[DimensionScore, ...]
    stage: DealStage
    acceptable_stages: tuple[DealStage, ...]

    @property
    def stage_acceptable(self) -> bool:
        return self.stage in self.acceptable_stages


@dataclass(kw_only=True)
class Tally:
    """Counts over any set of dimension scores; the rates are None when undefined (0 / 0)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    mentions: int = 0
    mentions_found: int = 0
    stale: int = 0
    stale_shown: int = 0

    def add(self, score: DimensionScore) -> None:
        if score.expected is not None:
            if score.expected and score.predicted:
                self.tp += 1
            elif score.predicted:
                self.fp += 1
            elif score.expected:
                self.fn += 1
            else:
                self.tn += 1
        self.mentions += score.mentions
        self.mentions_found += score.mentions_found
        self.stale += score.stale
        self.stale_shown += score.stale_shown

    @property
    def precision(self) -> float | None:
        return ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        return ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def mention_share(self) -> float | None:
        return ratio(self.mentions_found, self.mentions)


@dataclass(kw_only=True)
class Summary:
    """A run's scores: per dimension, micro-averaged overall, and the final stages."""

    per_dimension: dict[Dimension, Tally] = field(
        default_factory=lambda: {dimension: Tally() for dimension in Dimension}
    )
    overall: Tally = field(default_factory=Tally)
    conversations: int = 0
    stage_acceptable: int = 0

    @property
    def stage_share(self) -> float | None:
        return ratio(self.stage_acceptable, self.conversations)


def ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def score_conversation(
    conversation_id: str, expect: Expectations, state: ConversationState
) -> ConversationScore:
    signals = state.qualification
    return ConversationScore(
        conversation_id=conversation_id,
        dimensions=tuple(
            score_dimension(dimension, expect, signals) for dimension in expect.dimensions
        ),
        stage=state.deal_stage,
        acceptable_stages=tuple(expect.stage),
    )


def score_dimension(
    dimension: Dimension, expect: Expectations, signals: QualificationSignals
) -> DimensionScore:
    label = expect.dimensions[dimension]
    identified = is_identified(signals, dimension)
    values = value_texts(signals, dimension)
    # A mention counts only where the dimension is identified: quotes alone are no finding.
    searchable = [*values, *evidence_texts(signals, dimension)] if identified else []
    return DimensionScore(
        dimension=dimension,
        expected=label.identified,
        predicted=identified,
        mentions=len(label.mentions),
        mentions_found=sum(contains(searchable, mention) for mention in label.mentions),
        stale=len(label.stale),
        stale_shown=sum(contains(values, stale) for stale in label.stale),
    )


def value_texts(signals: QualificationSignals, dimension: str) -> list[str]:
    """The dimension's value fields as text (list fields item by item), nulls left out."""
    texts: list[str] = []
    for value in signals.spec(dimension).value_fields(signals_of(signals, dimension)).values():
        if isinstance(value, list):
            texts += [str(item) for item in value]
        elif value is not None:
            texts.append(str(value))
    return texts


def evidence_texts(signals: QualificationSignals, dimension: str) -> list[str]:
    return signals.spec(dimension).evidence(signals_of(signals, dimension))


def contains(texts: Iterable[str], needle: str) -> bool:
    wanted = needle.casefold()
    return any(wanted in text.casefold() for text in texts)


def summarize(scores: Sequence[ConversationScore]) -> Summary:
    summary = Summary()
    for conversation in scores:
        summary.conversations += 1
        summary.stage_acceptable += conversation.stage_acceptable
        for score in conversation.dimensions:
            summary.per_dimension[score.dimension].add(score)
            summary.overall.add(score)
    return summary
