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

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from schemas import (
    BANTSignals,
    DealStage,
    MEDDICSignals,
    QualificationExtraction,
    QualificationState,
    Speaker,
)
from worker.extractor import ExtractionResult, TurnText
from worker.settings import RULES_MODEL

RULES_VERSION = "rules-v1"
MAX_DESCRIPTION_CHARS = 200
MAX_SENTENCE_CHARS = 300

_I = re.IGNORECASE
# A sentence ends at . ! ? followed by space and a capital, digit or quote, or at a line break.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'$€£])|\n+")
_CLAUSE_BREAK = re.compile(r"(?<=[,;:])\s+")
_MONEY = re.compile(
    r"[$€£]\s?\d[\d,]*(?:\.\d+)?(?:\s?(?:k|m|mm|bn|million|thousand|billion)\b)?"
    r"|\b\d[\d,]*(?:\.\d+)?\s?(?:k|m|million|thousand)?\s?(?:usd|eur|gbp|dollars|euros)\b",
    _I,
)
_BUDGET = re.compile(
    r"\b(budget\w*|allocat\w*|set aside|earmark\w*|afford|price range|funding|funded"
    r"|approved (?:for|up to)|we(?:'ve| have) (?:about|around|roughly|up to)?\s*[$€£])",
    _I,
)
_SPEND = re.compile(r"\b(spend|invest|pay)\b", _I)  # a budget only with an amount
_TITLE = (
    r"(?:CEO|CFO|CTO|COO|CIO|CISO|CRO|CMO|VP(?: of \w+)?|[Vv]ice [Pp]resident(?: of \w+)?"
    r"|[Hh]ead of \w+|[Dd]irector(?: of \w+)?|[Ff]ounder|[Cc]o-founder|[Oo]wner|[Pp]resident)"
)
_TITLE_RE = re.compile(rf"\b{_TITLE}\b")
_NAME = r"[A-Z][a-z]+(?: [A-Z][a-z]+)?"
_NAMED_TITLE = re.compile(
    rf"(?P<n1>{_NAME}),? (?:our|the|my) {_TITLE}|(?:our|the|my) {_TITLE},? (?P<n2>{_NAME})"
)
_DECIDES = re.compile(
    r"\b(decision[- ]maker|final (?:say|decision|call)|make the call|my call|up to me"
    r"|decides?|approves?|approved by|approval|report to)\b",
    _I,
)
_SIGNS_OFF = re.compile(
    r"\b(signs? off|signs? the (?:contract|check|cheque|PO)|final (?:approval|sign-off)"
    r"|approves? (?:the )?(?:budget|spend|purchase)|approved by|holds? the budget|budget owner"
    r"|controls? the budget)\b",
    _I,
)
_FIRST_PERSON = re.compile(r"\b(I|I'm|I am|my)\b")
_NEED = re.compile(
    r"\b(?:we|I) (?:really |also |urgently )?(?:need|want|must|have to|require)\b"
    r"|\b(?:we|I)(?:'re| are| am|'m) (?:looking (?:for|to)|trying to|in the market for)"
    r"|\b(?:we|I)(?:'d| would) like to|\bour (?:goal|priority|need) is\b",
    _I,
)
_QUARTER = re.compile(
    r"\b(?:Q[1-4](?:\s?(?:FY)?'?\d{2,4})?|(?:end of|by) (?:the )?(?:fiscal )?year"
    r"|year[- ]end|deadline|go[- ]live)\b",
    _I,
)
_MONTH = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November"
    r"|December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec)"
)
_DATE = re.compile(
    rf"\b(?:by|before|until) (?:early |mid |late |the end of )?{_MONTH}\b(?: \d{{4}})?"
)
_WHEN = re.compile(
    rf"\b(?:(?:in|early|mid|late) {_MONTH}\b(?: \d{{4}})?|(?:next|this) (?:month|quarter|year)"
    r"|within (?:the next )?\d+ (?:days|weeks|months)"
    r"|in (?:\d+|two|three|four|six) (?:weeks|months))"
)
_PURCHASE = re.compile(
    r"\b(go live|launch|roll ?out|implement\w*|deploy\w*|decid\w*|decision|sign|buy|purchas\w*"
    r"|start|in place|up and running|migrat\w*|switch|renewal|contract)\b",
    _I,
)
_PAIN = re.compile(
    r"\b(struggl\w*|frustrat\w*|painful|pain point|(?<!no )(?<!not a )problems?|headaches?"
    r"|bottlenecks?|too (?:slow|long|expensive|manual)|manual(?:ly)?|error[- ]prone|broken"
    r"|wast(?:e|es|ed|ing)|losing|churn\w*|costing us|can(?:'t|not) keep up|overwhelm\w*"
    r"|spreadsheets?|complain\w*|downtime|outages?)\b",
    _I,
)
_MEASURE = re.compile(r"\d+(?:\.\d+)?\s?(?:%|percent|hours?|hrs|days|minutes|x\b|times)", _I)
_METRIC_VERB = re.compile(
    r"\b(reduc\w*|cut|sav(?:e|ing)|increas\w*|improv\w*|grow\w*|los(?:e|ing)|costing|goal"
    r"|target|KPI|ROI|per (?:week|month|year)|a (?:week|month|year))\b",
    _I,
)
_CRITERIA_TERMS = re.compile(
    r"\b(SOC ?2(?: Type (?:II|2))?|ISO ?27001|GDPR|HIPAA|SSO|SAML|SCIM|audit logs?"
    r"|on[- ]prem(?:ise)?|data residency|SLA|integrat(?:e|es|ion) with [A-Z][\w.]+)\b"
)
_MUST = re.compile(
    r"\b(?:must|has to|needs to) (?:have|support|integrate with|work with) [^,.;!?]{2,60}", _I
)
_PROCESS = re.compile(
    r"\b(procurement|legal review|security review|security questionnaire"
    r"|vendor (?:review|assessment)|RFP|RFI|proof of concept|POC|pilot|trial|shortlist\w*"
    r"|committee|board (?:approval|meeting)"
    r"|approval process|buying process|evaluation process|other vendors|compare vendors)\b",
    _I,
)
_CHAMPION = re.compile(
    r"\bI(?:'ll| will) (?:push for|champion|advocate|make the case|bring (?:this|it) to"
    r"|present (?:this|it) to|set up (?:a )?(?:meeting|call) with|introduce you|loop in)"
    r"|\bI(?:'m| am) (?:a big fan|sold|convinced|on board)",
    _I,
)

_BANT = ("budget", "authority", "need", "timeline")
_MEDDIC = (
    "metrics",
    "economic_buyer",
    "decision_criteria",
    "decision_process",
    "identify_pain",
    "champion",
)
_LABELS = {
    "budget": "Budget",
    "authority": "Authority",
    "need": "Need",
    "timeline": "Timeline",
    "metrics": "Metrics",
    "economic_buyer": "Economic buyer",
    "identify_pain": "Pain",
    "decision_criteria": "Decision criteria",
    "decision_process": "Decision process",
    "champion": "Champion",
}
_QUESTIONS = {
    "need": "What problem are you hoping to solve, and why now?",
    "budget": "Is there a budget set aside for this, and roughly what range?",
    "authority": "Who besides you is involved in making this decision?",
    "timeline": "When do you need a solution in place?",
    "identify_pain": "What does the current process cost you today?",
    "decision_process": "What steps does a purchase like this go through on your side?",
    "decision_criteria": "What will you compare vendors on?",
    "metrics": "How will you measure success?",
    "economic_buyer": "Who signs off on the budget?",
    "champion": "Who else on your team would benefit most from this?",
}
# Forward only, one step, and only on the evidence each stage needs (CONTRACT.md section 4).
_NEXT_STAGE: dict[DealStage, tuple[DealStage, tuple[str, ...], str]] = {
    DealStage.PROSPECTING: (DealStage.DISCOVERY, ("need|identify_pain",), "a need or pain"),
    DealStage.DISCOVERY: (
        DealStage.QUALIFICATION,
        ("budget", "authority", "need"),
        "budget, authority and need",
    ),
    DealStage.QUALIFICATION: (
        DealStage.EVALUATION,
        ("decision_criteria|decision_process",),
        "decision criteria or a decision process",
    ),
}


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
    amounts = [m.group(0).strip() for m in _MONEY.finditer(sentence)]
    values = {"budget_range": "-".join(amounts[:2])} if amounts else {}
    yield Hit(dimension="budget", quote=sentence, confidence=0.8 if amounts else 0.5, values=values)


def is_budget(sentence: str) -> bool:
    spends = _SPEND.search(sentence) and _MONEY.search(sentence)
    return bool(_BUDGET.search(sentence) or spends)


def detect_authority(sentence: str) -> Iterable[Hit]:
    decides, signs = _DECIDES.search(sentence), _SIGNS_OFF.search(sentence)
    title = _TITLE_RE.search(sentence)
    if not (decides or signs or (title and _FIRST_PERSON.search(sentence))):
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
    if title := _TITLE_RE.search(sentence):
        values[role_field] = title.group(0)
    if named := _NAMED_TITLE.search(sentence):
        values[contact_field] = named.group("n1") or named.group("n2")
    return values


def detect_need(sentence: str) -> Iterable[Hit]:
    if _NEED.search(sentence):
        yield _described("need", sentence, 0.6, "need_description")


def detect_timeline(sentence: str) -> Iterable[Hit]:
    explicit = [m.group(0) for m in (*_QUARTER.finditer(sentence), *_DATE.finditer(sentence))]
    relative = [m.group(0) for m in _WHEN.finditer(sentence)] if _PURCHASE.search(sentence) else []
    if found := explicit + relative:
        values = {"timeline_description": ", ".join(dict.fromkeys(found))}
        yield Hit(
            dimension="timeline", quote=sentence, confidence=0.7 if explicit else 0.5, values=values
        )


def detect_pain(sentence: str) -> Iterable[Hit]:
    if _PAIN.search(sentence):
        yield _described("identify_pain", sentence, 0.6, "pain_description")


def detect_metrics(sentence: str) -> Iterable[Hit]:
    measured = _MEASURE.search(sentence) or _MONEY.search(sentence)
    if measured and _METRIC_VERB.search(sentence) and not is_budget(sentence):
        yield _described("metrics", sentence, 0.6, "metrics_description")


def detect_decision_criteria(sentence: str) -> Iterable[Hit]:
    terms = [m.group(0) for m in _CRITERIA_TERMS.finditer(sentence)]
    # A "must ..." clause is an item of its own only when it names no known term.
    clauses = [
        m.group(0) for m in _MUST.finditer(sentence) if not _CRITERIA_TERMS.search(m.group(0))
    ]
    for item in dict.fromkeys(terms + clauses):
        yield Hit(
            dimension="decision_criteria",
            quote=sentence,
            confidence=0.6,
            values={"decision_criteria": item},
        )


def detect_decision_process(sentence: str) -> Iterable[Hit]:
    if _PROCESS.search(sentence):
        yield _described("decision_process", sentence, 0.6, "decision_process_description")


def detect_champion(sentence: str) -> Iterable[Hit]:
    if _CHAMPION.search(sentence):
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
    pieces = [piece.strip() for piece in _SENTENCE_BREAK.split(text) if piece.strip()]
    return [clause for piece in pieces for clause in _clauses(piece)]


def _clauses(sentence: str) -> list[str]:
    # A run-on sentence makes poor evidence; its clauses are shorter and still verbatim.
    if len(sentence) <= MAX_SENTENCE_CHARS:
        return [sentence]
    return [clause.strip() for clause in _CLAUSE_BREAK.split(sentence) if clause.strip()]


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
    for dimension in _BANT:
        bant.update(dimension_fields(dimension, grouped.get(dimension, [])))
    meddic: dict[str, object] = {}
    for dimension in _MEDDIC:
        meddic.update(dimension_fields(dimension, grouped.get(dimension, [])))
    criteria = [hit.values["decision_criteria"] for hit in grouped.get("decision_criteria", [])]
    meddic["decision_criteria"] = list(dict.fromkeys(criteria))
    meddic.pop("decision_criteria_identified", None)  # the list is the flag (CONTRACT.md 2)
    return BANTSignals.model_validate(bant), MEDDICSignals.model_validate(meddic)


def known_dimensions(state: QualificationState, found: Iterable[str]) -> set[str]:
    """Dimensions identified in the stored state or in this batch."""
    known = {d for d in _BANT if getattr(state.bant, f"{d}_identified")}
    flagged = (d for d in _MEDDIC if d != "decision_criteria")
    known |= {d for d in flagged if getattr(state.meddic, f"{d}_identified")}
    if state.meddic.decision_criteria:
        known.add("decision_criteria")
    return known | set(found)


def propose_stage(current: DealStage, known: set[str]) -> tuple[DealStage, str] | None:
    step = _NEXT_STAGE.get(current)
    if step is None:
        return None
    target, requirements, what = step
    met = all(any(option in known for option in need.split("|")) for need in requirements)
    return (target, f"The prospect has shown {what}.") if met else None


def insights(grouped: dict[str, list[Hit]]) -> list[str]:
    notes = [f"{_LABELS[name]}: {_first_value(hits)}" for name, hits in grouped.items()]
    return notes[:3]


def _first_value(hits: list[Hit]) -> str:
    values = [value for hit in hits for value in hit.values.values()]
    return (values[0] if values else hits[0].quote)[:100]


def next_questions(known: set[str]) -> list[str]:
    return [question for dimension, question in _QUESTIONS.items() if dimension not in known][:3]


def overall_confidence(state: QualificationState, grouped: dict[str, list[Hit]]) -> float:
    """The mean over the ten dimensions of the best confidence known for each."""
    best = [
        max([_stored_confidence(state, d), *(hit.confidence for hit in grouped.get(d, []))])
        for d in (*_BANT, *_MEDDIC)
    ]
    return round(sum(best) / len(best), 2)


def _stored_confidence(state: QualificationState, dimension: str) -> float:
    signals = state.bant if dimension in _BANT else state.meddic
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
    ) -> ExtractionResult:
        return ExtractionResult(
            status="ok",
            extraction=extract(turns, existing_state, current_stage),
            model=self.model_name,
            prompt_version=self.prompt_version,
            cost_usd=0.0,
        )
