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
statement wins over an earlier one as sure, as the merge does across batches. Stage proposals
are one step at a time; the stage machine judges them. Importing this module must stay cheap: no
LiteLLM, no instructor.
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


def deal_outcome(turns: Sequence[TurnText]) -> DealStage | None:
    """closed_lost or closed_won when the prospect's latest words say the deal is over."""
    for sentence in reversed(prospect_sentences(turns)):
        if LOST.search(sentence):
            return DealStage.CLOSED_LOST
        if WON.search(sentence):
            return DealStage.CLOSED_WON
    return None


def paused(turns: Sequence[TurnText]) -> bool:
    """Whether the prospect's latest word on pausing puts the deal on hold (not "it's back on")."""
    for sentence in reversed(prospect_sentences(turns)):
        if RESUMED.search(sentence):
            return False
        if PAUSED.search(sentence):
            return True
    return False


def prospect_sentences(turns: Sequence[TurnText]) -> list[str]:
    return [s for t in turns if t.speaker is Speaker.PROSPECT for s in sentences(t.text)]


def negotiating(turns: Sequence[TurnText]) -> bool:
    return any(NEGOTIATING.search(turn.text) for turn in turns if turn.speaker is Speaker.PROSPECT)


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


@dataclass(frozen=True, kw_only=True)
class Signs:
    """What a batch says about the deal as a whole, beyond its dimensions."""

    outcome: DealStage | None = None
    haggling: bool = False
    paused: bool = False
    found_anything: bool = True


def propose_stage(
    current: DealStage,
    known: set[str],
    signs: Signs = Signs(),
    next_stage: NextStage | None = None,
) -> tuple[DealStage, str] | None:
    """The stage the deal plausibly moved to: one step when the merged state would meet the
    next stage's criteria (the gap report's `missing`, else the default table), closed when the
    prospect says so, stalled when they put it on hold. The stage machine judges it again."""
    if signs.outcome is DealStage.CLOSED_LOST and current not in CLOSED_STAGES:
        return DealStage.CLOSED_LOST, "The prospect said the deal will not go ahead."
    if signs.outcome is DealStage.CLOSED_WON and current is DealStage.NEGOTIATION:
        return DealStage.CLOSED_WON, "The prospect said they are signing."
    if signs.paused and current in OPEN_STAGES:
        return DealStage.STALLED, "The prospect put the deal on hold."
    if not signs.found_anything or signs.paused:
        return None
    if current is DealStage.STALLED:
        if next_stage is None:
            return None  # where it stalled from is unknown here: the gap report says
        return next_stage.stage, "The prospect picked the conversation up again."
    step = NEXT_STAGE.get(current)
    if step is None:
        return None
    target, requirements, what = step
    met = all(any(option in known for option in need.split("|")) for need in requirements)
    if next_stage is not None and next_stage.stage is target:
        met = met or (
            target is not DealStage.DISCOVERY and {d.value for d in next_stage.missing} <= known
        )
    if met or (target is DealStage.NEGOTIATION and signs.haggling):
        return target, f"The prospect has shown {what}." if met else "Terms are being discussed."
    return None


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
    proposal = propose_stage(current_stage, known, signs_of(turns, grouped), next_stage)
    return QualificationExtraction(
        bant=bant,
        meddic=meddic,
        overall_confidence=overall_confidence(existing_state, grouped),
        key_insights=insights(grouped),
        recommended_next_questions=next_questions(known, next_stage),
        suggested_stage=proposal[0] if proposal else None,
        stage_reason=proposal[1] if proposal else None,
    )


def signs_of(turns: Sequence[TurnText], grouped: dict[str, list[Hit]]) -> Signs:
    return Signs(
        outcome=deal_outcome(turns),
        haggling=negotiating(turns),
        paused=paused(turns),
        found_anything=bool(grouped),
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


def stage_steps(
    turns: Sequence[TurnText],
    existing_state: QualificationState,
    current_stage: DealStage,
    next_stage: NextStage | None,
) -> list[list[TurnText]]:
    """`turns` in as few chunks as let the deal take every step its content supports.

    One extraction moves a deal one stage at most, so a batch that shows a whole qualification
    would otherwise stop one step in. A chunk ends after the exchange that would make the next
    stage's proposal acceptable; the rest goes on in the next chunk, one step further."""
    chunks: list[list[TurnText]] = [[]]
    known = known_dimensions(existing_state, ())
    stage, gaps = current_stage, next_stage
    for exchange in exchanges(turns):
        chunks[-1] += exchange
        known |= set(group_hits(find_hits(exchange)))
        step = propose_stage(stage, known, Signs(found_anything=True), gaps)
        if step is not None and step[0] in OPEN_STAGES and step[0] is not DealStage.STALLED:
            chunks.append([])
            stage, gaps = step[0], None
    return [chunk for chunk in chunks if chunk]


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
        """No prompt, no budget: one extraction per stage step the turns support."""
        return stage_steps(turns, existing_state, current_stage, next_stage)
