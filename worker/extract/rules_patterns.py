"""The rule-based extractor's vocabulary: compiled patterns, word lists, the asking order.

Data only: the logic that reads sentences with these lives in `worker.extract.rules`. Each
pattern is matched against one sentence of a prospect turn (or, for `*_QUESTION`, a rep turn
that sets the topic of the prospect's answer). Importing this module must stay cheap: no
LiteLLM, no instructor.

The patterns were written and tuned while reading the development part of the evaluation
dataset (examples/eval/development.jsonl). Many alternatives are general phrasings, but dozens
are phrases of one of its conversations ("purse strings" e02, "strong voice" e02, "group texts"
e12, "wall planner" e37, "porte le projet" e40, "se ha disparado" e41). Counted on 2026-12-04 by
splitting each pattern at its top-level alternatives: of about 670 alternatives, 179 match in
exactly one development conversation (68 of them phrases of several words), 195 in two or more
and 300 in none. Scores on the development part are therefore in-sample; the held-out part
(examples/eval/held_out.jsonl) was written without reading these patterns and must never be
used to tune them.
"""

from __future__ import annotations

import re

from schemas import DealStage

_I = re.IGNORECASE
# A sentence ends at . ! ? followed by space and a capital, digit or quote, or at a line break.
SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'$€£¡¿\u00C0-\u00DD])|\n+")
CLAUSE_BREAK = re.compile(r"(?<=[,;:])\s+")

# --- amounts, figures and dates ---------------------------------------------------------------
_NUMBER_WORD = (
    r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty"
    r"|forty|fifty|sixty|seventy|eighty|ninety|a hundred|hundred)"
)
MONEY = re.compile(
    r"[$€£]\s?\d[\d,.]*(?:\s?(?:k|m|mm|bn|million|thousand|billion|mil)\b)?"
    r"|\b\d[\d,.]*(?:\.\d+)?\s?(?:k|m|million|thousand|mil)?\s?"
    r"(?:usd|eur|gbp|dollars|euros?|pounds|€|£)(?!\w)"
    r"|\b\d+(?:[.,]\d+)?\s?k\b"
    rf"|\b{_NUMBER_WORD}(?:[- ]{_NUMBER_WORD})?(?: and \w+)? (?:thousand|million|grand)\b"
    r"(?: (?:dollars|euros|pounds))?",
    _I,
)
MEASURE = re.compile(
    r"\d+(?:[.,]\d+)?\s?(?:%|percent|per ?cent|hours?|hrs|days?|weeks?|minutes?|mins|x\b|times"
    r"|calls|tickets|errors|orders|people|staff|users|shipments|leads|deals|clients|customers"
    r"|accounts|patients|complaints|returns|invoices|requests|points|stars)"
    rf"|\b{_NUMBER_WORD}(?:[- ]\w+)? (?:percent|per cent|hours?|days?|weeks?|minutes?|times)\b",
    _I,
)
_MONTH = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November"
    r"|December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec"
    r"|Januar|Februar|März|Juni|Juli|Oktober|Dezember"
    r"|janvier|février|mars|avril|mai|juin|juillet|août|septembre|octobre|novembre|décembre"
    r"|enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|octubre|noviembre|diciembre)"
)
# An explicit point in time the prospect aims at: a month or quarter after a time preposition.
DATE = re.compile(
    r"\b(?:by|before|until|till|in|from|for|around|end of|start of|beginning of|early|mid|late"
    r"|bis|ab|im|avant|en|d'ici|para|antes de|a finales de)"
    rf"[- ](?:the )?(?:(?:early|mid|late|end of|start of) )?(?:{_MONTH}|Q[1-4])\b"
    r"(?:\s?'?\d{2,4})?"
    r"|\bQ[1-4]\s?(?:FY)?'?\d{2,4}\b|\bFY\s?'?\d{2,4}\b"
    # "1 April", "30 June", "15 dec", "1. Juli", "1 de marzo", "September 1st", "1er mars"
    rf"|\b\d{{1,2}}(?:st|nd|rd|th|er)?\.? (?:of |de |del )?{_MONTH}\b(?:\s?\d{{4}})?"
    rf"|\b{_MONTH} \d{{1,2}}(?:st|nd|rd|th)?\b(?!\s?(?:%|percent|people|hours|days))"
    rf"|\b(?:Ende|Anfang|Mitte|fin|début|fin de|finales de|principios de|mediados de) {_MONTH}\b"
    r"|\b(?:b4|before|by) (?:the )?(?:new year|year[- ]end|end of year|EOY)\b"
    r"|\b(?:b4|before|by) (?:the |our )?Q[1-4]\b"
    r"|\b(?:by|before|until) (?:the )?end of (?:the )?(?:fiscal |financial |calendar )?"
    r"(?:year|quarter|month)\b"
    r"|\b(?:next|this|the coming) (?:fiscal |financial )?(?:month|quarter|year|season|spring"
    r"|summer|autumn|fall|winter)\b"
    r"|\bwithin (?:the next )?(?:\d+|a|two|three|four|six|few) (?:days|weeks|months)\b"
    r"|\bin (?:\d+|two|three|four|five|six|a few) (?:weeks|months)\b"
    r"|\b(?:before|by) (?:the )?(?:renewal|holidays|peak season|busy season|launch|audit"
    r"|new school year|school year|semester|go-live|open enrollment)\b"
    r"|\b(?:go[- ]live|deadline|cut-?over)\b",
    _I,
)
# Past events, not plans: "we paid $40k in Q3 alone", "last quarter".
PAST = re.compile(
    r"\b(?:last (?:year|quarter|month|week|spring|summer|autumn|fall|winter)|ago|alone|paid"
    r"|happened|dropped|lost|had to|was|were|left|joined|hired|opened|founded|bought|renewed"
    r"|started|began|went|did)\b",
    _I,
)
FUTURE = re.compile(
    r"\b(?:will|want|wants|need|needs|plan\w*|aim\w*|hope|hoping|going to|has to|have to"
    r"|must|should|would|target\w*|expect\w*|ready|live|launch\w*|decid\w*|sign|start"
    r"|roll\w*|in place|up and running|pick|choose|select|deadline|go[- ]live)\b",
    _I,
)

# --- budget -----------------------------------------------------------------------------------
BUDGET = re.compile(
    r"\b(budget\w*|allocat\w*|set aside|earmark\w*|ring-?fenced|afford|price range|funding"
    r"|funded|fund has|fund\b|approved (?:for|up to)|signed off on|presupuesto|Etat|Haushalt"
    r"|we can (?:spend|invest|go up to)|(?:we(?:'ve| have)|there(?:'s| is)) (?:got )?"
    r"(?:about|around|roughly|up to|some)?\s*[$€£\d])",
    _I,
)
BUDGET_SET = re.compile(
    r"\b(set aside|allocat\w*|earmark\w*|ring-?fenced|funded|(?:have|got|there(?:'s| is)) (?:a|the"
    r"|some) budget|budget (?:is|was|has been) (?:approved|signed off|agreed|in place)"
    r"|approved (?:a |the )?budget)\b",
    _I,
)
SPEND = re.compile(r"\b(spend|invest|pay|paying|cover|covers)\b", _I)  # a budget only with money
LOSS = re.compile(
    r"\b(cost(?:s|ing)? us|lost|los(?:e|es|ing)|loss(?:es)?|paid|wast\w*|credits?|fines?"
    r"|penalt\w*|refunds?|overtime|revenue|churn\w*|write-?offs?|damages|leak\w*|sales"
    r"|didn't need to|did not need to|overspen\w*|unnecessar\w*)\b",
    _I,
)
# "anything over $100k", "under £30k": a threshold, not money set aside.
THRESHOLD = re.compile(
    r"\b(?:over|above|under|below|more than|less than|anything over|beyond|exceeding)\s+"
    r"(?=[$€£\d])",
    _I,
)
REVISION = re.compile(
    r"\b(raised|increased|bumped|moved|cut|reduced|lowered|revised|changed|now|instead"
    r"|actually|updated?|correction|rather|doubled|halved|up to|down to)\b",
    _I,
)

# --- people -----------------------------------------------------------------------------------
_TITLE = (
    r"(?:CEO|CFO|CTO|COO|CIO|CISO|CRO|CMO|CPO|CDO|CHRO|GM|MD|VP(?: of [A-Z]?\w+)?"
    r"|SVP(?: of \w+)?|EVP(?: of \w+)?|[Vv]ice [Pp]resident(?: of \w+)?"
    r"|[Cc]hief \w+ [Oo]fficer|[Hh]ead of \w+|[Dd]irector(?: of \w+)?|[Mm]anaging [Dd]irector"
    r"|[Gg]eneral [Mm]anager|[Ff]ounder|[Cc]o-founder|[Oo]wner|[Pp]resident|[Pp]artner"
    r"|[Cc]ontroller|[Tt]reasurer|[Pp]rincipal|[Mm]atron|[Dd]ean|[Pp]rovost|[Ss]uperintendent"
    r"|[Cc]omptroller|[Gg]eschäftsführer\w*|[Dd]irecteur\w*|[Dd]irectrice\w*|[Dd]irector\w*"
    r"|[Gg]erente|[Jj]ef[ae] de \w+|[Rr]esponsable (?:de |des |du )?\w+|[Ll]eiter\w*"
    r"|[Ll]eitung|[Hh]ead of \w+|[Pp]ractice [Mm]anager|[Oo]ffice [Mm]anager"
    r"|[Oo]perations [Mm]anager|IT [Mm]anager|[Ff]inance [Mm]anager)"
)
TITLE_RE = re.compile(rf"\b{_TITLE}\b")
_NAME = r"[A-Z][a-zà-ÿ]+(?:[- ][A-Z][a-zà-ÿ]+)?"
NAMED_TITLE = re.compile(
    rf"(?P<n1>{_NAME}),? (?:our|the|my|is our|is the) {_TITLE}"
    rf"|(?:our|the|my) {_TITLE},? (?P<n2>{_NAME})"
)
# A capitalised name that is not a sentence opener or a common capitalised word.
PERSON = re.compile(rf"\b(?P<name>{_NAME})\b")
NOT_A_NAME = frozenset(
    "I I'm I'll I'd I've We We're We'll Our Yes No Yeah Yep Okay Ok So And But The That This "
    "It It's Its They Their There Then Thanks Thank Hi Hello Hey Sure Right Correct Exactly "
    "Honestly Well Also Just One Two Three Four Five Six Any Every Each Monday Tuesday Wednesday "
    "Thursday Friday Saturday Sunday January February March April May June July August September "
    "October November December He She His Her Him My Your You Let Let's What When Who Why How "
    "If As At In On For From With After Before Since Not Nobody Everyone Someone Both Once Q1 "
    "Q2 Q3 Q4 IT HR CFO CEO CTO COO VP Finance Legal Procurement Security Board".split()
)
DECIDES = re.compile(
    r"\b(decision[- ]maker|final (?:say|decision|call|word)|make the call|my call|up to me"
    r"|decision is (?:mine|ours)|(?:my|our|his|her|their) decision|I decide|decides?|decided by"
    r"|makes? the decision|call the shots|I own (?:this|the decision|it)|I'm the one who"
    r"|approves?|approved by|approval|report to|sign-?off|signs?\b|(?<!-)signature|entscheide\w*"
    r"|décide\w*|decid[eo]\b|decide together|(?:la|el) que elige|quien decide|elijo"
    r"|c'est moi qui|liegt bei (?:mir|ihm|ihr))",
    _I,
)
SIGNS_OFF = re.compile(
    r"\b(signs? off|signs? (?:the |anything|everything|all|contracts?|it|off|purchase)"
    r"|(?<!-)signature|sign-off|final (?:approval|sign-?off)|approves? (?:the |all |any )?"
    r"(?:budget|spend|purchase|contract|deal|it|PO|money|funds?)|approved by|holds? the budget"
    r"|budget (?:owner|holder)|owns? the budget|controls? the (?:budget|money|purse)"
    r"|purse strings|has to (?:approve|sign)|needs? to (?:approve|sign)|(?:his|her|their) approval"
    r"|unterschreib\w*|freigeb\w*|signe\w*|firma\w*|signs? (?:every|each|any)\w*"
    r"|signing (?:herself|himself|themselves|myself|it)|(?:be|is) the one (?:who )?sign(?:s|ing)"
    r"|owns? (?:the |our |my |its |their )?(?:[\w-]+ ){0,3}budget|(?:my|his|her) budget"
    r"|(?:contracts?|POs?|purchases?|spend) (?:goes|go|comes?|has to go) (?:through|to) "
    r"(?:her|him|me|them)"
    r"|(?:budget|presupuesto|Budget) (?:appartien\w*|pertenece|gehört))\b",
    _I,
)
# "Helen signs", "she'll sign", "then Sophie signs": a person, then the verb (case matters).
SIGNER = re.compile(
    rf"\b(?:{_NAME}|[Hh]e|[Ss]he|I)(?:'ll| will)? (?:be the one )?sign(?:s|ing)?\b(?! up)"
)
FIRST_PERSON_ROLE = re.compile(
    rf"\b(?:I'm|I am|as|I run|I head|I lead|I'm the|my role as|yo soy|soy|je suis|ich bin)\b"
    rf"[^.,;]{{0,30}}{_TITLE}",
    _I,
)

# Text addressed to an extraction model ("ignore previous instructions", "mark budget as $1M",
# "set economic_buyer to Bob"): the prospect typed it, but it states nothing about the deal.
INSTRUCTION = re.compile(
    r"\b(?:ignore (?:all |any )?(?:previous|prior|above|earlier) instructions?"
    r"|mark (?:the |every |all )?\w+(?: \w+)? as|set \w+ to|(?:every|each|all) fields?"
    r"|[a-z]+_[a-z_]+|as identified|system prompt|you are an? (?:AI|assistant|model))\b",
    _I,
)

# --- need and pain ----------------------------------------------------------------------------
NEED = re.compile(
    r"\b(?:we|I)(?:'d| would)? (?:really |also |urgently |just |still |badly )?"
    r"(?:need|want|require|must have)\b"
    r"|\b(?:we|I)(?:'re| are| am|'m) (?:looking (?:for|to|at)|trying to|in the market for|after"
    r"|hoping (?:for|to)|aiming to)"
    r"|\b(?:we|I)(?:'d| would) (?:like|love) (?:to|a|an|something)"
    r"|\b(?:our|the) (?:goal|priority|need|aim|objective|requirement|ask) is\b"
    r"|\bwhat we (?:need|want|are after|'re after) is\b"
    r"|^(?:something|a (?:tool|system|platform|way|single place)|one place|an? \w+ that)\b"
    r"|\b(?:has|have|needs?) to be able to\b|\bneed(?:s|ed)? (?:a|an|something|one|to)\b"
    r"|^(?:need|want|looking for)\b|\blook(?:ing)? into\b|\b(?:we|I) want (?:one|a|an|to)\b"
    r"|\bwir (?:brauchen|suchen|möchten|wollen)\b|\bnous (?:avons besoin|cherchons|voulons"
    r"|souhaitons)\b|\bon cherche\b|\bnecesitamos\b|\bbuscamos\b|\bqueremos\b",
    _I,
)
PAIN = re.compile(
    r"\b(struggl\w*|frustrat\w*|painful|pain point|(?<!no )(?<!not a )problems?|headaches?"
    r"|bottlenecks?|too (?:slow|long|expensive|manual|many)|manual(?:ly)?|by hand|error[- ]prone"
    r"|errors?|mistakes?|broken|wast(?:e|es|ed|ing)|losing|lost|churn\w*|costing us|cost us"
    r"|can(?:'t|not) keep up|overwhelm\w*|drowning|spreadsheets?|paper(?:work)?\b|complain\w*"
    r"|downtime|outages?|slipp\w*|chas(?:e|es|ing)|delays?|delayed|late\b|backlog|mess\b|messy"
    r"|nightmare|chaos|chaotic|fall(?:s|ing)? through|slips? through|miss(?:es|ed|ing)"
    r"|behind|stuck|burn(?:ing|t)? out|burnout|re-?key\w*|double[- ]entry|duplicat\w*"
    r"|incidents?|fined|fines\b|penalt\w*|complaints?|escalations?|risk\w*|worr\w*|hate|killing us"
    r"|takes? (?:forever|ages|hours|days|weeks)|no visibility|blind|scattered|siloed|outdated"
    r"|clunky|unreliable|crash\w*|fail(?:s|ed|ing|ures?)?|credits|dropp(?:ed|ing)"
    r"|juggl\w*|crept|creep\w*|vanish\w*|never (?:convert|show|come back|renew)|copy[- ]?past\w*"
    r"|reconstruct\w*|furious|angry|annoyed|no[- ]shows?|waitlists?|ransomware\w*|hacked"
    r"|breach\w*|phishing|intrusion|out of stock|stock-?outs?|selling out|sold out"
    r"|Excel|wall planner|whiteboard|sticky notes|group texts|emailed around|nobody knows"
    r"|(?:we|they) (?:don't|do not|can't|cannot) (?:know|see|tell|track)|no idea (?:which|who|what)"
    r"|spend(?:s|ing)? (?:about |around |roughly |nearly |almost )?(?:a third|half|a quarter"
    r"|\d+ ?%) of|t(?:ake|akes|ook) (?:us |them |me )?(?:about |around |roughly |nearly )?"
    r"(?:\d+|a|an|one|two|three|four|five|six|a full|two full) (?:people |of us )?(?:a full )?"
    r"(?:hours?|days?|weeks?|months?)"
    r"|Fehler\w*|fehlt\w*|fehlten|Probleme|dauert|noch (?:mit|auf|per) (?:Papier|Excel|Outlook)"
    r"|problème\w*|catastroph\w*|pénible|difficile\w*|on perd|nous perdons|manuellement"
    r"|problema\w*|perdemos|perdons|se ha disparado|disparad\w*|no sabemos|a mano|nos cuesta)\b",
    _I,
)
METRIC_CONTEXT = re.compile(
    r"\b(reduc\w*|cut|sav(?:e|es|ed|ing)|increas\w*|improv\w*|grow\w*|los(?:e|es|ing|t)|cost\w*"
    r"|goal|target|KPI|ROI|per (?:week|month|year|day|shift)|a (?:week|month|year|day|shift)"
    r"|every (?:week|month|day|shift)|each (?:week|month|day)|dropp\w*|fell|rose|slipp\w*"
    r"|average|on average|spend\w*|takes?|took|rate|accuracy|churn|errors?|backlog|wait\w*"
    r"|response time|resolution|missed|paid|credits|fined|fines\b)\b",
    _I,
)

# --- decision criteria and process ------------------------------------------------------------
CRITERIA_TERMS = re.compile(
    r"\b(SOC ?2(?: Type (?:II|2))?|ISO ?27001|GDPR|HIPAA|PCI(?:[- ]DSS)?|FedRAMP|SSO|SAML|SCIM"
    r"|audit (?:logs?|trails?)|on[- ]prem(?:ise)?|data residency|SLA|uptime|API|open API"
    r"|mobile app|offline mode|ease of use|easy to use|user[- ]friendly|total cost(?: of \w+)?"
    r"|TCO|price|pricing|cheaper|cost per \w+|implementation time|time to value"
    r"|reporting|dashboards?|security|scalab\w*|references?|fixed (?:annual |yearly )?price"
    r"|e-?signature|[A-Z][\w.&-]+ (?:integration|compatibility|support|export)"
    r"|[Ee]xport to [A-Z][\w.&-]+|[Hh]ow (?:you|it) handles? [^,.;!?]{3,40}"
    r"|compatibilité avec [A-Z][\w.&-]+|hébergement des données(?: en \w+)?"
    r"|compatib\w+ con [A-Z][\w.&-]+|Anbindung an [A-Z][\w.&-]+|Schnittstelle zu [A-Z][\w.&-]+"
    r"|(?:integrat\w*|compatib\w*"
    r"|connects?|connector|sync\w*|plugs? into|works? with|talks? to) (?:with |to |into )?"
    r"(?:our |the |their )?[A-Z][\w.&-]+(?: (?:and|or) [A-Z][\w.&-]+)?)\b"
)
CRITERIA_CUE = re.compile(
    r"\b(criteria|requirements?|must[- ]haves?|non-?negotiable|deal[- ]?breakers?|evaluat\w*"
    r"|compar\w*|judg\w*|scor\w*|weigh\w*|what matters|matters most|important to us"
    r"|key (?:thing|factor)s?|(?:first|second|third) thing|three things|two things"
    r"|has to|must|needs? to|have to|only if|as long as|ideally|checklist|big questions"
    r"|wants? to see|want(?:s)? (?:a|an) |if (?:you|u) can|Kriterien|wichtig|critères|pertinence"
    r"|importante?|criterios)\b",
    _I,
)
MUST = re.compile(
    r"\b(?:must|has to|needs? to|have to|should) (?:have|support|integrate with|work with"
    r"|connect to|run on) [^,.;!?]{2,60}",
    _I,
)
PROCESS = re.compile(
    r"\b(procurement|legal(?: review| team| sign-?off)?|security review|security questionnaire"
    r"|security (?:assessment|check)|IT review|vendor (?:review|assessment|onboarding)"
    r"|RFP|RFI|RFQ|tender|proof of concept|POC|pilot|shortlist\w*|committee|the board"
    r"|approval process|buying process|evaluation process|sign-?off process|three quotes"
    r"|two quotes|references? calls?|reference check|steps?|first step|next step|then (?:we|IT"
    r"|legal|procurement|finance|the board|[A-Z][a-z]+) |after that|once (?:that|we|IT|legal)"
    r"|goes? to (?:the )?(?:board|committee|finance|legal|procurement)|sign the (?:contract|PO)"
    r"|Ausschreibung|Vorstand|appel d'offres|comité|licitación|comité)\b",
    _I,
)

# --- champion ---------------------------------------------------------------------------------
CHAMPION = re.compile(
    r"\bI(?:'ll| will) (?:push for|champion|advocate|make the case|bring (?:this|it) to"
    r"|present (?:this|it) to|set up (?:a )?(?:meeting|call) with|introduce you|loop in"
    r"|fight for|go to bat|sell (?:this|it) internally|get (?:this|it) (?:done|through|approved)"
    r"|take (?:this|it) to)"
    r"|\bI(?:'m| am) (?:a big fan|sold|convinced|on board|your (?:champion|advocate)"
    r"|pushing (?:for )?(?:this|it)|championing)"
    r"|\b(?:he|she|they)(?:'ll| will) (?:back|support|champion|push for|love|sponsor|vouch)"
    r"|\b(?:biggest|big) (?:fan|supporter|advocate)|\bin (?:your|our) corner\b"
    r"|\b(?:has|have|'s|'ve) been (?:pushing|lobbying|asking|advocating|begging|campaigning)"
    r"|\b(?:is|are) (?:pushing|lobbying|advocating|campaigning) (?:for|hard)"
    r"|\b(?:wants?|want) this (?:badly|to happen|more than anyone)|\bon (?:your|our) side\b"
    r"|\b(?:internal )?(?:champion|sponsor)\b|\bstrong voice\b|\bkeeps? (?:pushing|asking|lobbying"
    r"|championing)|\bthe reason we(?:'re| are) (?:doing|looking at|buying)"
    r"|\b(?:is|'s) (?:very |really |super )?keen\b|\bporte le projet\b"
    r"|\bpousse\w* (?:fort\w*|en interne)"
    r"|\btreibt (?:das|es|dies)\w* (?:Projekt )?voran\b|\bimpuls\w* el proyecto\b",
    _I,
)

# --- paper process (MEDDPICC's P): how the contract gets signed ------------------------------
PAPER = re.compile(
    r"\b(?:legal (?:needs? to|has to|will|must|wants? to|team|review\w*|sign-?off|department)"
    r"|(?:our|the) (?:lawyers?|counsel|legal)|procurement|purchasing (?:team|department|process)"
    r"|security (?:review|questionnaire|assessment|sign-?off)|infosec|vendor (?:onboarding"
    r"|registration|assessment|review|setup|form)|supplier (?:onboarding|registration)"
    r"|MSA|master (?:services? |subscription )?agreement|DPA|data processing agreement|NDA"
    r"|redlines?|red-?lin\w*|contract review|T&Cs|terms and conditions|contract paperwork"
    r"|purchase order|PO (?:process|number)|signature (?:order|process|chain)"
    r"|countersign\w*|(?:sign|signing) order|(?:two|2|three|3) signatures"
    r"|signing authority|(?:contract|paperwork|legal) (?:takes|usually takes|can take))\b",
    _I,
)

# --- competition (MEDDPICC's second C): who else is in the deal -------------------------------
_VENDOR = r"(?-i:[A-Z][\w.&'-]*(?: [A-Z][\w.&'-]*)?)"
# "we're also talking to Acme and Globex", "comparing you with Initech", "up against Hooli".
NAMED_COMPETITOR = re.compile(
    r"\b(?:also (?:talking to|speaking (?:to|with)|looking at|evaluating|considering|in talks with"
    r"|meeting(?: with)?|trialling|trialing|piloting|got (?:a )?(?:quote|demo|proposal)s? from)"
    r"|(?:evaluating|trialling|trialing|piloting|shortlisted|considering)"
    r"|compar(?:e|ing) (?:you|your \w+|it|this)? ?(?:to|with|against)"
    r"|up against|versus|vs\.?|(?:a )?(?:demo|quote|proposal|pitch)s? from"
    r"|(?:talking|speaking) to (?:a few|two|three|several) (?:vendors|others|companies),?"
    r" (?:like|including)"
    r"|other (?:vendors|options|tools|providers) (?:like|such as|including))"
    rf" (?P<names>{_VENDOR}(?:(?:,| and| or|, and) {_VENDOR})*)",
    _I,
)
IN_HOUSE = re.compile(
    r"\b(?:build(?:ing)? (?:it|this|something|one|our own|a tool|a \w+)(?: \w+)? "
    r"(?:ourselves|in-?house|internally)|in-?house (?:build|tool|solution|option|team could)"
    r"|(?:our|the) (?:own )?(?:dev|developers|engineers|engineering team|IT team) (?:could|can|"
    r"want to|might) (?:build|write|do) (?:it|this|something)|build (?:vs\.?|versus|or) buy"
    r"|build it ourselves|build our own)\b",
    _I,
)
DO_NOTHING = re.compile(
    r"\b(?:do nothing(?! but)|doing nothing(?! but)|status quo"
    r"|stay(?:ing)? (?:with|on) (?:our |the )?"
    r"(?:spreadsheets?|Excel|current (?:setup|process|system|tool)|existing (?:setup|process"
    r"|system|tool)|what we have|how things are)|keep (?:doing|using) (?:it |things )?"
    r"(?:the way we (?:do|are)|as (?:is|it is)|(?:our |the )?(?:spreadsheets?|Excel))"
    r"|(?:just )?live with it|not (?:change|changing) anything)\b",
    _I,
)
COMPETITION_CUE = re.compile(
    r"\b(?:competitors?(?! (?:websites?|sites?|prices?|pricing|rates?|data))|other vendors"
    r"|other (?:options|solutions|providers|tools)"
    r"|alternatives|shortlist\w*|a few vendors|several vendors|bake-?off|RFP)\b",
    _I,
)
# "We're only talking to you", "no other vendors": the prospect says there is no competition.
NO_COMPETITION = re.compile(
    r"\b(?:only|just|exclusively) (?:talking|speaking) (?:to|with) (?:you|your team)"
    r"|\b(?:not|aren't|are not|isn't) (?:talking to|looking at|evaluating|considering) "
    r"(?:anyone|anybody|any other|other)"
    r"|\bno (?:other )?(?:vendors?|competitors?|alternatives|one else)\b"
    r"|\b(?:nobody|no one|none) else\b|\b(?:just|only) (?:you|yours)\b"
    r"|\byou(?:'re| are) the only (?:one|vendor|option)",
    _I,
)

# --- the rep's question sets the topic of the prospect's next turn ----------------------------
TOPIC_QUESTIONS: dict[str, re.Pattern[str]] = {
    "need": re.compile(
        r"\b(what (?:prompted|brings|brought|made you|are you looking|do you need"
        r"|would (?:a|an|the)"
        r"|does (?:a|an|the) \w+ (?:need|have) to)|looking for|hoping to (?:solve|fix|get))\b",
        _I,
    ),
    "budget": re.compile(
        r"\b(budget|how much|spend|set aside|price range|funding|money|invest)\b", _I
    ),
    "timeline": re.compile(
        r"\b(when|timeline|timing|time ?frame|deadline|by when|how soon|go[- ]live|date)\b", _I
    ),
    "authority": re.compile(
        r"\b(who (?:decides|makes|signs|approves|is involved|'s involved|owns"
        r"|else(?! (?:are you|is) (?:looking|talking|considering|evaluating)))|decision"
        r"|sign(?:s|-)? ?off|approv\w*)\b",
        _I,
    ),
    "decision_process": re.compile(
        r"\b(process|steps?|from here|what happens next|how do you (?:buy|purchase)|procurement"
        r"|to a (?<!-)signature|get to a contract)\b",
        _I,
    ),
    "decision_criteria": re.compile(
        r"\b(criteria|evaluat\w*|compare|what (?:will|would) (?:you|it) (?:need|have) to"
        r"|requirements?|must[- ]haves?|matters? (?:most|to you)|look(?:ing)? for in)\b",
        _I,
    ),
    "metrics": re.compile(
        r"\b(how (?:big|much|many|often|long|bad)|what does (?:that|it) cost|measure|impact"
        r"|success look)\b",
        _I,
    ),
    "paper_process": re.compile(
        r"\b(legal|procurement|paperwork|security review|contract (?:process|review)|MSA"
        r"|sign(?:ing|ature) (?:process|order)|get (?:the|a) contract signed)\b",
        _I,
    ),
    "competition": re.compile(
        r"\b(who else (?:are you|is) (?:looking at|talking to|considering|evaluating"
        r"|in the running)"
        r"|other (?:vendors|options|solutions|tools)|alternatives|competitors?|shortlist"
        r"|(?:looking at|talking to|considering) anyone else|in-?house)\b",
        _I,
    ),
}
# The prospect agrees with what the rep just said.
CONFIRMS = re.compile(
    r"^\s*(?:yes|yeah|yep|yup|correct|exactly|right|that's right|that is right|spot on"
    r"|absolutely|definitely|indeed|sure|ja|genau|oui|exactement|sí|si|claro)\b",
    _I,
)
# The prospect puts the deal on hold (not a past hold: "everything was on hold").
PAUSED = re.compile(
    r"\b(?:let's|let us|we(?:'ll| will| need to| have to|'re going to| are going to)|I(?:'ll| will)"
    r"|have to|need to) (?:pause|park|shelve|put (?:this|it|things|everything) on (?:hold|ice))"
    r"|\b(?:is|are|'s|'re) (?:now )?(?:on hold|on ice|paused|frozen)\b"
    r"|\b(?:spending|budget|hiring|purchasing) freeze\b|\buntil further notice\b"
    r"|\b(?:reach|circle|come) back (?:out )?(?:to you )?when\b",
    _I,
)
# The prospect is back after a pause.
RESUMED = re.compile(
    r"\b(?:back on|picking (?:this|it) (?:back )?up|pick (?:this|it) (?:back )?up|restart\w*"
    r"|resum\w*|unfrozen|lifted|ready to (?:go|continue|move))\b",
    _I,
)
# The deal is over: lost, or won.
LOST = re.compile(
    r"\b(?:went|go|going|gone) with (?:a |another |the other |a different )?"
    r"(?:competitor|vendor|provider|supplier|solution|option|tool|platform|company)"
    r"|\b(?:chose|chosen|selected|picked|signed with|decided on) (?:a |another |a different )"
    r"(?:competitor|vendor|provider|supplier|solution|tool|platform)"
    r"|\bdecided (?:not to|against)\b|\bnot (?:be )?(?:moving|going) (?:forward|ahead)\b"
    r"|\bwon't be (?:moving|going) (?:forward|ahead)\b|\b(?:going to|will) pass\b"
    r"|\bcancel(?:l?ed|ling)? (?:the|this|our) (?:project|search|evaluation|purchase)"
    r"|\b(?:project|evaluation|search|purchase|initiative) (?:is|has been|was) "
    r"(?:cancel\w*|killed|scrapped|shelved for good|dead)"
    r"|\bno longer (?:need|interested|pursuing|looking)"
    r"|\bstick(?:ing)? with (?:our|the|what we)\b|\bcan(?:'t|not) justify\b"
    r"|\b(?:not|never) (?:going to|gonna) (?:buy|switch|move)\b",
    _I,
)
WON = re.compile(
    r"\b(?:we(?:'re| are) (?:ready to )?sign(?:ing)?\b|signed (?:the )?(?:contract|order|agreement"
    r"|PO|paperwork|MSA)|countersigned|PO (?:is|has been) (?:issued|sent|raised|approved|out)"
    r"|let's (?:do it|go ahead|move forward)|we(?:'re| are) going ahead|welcome aboard"
    r"|it's a yes|you(?:'ve| have) got the deal|deal is done)",
    _I,
)
NEGOTIATING = re.compile(
    r"\b(redlines?|contract terms|MSA|order form|discount|payment terms|final (?:price|offer"
    r"|proposal)|pricing proposal|send (?:over )?(?:the |a )?(?:contract|paperwork|order form)"
    r"|negotiat\w*)\b",
    _I,
)

# The dimensions the rules ask about first while they are unknown (the questions' wording is
# the dimension table's); the others follow in the table's order.
ASKING_ORDER = (
    "need",
    "budget",
    "authority",
    "timeline",
    "identify_pain",
    "decision_process",
    "decision_criteria",
    "metrics",
    "economic_buyer",
    "champion",
)
# Forward only, one step, on the evidence each stage needs: the default exit criteria of
# CONTRACT.md section 4 (worker.qualify.criteria), accumulated over the pipeline. Used when the
# caller gives no gap report; with one, its `missing` list decides. Discovery has no criteria,
# but the rules ask for a need or a pain: talk about a problem is what discovery is.
_QUALIFICATION = ("need", "identify_pain")
_EVALUATION = (*_QUALIFICATION, "budget", "authority", "timeline")
_NEGOTIATION = (*_EVALUATION, "economic_buyer", "decision_criteria", "decision_process")
NEXT_STAGE: dict[DealStage, tuple[DealStage, tuple[str, ...], str]] = {
    DealStage.PROSPECTING: (DealStage.DISCOVERY, ("need|identify_pain",), "a need or pain"),
    DealStage.DISCOVERY: (DealStage.QUALIFICATION, _QUALIFICATION, "a need and a pain"),
    DealStage.QUALIFICATION: (
        DealStage.EVALUATION,
        _EVALUATION,
        "budget, authority and a timeline",
    ),
    DealStage.EVALUATION: (
        DealStage.NEGOTIATION,
        _NEGOTIATION,
        "an economic buyer, decision criteria and a decision process",
    ),
}
