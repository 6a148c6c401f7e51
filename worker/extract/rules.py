"""The offline rule-based extractor (`LLM_MODEL=rules`): keywords and patterns, no LLM.

It is much weaker than an LLM: it reads sentences, not meaning, so it misses paraphrase and
indirect speech and does not understand negation ("we have no budget" is still a budget
sentence). It is the embedded default for the demo and a deterministic baseline; `make eval`
measures it (docs/quality.md).

Evidence is always a whole sentence copied verbatim from a prospect turn. Only the prospect's
words count: a rep's restatement is not the prospect's word, and a rep's pitch ("our plan is $20k
a year") would otherwise read as the prospect's budget. The rep's turn is used two ways only,
both within one batch: a rep question sets the topic of the prospect's answer ("When do you need
it?" - "By the end of September."), and a rep's claim counts when the prospect's next turn
confirms it ("So $50k?" - "Yes, that's right."), quoting the prospect. Within one batch a later
statement wins over an earlier one as sure, as the merge does across batches. The stage
proposal is a stage walk: every step the batch supports, each one stage along and quoted with
the prospect's sentence that shows it; the stage machine judges each step. Importing this
module must stay cheap: no LiteLLM, no instructor.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from schemas import (
    CLOSED_STAGES,
    OPEN_STAGES,
    BANTSignals,
    DealStage,
    MEDDICSignals,
    NextStage,
    QualificationExtraction,
    QualificationState,
    Speaker,
    StageStep,
    is_identified,
    signals_of,
)
from schemas.dimensions import DIMENSIONS, DimensionSpec, Group, ValueKind
from worker.extract.port import ExtractionResult, TurnText
from worker.extract.rules_patterns import (
    ASKING_ORDER,
    BUDGET,
    BUDGET_SET,
    CHAMPION,
    CLAUSE_BREAK,
    COMPETITION_CUE,
    CONFIRMS,
    CRITERIA_CUE,
    CRITERIA_TERMS,
    DATE,
    DECIDES,
    DO_NOTHING,
    FIRST_PERSON_ROLE,
    FUTURE,
    IN_HOUSE,
    INSTRUCTION,
    LOSS,
    LOST,
    MEASURE,
    METRIC_CONTEXT,
    MONEY,
    MUST,
    NAMED_COMPETITOR,
    NAMED_TITLE,
    NEED,
    NEGOTIATING,
    NEXT_STAGE,
    NO_COMPETITION,
    NOT_A_NAME,
    PAIN,
    PAPER,
    PAST,
    PAUSED,
    PERSON,
    PROCESS,
    RESUMED,
    REVISION,
    SENTENCE_BREAK,
    SIGNER,
    SIGNS_OFF,
    SPEND,
    THRESHOLD,
    TITLE_RE,
    TOPIC_QUESTIONS,
    WON,
)
from worker.settings import RULES_MODEL

RULES_VERSION = "rules-v3"  # v3: paper process and competition
# How the competitors list names the two options that are not vendors (CONTRACT.md 2, v3).
IN_HOUSE_BUILD = "in-house build"
DO_NOTHING_OPTION = "do nothing"
MAX_DESCRIPTION_CHARS = 200
MAX_SENTENCE_CHARS = 300
MAX_CRITERION_CHARS = 120
SHORT_ANSWER_SENTENCES = 3
_FIRST_PERSON = re.compile(r"\b(I|I'm|I'll|I've|me|my|mine)\b")
_THIRD_PERSON = re.compile(r"\b(?:he|she|him|her)\b", re.IGNORECASE)
_STRONG_CRITERION = re.compile(
    r"[A-Z]{2,}|integrat|compatib|connect|sync|works? with|plugs?|talks?"
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Hit:
    """One sentence that shows one dimension, with the value fields it yields.

    `order` is where it was said (turn, sentence): at equal confidence the later one wins."""

    dimension: str
    quote: str
    confidence: float
    values: dict[str, str] = field(default_factory=dict)
    order: tuple[int, int] = (0, 0)


@dataclass(frozen=True, kw_only=True, slots=True)
class Context:
    """What surrounds a sentence: the topics the rep just asked about, and the turn's text
    before the sentence (where "she" in "she'll back it" finds its name)."""

    topics: frozenset[str] = frozenset()
    before: str = ""


NO_CONTEXT = Context()
Detector = Callable[[str, Context], Iterable[Hit]]


# --- detectors: one per dimension, each reading one sentence ------------------------------


def detect_budget(sentence: str, context: Context = NO_CONTEXT) -> Iterable[Hit]:
    amounts = budget_amounts(sentence)
    cue = BUDGET.search(sentence) and (amounts or BUDGET_SET.search(sentence))
    if not cue:
        asked = "budget" in context.topics or SPEND.search(sentence)
        if not amounts or not asked or LOSS.search(sentence):
            return
    values = {"budget_range": budget_range(sentence, amounts)} if amounts else {}
    yield Hit(dimension="budget", quote=sentence, confidence=0.8 if amounts else 0.5, values=values)


def is_budget(sentence: str) -> bool:
    return any(True for _ in detect_budget(sentence))


def budget_amounts(sentence: str) -> list[re.Match[str]]:
    """Amounts of money, leaving out thresholds ("anything over $100k" is no budget)."""
    return [
        m
        for m in MONEY.finditer(sentence)
        if not THRESHOLD.search(sentence[max(0, m.start() - 16) : m.start()])
    ]


def budget_range(sentence: str, amounts: list[re.Match[str]]) -> str:
    """ "$40k-$60k" for a range; the last amount of a revision ("raised from $50k to $80k")."""
    texts = [m.group(0).strip() for m in amounts]
    if len(amounts) >= 2:
        between = sentence[amounts[0].end() : amounts[1].start()].strip().lower()
        if between in {"-", "\u2013", "to", "and", "or"} and not REVISION.search(sentence):
            return f"{texts[0]}-{texts[1]}"
        if REVISION.search(sentence):
            return texts[-1]
    return texts[0]


def detect_authority(sentence: str, context: Context = NO_CONTEXT) -> Iterable[Hit]:
    decides = DECIDES.search(sentence)
    signs = SIGNS_OFF.search(sentence) or SIGNER.search(sentence)
    own_role = FIRST_PERSON_ROLE.search(sentence)
    person = (
        TITLE_RE.search(sentence)
        or names(sentence)
        or _FIRST_PERSON.search(sentence)
        or (signs and _THIRD_PERSON.search(sentence))
    )
    asked = "authority" in context.topics and (TITLE_RE.search(sentence) or names(sentence))
    if not ((decides or signs) and person) and not own_role and not asked:
        return
    values = _person_values(sentence, "authority_contact", "authority_role")
    yield Hit(
        dimension="authority",
        quote=sentence,
        confidence=0.7 if decides or signs else 0.5,
        values=values,
    )
    if signs:
        # "He signs every contract": the signer is the last one named before, in the same turn.
        earlier = names(context.before)
        contact = (
            values.get("authority_contact")
            or _first_name(sentence)
            or values.get("authority_role")
            or (earlier[-1] if earlier and _THIRD_PERSON.search(sentence) else None)
        )
        found = {"economic_buyer_contact": contact} if contact else {}
        yield Hit(dimension="economic_buyer", quote=sentence, confidence=0.7, values=found)


def _person_values(sentence: str, contact_field: str, role_field: str) -> dict[str, str]:
    values: dict[str, str] = {}
    if title := TITLE_RE.search(sentence):
        values[role_field] = title.group(0)
    if named := NAMED_TITLE.search(sentence):
        values[contact_field] = named.group("n1") or named.group("n2")
    elif name := _first_name(sentence):
        values[contact_field] = name
    return values


def names(text: str) -> list[str]:
    """Capitalised words that look like people's names (not sentence openers or titles)."""
    found = []
    for match in PERSON.finditer(text):
        first = match.group("name").split()[0].split("-")[0]
        if first not in NOT_A_NAME and not TITLE_RE.fullmatch(match.group("name")):
            found.append(match.group("name"))
    return found


def _first_name(text: str) -> str | None:
    found = names(text)
    return found[0] if found else None


def detect_need(sentence: str, context: Context = NO_CONTEXT) -> Iterable[Hit]:
    if NEED.search(sentence) or "need" in context.topics:
        yield _described("need", sentence, 0.6, "need_description")
    elif PAIN.search(sentence):
        # A problem that hurts now is a need to fix it, said less plainly than "we need".
        yield _described("need", sentence, 0.5, "need_description")


def detect_timeline(sentence: str, context: Context = NO_CONTEXT) -> Iterable[Hit]:
    found = [m.group(0) for m in DATE.finditer(sentence)]
    if not found:
        return
    if PAST.search(sentence) and not FUTURE.search(sentence) and "timeline" not in context.topics:
        return  # "we paid $40k in Q3 alone" tells when something happened, not a plan
    values = {"timeline_description": ", ".join(dict.fromkeys(found))}
    yield Hit(dimension="timeline", quote=sentence, confidence=0.7, values=values)


def detect_pain(sentence: str, context: Context = NO_CONTEXT) -> Iterable[Hit]:
    if PAIN.search(sentence):
        yield _described("identify_pain", sentence, 0.6, "pain_description")


def detect_metrics(sentence: str, context: Context = NO_CONTEXT) -> Iterable[Hit]:
    undated = DATE.sub(" ", sentence)  # "in 3 weeks" is a date, not a measure
    measured = MEASURE.search(undated)
    counted = measured and (METRIC_CONTEXT.search(undated) or "metrics" in context.topics)
    priced_loss = MONEY.search(undated) and LOSS.search(undated)
    if (counted or priced_loss) and not BUDGET.search(sentence):
        yield _described("metrics", sentence, 0.6, "metrics_description")


def detect_decision_criteria(sentence: str, context: Context = NO_CONTEXT) -> Iterable[Hit]:
    terms = [m.group(0) for m in CRITERIA_TERMS.finditer(sentence)]
    # A "must ..." clause is an item of its own only when it names no known term, and no date:
    # "we need to have something live by Q3" is a timeline.
    clauses = [
        m.group(0)
        for m in MUST.finditer(sentence)
        if not CRITERIA_TERMS.search(m.group(0)) and not DATE.search(m.group(0))
    ]
    cued = CRITERIA_CUE.search(sentence) or "decision_criteria" in context.topics
    if not cued:
        terms = [term for term in terms if _STRONG_CRITERION.search(term)]
        clauses = []
    items = terms + clauses
    if not items and "decision_criteria" in context.topics:
        items = [sentence[:MAX_CRITERION_CHARS]]
    for item in dict.fromkeys(items):
        yield Hit(
            dimension="decision_criteria",
            quote=sentence,
            confidence=0.6,
            values={"decision_criteria": item},
        )


def detect_decision_process(sentence: str, context: Context = NO_CONTEXT) -> Iterable[Hit]:
    if PROCESS.search(sentence) or (
        "decision_process" in context.topics and len(sentence.split()) > 3
    ):
        yield _described("decision_process", sentence, 0.6, "decision_process_description")


def detect_champion(sentence: str, context: Context = NO_CONTEXT) -> Iterable[Hit]:
    if not CHAMPION.search(sentence):
        return
    # "She'll back it" names nobody: the person is the last one named before, in the same turn.
    earlier = names(context.before)
    contact = _first_name(sentence) or (earlier[-1] if earlier else None)
    values = {"champion_contact": contact} if contact else {}
    yield Hit(dimension="champion", quote=sentence, confidence=0.6, values=values)


def detect_paper_process(sentence: str, context: Context = NO_CONTEXT) -> Iterable[Hit]:
    asked = "paper_process" in context.topics and len(sentence.split()) > 3
    if PAPER.search(sentence) or asked:
        yield _described("paper_process", sentence, 0.6, "paper_process_description")


def detect_competition(sentence: str, context: Context = NO_CONTEXT) -> Iterable[Hit]:
    """Named vendors, an in-house build, doing nothing; never "we only talk to you"."""
    if NO_COMPETITION.search(sentence):
        return
    found = competitors(sentence)
    if IN_HOUSE.search(sentence):
        found.append(IN_HOUSE_BUILD)
    if DO_NOTHING.search(sentence):
        found.append(DO_NOTHING_OPTION)
    if not found:
        if COMPETITION_CUE.search(sentence) or (
            "competition" in context.topics and len(sentence.split()) > 3
        ):
            yield Hit(dimension="competition", quote=sentence, confidence=0.5)
        return
    for name in dict.fromkeys(found):
        yield Hit(
            dimension="competition", quote=sentence, confidence=0.7, values={"competitors": name}
        )


def competitors(sentence: str) -> list[str]:
    """The vendors named after "also talking to", "comparing you with", "up against", ..."""
    found: list[str] = []
    for match in NAMED_COMPETITOR.finditer(sentence):
        for named in re.split(r",? and |,? or |, ", match.group("names")):
            name = named.rstrip(".'")
            # Not a sentence opener, a title or a requirement ("evaluating SSO support").
            if name.split()[0] in NOT_A_NAME or TITLE_RE.fullmatch(name):
                continue
            if not CRITERIA_TERMS.match(name):
                found.append(name)
    return found


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
    detect_paper_process,
    detect_competition,
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


def topics_of(rep_text: str) -> frozenset[str]:
    """What a rep's turn asks about: only its questions count."""
    questions = [s for s in sentences(rep_text) if s.rstrip().endswith("?")]
    return frozenset(
        topic
        for topic, pattern in TOPIC_QUESTIONS.items()
        if any(pattern.search(question) for question in questions)
    )


def find_hits(turns: Sequence[TurnText]) -> list[Hit]:
    hits: list[Hit] = []
    previous: TurnText | None = None
    for index, turn in enumerate(turns):
        if turn.speaker is Speaker.PROSPECT:
            rep = previous if previous is not None and previous.speaker is Speaker.REP else None
            hits += prospect_hits(index, turn.text, rep.text if rep else None)
        previous = turn
    return hits


def prospect_hits(index: int, text: str, rep_text: str | None) -> list[Hit]:
    parts = sentences(text)
    topics = topics_of(rep_text) if rep_text else frozenset()
    found: list[Hit] = []
    offset = 0
    for number, sentence in enumerate(parts):
        offset = text.find(sentence, offset)
        # The rep's question frames a short answer; in a long turn only its first sentence.
        framed = topics if number == 0 or len(parts) <= SHORT_ANSWER_SENTENCES else frozenset()
        context = Context(topics=framed, before=text[:offset])
        if not states_facts(sentence):
            continue
        found += [
            _at(hit, (index, number)) for detect in DETECTORS for hit in detect(sentence, context)
        ]
    if rep_text and CONFIRMS.search(text):
        found += confirmed_claims(index, text, rep_text)
    return found


def states_facts(sentence: str) -> bool:
    """Questions ask rather than tell, and instructions to a model tell nothing of the deal."""
    return not sentence.rstrip().endswith("?") and not INSTRUCTION.search(sentence)


def confirmed_claims(index: int, text: str, rep_text: str) -> list[Hit]:
    """A rep's claim the prospect confirms: its values, quoted with the prospect's "yes"."""
    confirmation = sentences(text)[0]
    claims = [
        hit
        for sentence in sentences(rep_text)
        for detect in DETECTORS
        for hit in detect(sentence, NO_CONTEXT)
        if hit.values
    ]
    return [
        Hit(
            dimension=claim.dimension,
            quote=confirmation,
            confidence=claim.confidence,
            values=claim.values,
            order=(index, -1),
        )
        for claim in claims
    ]


def _at(hit: Hit, order: tuple[int, int]) -> Hit:
    return Hit(
        dimension=hit.dimension,
        quote=hit.quote,
        confidence=hit.confidence,
        values=hit.values,
        order=order,
    )


def group_hits(hits: Iterable[Hit]) -> dict[str, list[Hit]]:
    grouped: dict[str, list[Hit]] = {}
    for hit in hits:
        grouped.setdefault(hit.dimension, []).append(hit)
    return grouped


def deal_outcome(turns: Sequence[TurnText]) -> tuple[DealStage, str] | None:
    """closed_lost or closed_won, with the prospect's sentence that says so, when the
    prospect's latest words say the deal is over."""
    for sentence in reversed(prospect_sentences(turns)):
        if LOST.search(sentence):
            return DealStage.CLOSED_LOST, sentence
        if WON.search(sentence):
            return DealStage.CLOSED_WON, sentence
    return None


def pause(turns: Sequence[TurnText]) -> str | None:
    """The prospect's latest words putting the deal on hold, unless they picked it up again
    since ("it's back on")."""
    for sentence in reversed(prospect_sentences(turns)):
        if RESUMED.search(sentence):
            return None
        if PAUSED.search(sentence):
            return sentence
    return None


def prospect_sentences(turns: Sequence[TurnText]) -> list[str]:
    return [s for t in turns if t.speaker is Speaker.PROSPECT for s in sentences(t.text)]


def haggling(turns: Sequence[TurnText]) -> str | None:
    """The prospect's first sentence about terms (redlines, discounts, the order form)."""
    return next((s for s in prospect_sentences(turns) if NEGOTIATING.search(s)), None)


# --- from hits to signals ------------------------------------------------------------------


def dimension_fields(dimension: DimensionSpec, hits: list[Hit]) -> dict[str, object]:
    """The model fields of one dimension: flag, best confidence, quotes, the values of the
    surest (then latest) statement; a list field gathers every hit's item."""
    if not hits:
        return {}
    # Surest first; among equally sure statements the latest, as the merge rule has it.
    ranked = sorted(hits, key=lambda hit: (-hit.confidence, _reversed(hit.order)))
    fields: dict[str, object] = {
        dimension.confidence_field: ranked[0].confidence,
        dimension.evidence_field: list(dict.fromkeys(hit.quote for hit in hits)),
    }
    if dimension.identified_field is not None:  # else its list is its flag (CONTRACT.md 2)
        fields[dimension.identified_field] = True
    lists = dimension.of_kind(ValueKind.LIST)
    for name in lists:
        fields[name] = list(dict.fromkeys(hit.values[name] for hit in hits if name in hit.values))
    for hit in ranked:
        for name, value in hit.values.items():
            if name not in lists:
                fields.setdefault(name, value)
    return fields


def _reversed(order: tuple[int, int]) -> tuple[int, int]:
    return (-order[0], -order[1])


def build_signals(grouped: dict[str, list[Hit]]) -> tuple[BANTSignals, MEDDICSignals]:
    groups: dict[Group, dict[str, object]] = {group: {} for group in Group}
    for dimension in DIMENSIONS:
        found = dimension_fields(dimension, grouped.get(dimension.name, []))
        groups[dimension.group].update(found)
    return (
        BANTSignals.model_validate(groups[Group.BANT]),
        MEDDICSignals.model_validate(groups[Group.MEDDIC]),
    )


def known_dimensions(state: QualificationState, found: Iterable[str]) -> set[str]:
    """Dimensions identified in the stored state or in this batch."""
    return {d for d in DIMENSIONS.names if is_identified(state, d)} | set(found)


def forward_step(
    current: DealStage,
    known: set[str],
    seen: Sequence[Hit],
    terms: str | None,
    next_stage: NextStage | None = None,
) -> StageStep | None:
    """One step forward when the known dimensions meet the next stage's requirements (the gap
    report's `missing`, else the default table), or into negotiation when terms are discussed;
    from `stalled`, back to where the gap report says it stalled. Quoted with the latest
    sentence of this batch that shows a required dimension (else its latest finding). The
    stage machine judges it again."""
    if current is DealStage.STALLED:
        if next_stage is None:
            return None  # where it stalled from is unknown here: the gap report says
        return _step(next_stage.stage, "The prospect picked the conversation up again.", seen)
    step = NEXT_STAGE.get(current)
    if step is None:
        return None
    target, requirements, what = step
    met = all(any(option in known for option in need.split("|")) for need in requirements)
    if next_stage is not None and next_stage.stage is target:
        met = met or (
            target is not DealStage.DISCOVERY and {d.value for d in next_stage.missing} <= known
        )
    if met:
        options = {option for need in requirements for option in need.split("|")}
        shown = [hit for hit in seen if hit.dimension in options] or list(seen)
        return _step(target, f"The prospect has shown {what}.", shown)
    if target is DealStage.NEGOTIATION and terms is not None:
        return _said(target, "Terms are being discussed.", terms)
    return None


def _step(stage: DealStage, reason: str, shown: Sequence[Hit]) -> StageStep:
    """Quoted with the latest of `shown` (every rules quote is a prospect's sentence)."""
    return _said(stage, reason, max(shown, key=lambda hit: hit.order).quote)


def closing_step(current: DealStage, turns: Sequence[TurnText]) -> StageStep | None:
    """Where the prospect's latest words leave the deal: lost (from any open stage, `stalled`
    included), won (only from negotiation), or on hold (from an open stage)."""
    outcome = deal_outcome(turns)
    if outcome is not None:
        stage, said = outcome
        if stage is DealStage.CLOSED_LOST and current not in CLOSED_STAGES:
            return _said(stage, "The prospect said the deal will not go ahead.", said)
        if stage is DealStage.CLOSED_WON and current is DealStage.NEGOTIATION:
            return _said(stage, "The prospect said they are signing.", said)
    on_hold = pause(turns)
    if on_hold is not None and current in OPEN_STAGES:
        return _said(DealStage.STALLED, "The prospect put the deal on hold.", on_hold)
    return None


def _said(stage: DealStage, reason: str, sentence: str) -> StageStep:
    return StageStep(stage=stage, reason=reason, quote=sentence, speaker=Speaker.PROSPECT)


def stage_walk(
    turns: Sequence[TurnText],
    existing_state: QualificationState,
    current_stage: DealStage,
    next_stage: NextStage | None = None,
) -> list[StageStep]:
    """Every stage step the turns support, in order, for one extraction: exchange by exchange
    (a rep's question with its answer), at most one step each, when something was found since
    the last step and the dimensions known by then allow it; then the step the prospect's
    latest words take (lost, won, on hold). Each step is quoted with a prospect's sentence; a
    deal on hold at the end takes no step forward. (The same steps one extraction per exchange
    would take, in one extraction.)"""
    steps: list[StageStep] = []
    known = known_dimensions(existing_state, ())
    hits = find_hits(turns)
    stage, gaps = current_stage, next_stage
    on_hold = pause(turns) is not None
    said = stepped = 0  # turns up to the end of the exchange, and up to the last step
    for exchange in exchanges(turns):
        said += len(exchange)
        seen = [hit for hit in hits if hit.order[0] < said]
        known |= {hit.dimension for hit in seen}
        if on_hold or not any(hit.order[0] >= stepped for hit in seen):
            continue  # a step needs something found since the last one
        step = forward_step(stage, known, seen, haggling(exchange), gaps)
        if step is not None:
            steps.append(step)
            stage, gaps, stepped = step.stage, None, said
    if (last := closing_step(stage, turns)) is not None:
        steps.append(last)
    return steps


def insights(grouped: dict[str, list[Hit]]) -> list[str]:
    notes = [
        f"{DIMENSIONS.spec(name).label}: {_first_value(hits)}" for name, hits in grouped.items()
    ]
    return notes[:3]


def _first_value(hits: list[Hit]) -> str:
    values = [value for hit in hits for value in hit.values.values()]
    return (values[0] if values else hits[0].quote)[:100]


def next_questions(known: set[str], next_stage: NextStage | None = None) -> list[str]:
    """What the next stage still lacks first (the gap report), then what else is unknown."""
    wanted = [d.value for d in next_stage.missing] if next_stage else []
    order = dict.fromkeys([*wanted, *ASKING_ORDER, *DIMENSIONS.names])
    return [DIMENSIONS.spec(d).question for d in order if d not in known][:3]


def overall_confidence(state: QualificationState, grouped: dict[str, list[Hit]]) -> float:
    """The mean over the dimensions of the best confidence known for each."""
    best = [
        max([_stored_confidence(state, d), *(hit.confidence for hit in grouped.get(d, []))])
        for d in DIMENSIONS.names
    ]
    return round(sum(best) / len(best), 2)


def _stored_confidence(state: QualificationState, dimension: str) -> float:
    return state.spec(dimension).confidence(signals_of(state, dimension))


def extract(
    turns: Sequence[TurnText],
    existing_state: QualificationState,
    current_stage: DealStage,
    *,
    next_stage: NextStage | None = None,
) -> QualificationExtraction:
    """The whole rule-based extraction, as a pure function."""
    grouped = group_hits(find_hits(turns))
    bant, meddic = build_signals(grouped)
    known = known_dimensions(existing_state, grouped)
    walk = stage_walk(turns, existing_state, current_stage, next_stage)
    return QualificationExtraction(
        bant=bant,
        meddic=meddic,
        overall_confidence=overall_confidence(existing_state, grouped),
        key_insights=insights(grouped),
        recommended_next_questions=next_questions(known, next_stage),
        stage_walk=walk,
        # The walk is the proposal; its end is the older single-stage view of it.
        suggested_stage=walk[-1].stage if walk else None,
        stage_reason=walk[-1].reason if walk else None,
    )


def exchanges(turns: Sequence[TurnText]) -> list[list[TurnText]]:
    """The turns cut where the rep speaks after the prospect: a question with its answer."""
    cut: list[list[TurnText]] = []
    for turn in turns:
        opens = not cut or (turn.speaker is Speaker.REP and cut[-1][-1].speaker is not Speaker.REP)
        if opens:
            cut.append([])
        cut[-1].append(turn)
    return cut


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
            extraction=extract(turns, existing_state, current_stage, next_stage=next_stage),
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
        """No prompt, no budget: one extraction for all the turns (its stage walk takes every
        step they support)."""
        return [list(turns)] if turns else []
