"""The rule-based extractor's vocabulary: compiled patterns, word lists and dimension tables.

Data only: the logic that reads sentences with these lives in `worker.extract.rules`. Each
pattern is matched against one sentence of a prospect turn. Importing this module must stay cheap:
no LiteLLM, no instructor.
"""

from __future__ import annotations

import re

from schemas import DealStage

_I = re.IGNORECASE
# A sentence ends at . ! ? followed by space and a capital, digit or quote, or at a line break.
SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'$€£])|\n+")
CLAUSE_BREAK = re.compile(r"(?<=[,;:])\s+")
MONEY = re.compile(
    r"[$€£]\s?\d[\d,]*(?:\.\d+)?(?:\s?(?:k|m|mm|bn|million|thousand|billion)\b)?"
    r"|\b\d[\d,]*(?:\.\d+)?\s?(?:k|m|million|thousand)?\s?(?:usd|eur|gbp|dollars|euros)\b",
    _I,
)
BUDGET = re.compile(
    r"\b(budget\w*|allocat\w*|set aside|earmark\w*|afford|price range|funding|funded"
    r"|approved (?:for|up to)|we(?:'ve| have) (?:about|around|roughly|up to)?\s*[$€£])",
    _I,
)
SPEND = re.compile(r"\b(spend|invest|pay)\b", _I)  # a budget only with an amount
_TITLE = (
    r"(?:CEO|CFO|CTO|COO|CIO|CISO|CRO|CMO|VP(?: of \w+)?|[Vv]ice [Pp]resident(?: of \w+)?"
    r"|[Hh]ead of \w+|[Dd]irector(?: of \w+)?|[Ff]ounder|[Cc]o-founder|[Oo]wner|[Pp]resident)"
)
TITLE_RE = re.compile(rf"\b{_TITLE}\b")
_NAME = r"[A-Z][a-z]+(?: [A-Z][a-z]+)?"
NAMED_TITLE = re.compile(
    rf"(?P<n1>{_NAME}),? (?:our|the|my) {_TITLE}|(?:our|the|my) {_TITLE},? (?P<n2>{_NAME})"
)
DECIDES = re.compile(
    r"\b(decision[- ]maker|final (?:say|decision|call)|make the call|my call|up to me"
    r"|decides?|approves?|approved by|approval|report to)\b",
    _I,
)
SIGNS_OFF = re.compile(
    r"\b(signs? off|signs? the (?:contract|check|cheque|PO)|final (?:approval|sign-off)"
    r"|approves? (?:the )?(?:budget|spend|purchase)|approved by|holds? the budget|budget owner"
    r"|controls? the budget)\b",
    _I,
)
FIRST_PERSON = re.compile(r"\b(I|I'm|I am|my)\b")
NEED = re.compile(
    r"\b(?:we|I) (?:really |also |urgently )?(?:need|want|must|have to|require)\b"
    r"|\b(?:we|I)(?:'re| are| am|'m) (?:looking (?:for|to)|trying to|in the market for)"
    r"|\b(?:we|I)(?:'d| would) like to|\bour (?:goal|priority|need) is\b",
    _I,
)
QUARTER = re.compile(
    r"\b(?:Q[1-4](?:\s?(?:FY)?'?\d{2,4})?|(?:end of|by) (?:the )?(?:fiscal )?year"
    r"|year[- ]end|deadline|go[- ]live)\b",
    _I,
)
_MONTH = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November"
    r"|December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec)"
)
DATE = re.compile(
    rf"\b(?:by|before|until) (?:early |mid |late |the end of )?{_MONTH}\b(?: \d{{4}})?"
)
WHEN = re.compile(
    rf"\b(?:(?:in|early|mid|late) {_MONTH}\b(?: \d{{4}})?|(?:next|this) (?:month|quarter|year)"
    r"|within (?:the next )?\d+ (?:days|weeks|months)"
    r"|in (?:\d+|two|three|four|six) (?:weeks|months))"
)
PURCHASE = re.compile(
    r"\b(go live|launch|roll ?out|implement\w*|deploy\w*|decid\w*|decision|sign|buy|purchas\w*"
    r"|start|in place|up and running|migrat\w*|switch|renewal|contract)\b",
    _I,
)
PAIN = re.compile(
    r"\b(struggl\w*|frustrat\w*|painful|pain point|(?<!no )(?<!not a )problems?|headaches?"
    r"|bottlenecks?|too (?:slow|long|expensive|manual)|manual(?:ly)?|error[- ]prone|broken"
    r"|wast(?:e|es|ed|ing)|losing|churn\w*|costing us|can(?:'t|not) keep up|overwhelm\w*"
    r"|spreadsheets?|complain\w*|downtime|outages?)\b",
    _I,
)
MEASURE = re.compile(r"\d+(?:\.\d+)?\s?(?:%|percent|hours?|hrs|days|minutes|x\b|times)", _I)
METRIC_VERB = re.compile(
    r"\b(reduc\w*|cut|sav(?:e|ing)|increas\w*|improv\w*|grow\w*|los(?:e|ing)|costing|goal"
    r"|target|KPI|ROI|per (?:week|month|year)|a (?:week|month|year))\b",
    _I,
)
CRITERIA_TERMS = re.compile(
    r"\b(SOC ?2(?: Type (?:II|2))?|ISO ?27001|GDPR|HIPAA|SSO|SAML|SCIM|audit logs?"
    r"|on[- ]prem(?:ise)?|data residency|SLA|integrat(?:e|es|ion) with [A-Z][\w.]+)\b"
)
MUST = re.compile(
    r"\b(?:must|has to|needs to) (?:have|support|integrate with|work with) [^,.;!?]{2,60}", _I
)
PROCESS = re.compile(
    r"\b(procurement|legal review|security review|security questionnaire"
    r"|vendor (?:review|assessment)|RFP|RFI|proof of concept|POC|pilot|trial|shortlist\w*"
    r"|committee|board (?:approval|meeting)"
    r"|approval process|buying process|evaluation process|other vendors|compare vendors)\b",
    _I,
)
CHAMPION = re.compile(
    r"\bI(?:'ll| will) (?:push for|champion|advocate|make the case|bring (?:this|it) to"
    r"|present (?:this|it) to|set up (?:a )?(?:meeting|call) with|introduce you|loop in)"
    r"|\bI(?:'m| am) (?:a big fan|sold|convinced|on board)",
    _I,
)

BANT = ("budget", "authority", "need", "timeline")
MEDDIC = (
    "metrics",
    "economic_buyer",
    "decision_criteria",
    "decision_process",
    "identify_pain",
    "champion",
)
LABELS = {
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
QUESTIONS = {
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
NEXT_STAGE: dict[DealStage, tuple[DealStage, tuple[str, ...], str]] = {
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
