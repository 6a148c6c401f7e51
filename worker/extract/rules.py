"""The offline rule-based extractor (`LLM_MODEL=rules`): keywords and patterns, no LLM.

It is much weaker than an LLM: it reads sentences, not meaning, so it misses paraphrase and
indirect speech and does not understand negation ("we have no budget" is still a budget
sentence). It is the embedded default for the demo and a deterministic baseline.

Evidence is always a whole sentence copied verbatim from a turn. Only prospect turns count:
a rep's restatement is not the prospect's word, and a rep's pitch ("our plan is $20k a year")
would otherwise read as the prospect's budget. Stage proposals are conservative and one step
at a time. Importing this module must stay cheap: no LiteLLM, no instructor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from schemas import (
    BANTSignals,
    DealStage,
    MEDDICSignals,
    NextStage,
    QualificationExtraction,
    QualificationState,
    Speaker,
)
from worker.extract.port import ExtractionResult, TurnText
from worker.extract.rules_patterns import (
    BANT,
    BUDGET,
    CHAMPION,
    CLAUSE_BREAK,
    CRITERIA_TERMS,
    DATE,
    DECIDES,
    FIRST_PERSON,
    LABELS,
    MEASURE,
    MEDDIC,
    METRIC_VERB,
    MONEY,
    MUST,
    NAMED_TITLE,
    NEED,
    NEXT_STAGE,
    PAIN,
    PROCESS,
    PURCHASE,
    QUARTER,
    QUESTIONS,
    SENTENCE_BREAK,
    SIGNS_OFF,
    SPEND,
    TITLE_RE,
    WHEN,
)
from worker.settings import RULES_MODEL

RULES_VERSION = "rules-v1"
MAX_DESCRIPTION_CHARS = 200
MAX_SENTENCE_CHARS = 300


@dataclass(frozen=True, kw_only=True, slots=True)
class Hit:
    """One sentence that shows one dimension, with the value fields it yields."""

    dimension: str
    quote: str
    confidence: float
    values: dict[str, str] = field(default_factory=dict)


Detector = Callable[[str], Iterable[Hit]]


# --- detectors: one per dimension, each reading one sentence ------------------------------


def detect_budget(sentence: str) -> Iterable[Hit]:
    if not is_budget(sentence):
        return
    amounts = [m.group(0).strip() for m in MONEY.finditer(sentence)]
    values = {"budget_range": "-".join(amounts[:2])} if amounts else {}
    yield Hit(dimension="budget", quote=sentence, confidence=0.8 if amounts else 0.5, values=values)


def is_budget(sentence: str) -> bool:
    spends = SPEND.search(sentence) and MONEY.search(sentence)
    return bool(BUDGET.search(sentence) or spends)


def detect_authority(sentence: str) -> Iterable[Hit]:
    decides, signs = DECIDES.search(sentence), SIGNS_OFF.search(sentence)
    title = TITLE_RE.search(sentence)
    if not (decides or signs or (title and FIRST_PERSON.search(sentence))):
        return
    values = _person_values(sentence, "authority_contact", "authority_role")
    yield Hit(
        dimension="authority",
        quote=sentence,
        confidence=0.7 if decides or signs else 0.5,
        values=values,
    )
    if signs:
        contact = values.get("authority_contact") or values.get("authority_role")
        found = {"economic_buyer_contact": contact} if contact else {}
        yield Hit(dimension="economic_buyer", quote=sentence, confidence=0.7, values=found)


def _person_values(sentence: str, contact_field: str, role_field: str) -> dict[str, str]:
    values: dict[str, str] = {}
    if title := TITLE_RE.search(sentence):
        values[role_field] = title.group(0)
    if named := NAMED_TITLE.search(sentence):
        values[contact_field] = named.group("n1") or named.group("n2")
    return values


def detect_need(sentence: str) -> Iterable[Hit]:
    if NEED.search(sentence):
        yield _described("need", sentence, 0.6, "need_description")


def detect_timeline(sentence: str) -> Iterable[Hit]:
    explicit = [m.group(0) for m in (*QUARTER.finditer(sentence), *DATE.finditer(sentence))]
    relative = [m.group(0) for m in WHEN.finditer(sentence)] if PURCHASE.search(sentence) else []
    if found := explicit + relative:
        values = {"timeline_description": ", ".join(dict.fromkeys(found))}
        yield Hit(
            dimension="timeline", quote=sentence, confidence=0.7 if explicit else 0.5, values=values
        )


def detect_pain(sentence: str) -> Iterable[Hit]:
    if PAIN.search(sentence):
        yield _described("identify_pain", sentence, 0.6, "pain_description")


def detect_metrics(sentence: str) -> Iterable[Hit]:
    measured = MEASURE.search(sentence) or MONEY.search(sentence)
    if measured and METRIC_VERB.search(sentence) and not is_budget(sentence):
        yield _described("metrics", sentence, 0.6, "metrics_description")


def detect_decision_criteria(sentence: str) -> Iterable[Hit]:
    terms = [m.group(0) for m in CRITERIA_TERMS.finditer(sentence)]
    # A "must ..." clause is an item of its own only when it names no known term.
    clauses = [m.group(0) for m in MUST.finditer(sentence) if not CRITERIA_TERMS.search(m.group(0))]
    for item in dict.fromkeys(terms + clauses):
        yield Hit(
            dimension="decision_criteria",
            quote=sentence,
            confidence=0.6,
            values={"decision_criteria": item},
        )


def detect_decision_process(sentence: str) -> Iterable[Hit]:
    if PROCESS.search(sentence):
        yield _described("decision_process", sentence, 0.6, "decision_process_description")


def detect_champion(sentence: str) -> Iterable[Hit]:
    if CHAMPION.search(sentence):
        yield Hit(dimension="champion", quote=sentence, confidence=0.5)


def _described(dimension: str, sentence: str, confidence: float, value_field: str) -> Hit:
    description = sentence[:MAX_DESCRIPTION_CHARS]
    return Hit(
        dimension=dimension,
        quote=sentence,
        confidence=confidence,
        values={value_field: description},
    )


DETECTORS: tuple[Detector, ...] = (
    detect_budget,
    detect_authority,
    detect_need,
    detect_timeline,
    detect_pain,
    detect_metrics,
    detect_decision_criteria,
    detect_decision_process,
    detect_champion,
)


# --- from turns to hits --------------------------------------------------------------------


def sentences(text: str) -> list[str]:
    """The sentences of a turn (long ones cut into clauses), each a verbatim substring."""
    pieces = [piece.strip() for piece in SENTENCE_BREAK.split(text) if piece.strip()]
    return [clause for piece in pieces for clause in _clauses(piece)]


def _clauses(sentence: str) -> list[str]:
    # A run-on sentence makes poor evidence; its clauses are shorter and still verbatim.
    if len(sentence) <= MAX_SENTENCE_CHARS:
        return [sentence]
    return [clause.strip() for clause in CLAUSE_BREAK.split(sentence) if clause.strip()]


def find_hits(turns: Sequence[TurnText]) -> list[Hit]:
    prospect_turns = (turn for turn in turns if turn.speaker is Speaker.PROSPECT)
    return [
        hit
        for turn in prospect_turns
        for sentence in sentences(turn.text)
        for detect in DETECTORS
        for hit in detect(sentence)
    ]


def group_hits(hits: Iterable[Hit]) -> dict[str, list[Hit]]:
    grouped: dict[str, list[Hit]] = {}
    for hit in hits:
        grouped.setdefault(hit.dimension, []).append(hit)
    return grouped


# --- from hits to signals ------------------------------------------------------------------


def dimension_fields(dimension: str, hits: list[Hit]) -> dict[str, object]:
    """The model fields of one dimension: flag, best confidence, quotes, first values found."""
    if not hits:
        return {}
    ranked = sorted(hits, key=lambda hit: -hit.confidence)  # stable: ties keep turn order
    fields: dict[str, object] = {
        f"{dimension}_identified": True,
        f"{dimension}_confidence": ranked[0].confidence,
        f"{dimension}_evidence": list(dict.fromkeys(hit.quote for hit in hits)),
    }
    for hit in ranked:
        for name, value in hit.values.items():
            fields.setdefault(name, value)
    return fields


def build_signals(grouped: dict[str, list[Hit]]) -> tuple[BANTSignals, MEDDICSignals]:
    bant: dict[str, object] = {}
    for dimension in BANT:
        bant.update(dimension_fields(dimension, grouped.get(dimension, [])))
    meddic: dict[str, object] = {}
    for dimension in MEDDIC:
        meddic.update(dimension_fields(dimension, grouped.get(dimension, [])))
    criteria = [hit.values["decision_criteria"] for hit in grouped.get("decision_criteria", [])]
    meddic["decision_criteria"] = list(dict.fromkeys(criteria))
    meddic.pop("decision_criteria_identified", None)  # the list is the flag (CONTRACT.md 2)
    return BANTSignals.model_validate(bant), MEDDICSignals.model_validate(meddic)


def known_dimensions(state: QualificationState, found: Iterable[str]) -> set[str]:
    """Dimensions identified in the stored state or in this batch."""
    known = {d for d in BANT if getattr(state.bant, f"{d}_identified")}
    flagged = (d for d in MEDDIC if d != "decision_criteria")
    known |= {d for d in flagged if getattr(state.meddic, f"{d}_identified")}
    if state.meddic.decision_criteria:
        known.add("decision_criteria")
    return known | set(found)


def propose_stage(current: DealStage, known: set[str]) -> tuple[DealStage, str] | None:
    step = NEXT_STAGE.get(current)
    if step is None:
        return None
    target, requirements, what = step
    met = all(any(option in known for option in need.split("|")) for need in requirements)
    return (target, f"The prospect has shown {what}.") if met else None


def insights(grouped: dict[str, list[Hit]]) -> list[str]:
    notes = [f"{LABELS[name]}: {_first_value(hits)}" for name, hits in grouped.items()]
    return notes[:3]


def _first_value(hits: list[Hit]) -> str:
    values = [value for hit in hits for value in hit.values.values()]
    return (values[0] if values else hits[0].quote)[:100]


def next_questions(known: set[str]) -> list[str]:
    return [question for dimension, question in QUESTIONS.items() if dimension not in known][:3]


def overall_confidence(state: QualificationState, grouped: dict[str, list[Hit]]) -> float:
    """The mean over the ten dimensions of the best confidence known for each."""
    best = [
        max([_stored_confidence(state, d), *(hit.confidence for hit in grouped.get(d, []))])
        for d in (*BANT, *MEDDIC)
    ]
    return round(sum(best) / len(best), 2)


def _stored_confidence(state: QualificationState, dimension: str) -> float:
    signals = state.bant if dimension in BANT else state.meddic
    confidence: float = getattr(signals, f"{dimension}_confidence")
    return confidence


def extract(
    turns: Sequence[TurnText], existing_state: QualificationState, current_stage: DealStage
) -> QualificationExtraction:
    """The whole rule-based extraction, as a pure function."""
    grouped = group_hits(find_hits(turns))
    bant, meddic = build_signals(grouped)
    known = known_dimensions(existing_state, grouped)
    proposal = propose_stage(current_stage, known) if grouped else None
    return QualificationExtraction(
        bant=bant,
        meddic=meddic,
        overall_confidence=overall_confidence(existing_state, grouped),
        key_insights=insights(grouped),
        recommended_next_questions=next_questions(known),
        suggested_stage=proposal[0] if proposal else None,
        stage_reason=proposal[1] if proposal else None,
    )


@dataclass(kw_only=True)
class RulesExtractor:
    """The `Extractor` over `extract`: deterministic, offline, free."""

    model_name: str = RULES_MODEL
    prompt_version: str = RULES_VERSION

    async def extract_signals(
        self,
        turns: Sequence[TurnText],
        existing_state: QualificationState,
        current_stage: DealStage,
        *,
        next_stage: NextStage | None = None,
    ) -> ExtractionResult:
        return ExtractionResult(
            status="ok",
            extraction=extract(turns, existing_state, current_stage),
            model=self.model_name,
            prompt_version=self.prompt_version,
            cost_usd=0.0,
        )

    def plan_chunks(
        self,
        turns: Sequence[TurnText],
        existing_state: QualificationState,
        current_stage: DealStage,
        *,
        next_stage: NextStage | None = None,
        shrink: int = 1,
    ) -> list[list[TurnText]]:
        """No prompt, no budget: all turns in one extraction."""
        return [list(turns)] if turns else []
