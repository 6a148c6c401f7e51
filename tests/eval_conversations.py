"""A few labelled conversations (CONTRACT.md section 8) for the evaluation harness's own tests.

Small on purpose: the dataset the harness is measured on is in examples/eval/ (held_out.jsonl and
development.jsonl).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devtools.evaluation.dataset import LABELLED_DIMENSIONS


def expect(stage: list[str], **labels: dict[str, Any]) -> dict[str, Any]:
    """All twelve dimensions, unlabelled ones `identified: false`."""
    absent: dict[str, Any] = {"identified": False, "mentions": []}
    return {name: labels.get(name, absent) for name in LABELLED_DIMENSIONS} | {"stage": stage}


def turn(speaker: str, text: str) -> dict[str, str]:
    return {"speaker": speaker, "text": text}


REVISED_BUDGET = {
    "id": "t-revised-budget",
    "title": "a budget raised later reads the new amount",
    "turns": [
        turn("rep", "Thanks for making time. What is going on?"),
        turn("prospect", "Our support team is drowning in tickets. We answer in 3 days."),
        turn("prospect", "We have a budget of $50k for a new helpdesk."),
        turn("rep", "Understood."),
        turn("prospect", "Finance just raised our budget to $80k."),
    ],
    "expect": expect(
        ["prospecting", "discovery", "qualification"],
        budget={"identified": True, "mentions": ["80k"], "stale": ["50k"]},
        identify_pain={"identified": True, "mentions": ["drowning in tickets"]},
        need={"identified": None, "mentions": []},
        metrics={"identified": None, "mentions": []},
    ),
}
DECIDER_AND_DATE = {
    "id": "t-decider",
    "title": "authority and a quarter",
    "turns": [
        turn("prospect", "I'm the CFO and the final decision is mine."),
        turn("rep", "When do you want it live?"),
        turn("prospect", "We want it in place by the end of Q3."),
    ],
    "expect": expect(
        ["prospecting", "discovery"],
        authority={"identified": True, "mentions": ["CFO"]},
        timeline={"identified": True, "mentions": ["Q3"]},
        need={"identified": None, "mentions": []},
    ),
}
SMALL_TALK = {
    "id": "t-small-talk",
    "title": "nothing to find",
    "turns": [
        turn("prospect", "Hi! How was your weekend?"),
        turn("rep", "Great, we went hiking. You?"),
        turn("prospect", "Lovely weather here too. Talk soon!"),
    ],
    "expect": expect(["prospecting"]),
}
REP_PITCH = {
    "id": "t-rep-pitch",
    "title": "a rep's numbers are not the prospect's budget",
    "turns": [
        turn("rep", "Our plan is $20k a year and most teams go live in Q2."),
        turn("prospect", "Okay, noted."),
    ],
    "expect": expect(["prospecting"]),
}
CONVERSATIONS = [REVISED_BUDGET, DECIDER_AND_DATE, SMALL_TALK, REP_PITCH]


def write_dataset(path: Path, conversations: list[dict[str, Any]], *extra_lines: str) -> Path:
    lines = [json.dumps(c) for c in conversations] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n")
    return path
