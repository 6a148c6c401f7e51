"""The prompt budget: split pending turns into chunks whose prompts fit the model's context.

Without it, a conversation whose pending turns exceed the context window is stuck: the provider
answers 400, the extraction fails open, the turns stay pending and every later try sends the
same oversized prompt. Here each chunk of consecutive turns fits the budget (each chunk is its
own extraction and its own state version), and a single turn too long for any chunk is trimmed
with a visible marker. Pure functions: the token counter is passed in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from worker.extract.port import TurnText

TokenCounter = Callable[[str], int]

# A rendered turn's header (`<turn index=".." speaker=".." channel=".." date="..">`, the
# closing tag, the newlines) in tokens, on top of its text.
TURN_OVERHEAD_TOKENS = 32
TRIM_MARKER = "…[trimmed {count} characters]"
_TRIM_STEPS = 8  # tries to shorten a turn until it fits; each aims a little lower


def plan_chunks(
    turns: Sequence[TurnText], budget_tokens: int, count: TokenCounter
) -> list[list[TurnText]]:
    """`turns` (oldest first) as consecutive chunks, each within `budget_tokens` of turn text.

    Order is kept and no turn is dropped; a turn over the budget on its own is trimmed (see
    `trim_turn`). `budget_tokens` is what the prompt leaves for turns: the
    model's input budget minus the fixed part and the known-state summary."""
    budget = max(budget_tokens, 1)
    chunks: list[list[TurnText]] = []
    current: list[TurnText] = []
    used = 0
    for turn in turns:
        cost = turn_tokens(turn, count)
        if cost > budget:
            turn = trim_turn(turn, budget, count)
            cost = turn_tokens(turn, count)
        if current and used + cost > budget:
            chunks.append(current)
            current, used = [], 0
        current.append(turn)
        used += cost
    if current:
        chunks.append(current)
    return chunks


def turn_tokens(turn: TurnText, count: TokenCounter) -> int:
    return count(turn.text) + TURN_OVERHEAD_TOKENS


def trim_turn(turn: TurnText, budget_tokens: int, count: TokenCounter) -> TurnText:
    """The turn cut to fit `budget_tokens`, keeping its beginning and saying what was cut."""
    text = turn.text
    room = max(budget_tokens - TURN_OVERHEAD_TOKENS, 1)
    keep = len(text)
    for _ in range(_TRIM_STEPS):
        tokens = count(trimmed_text(text, keep))
        if tokens <= room:
            break
        # Aim below the proportional length: tokens per character vary along the text.
        keep = int(keep * room / tokens * 0.9)
    else:
        keep = 0
    return dataclasses.replace(turn, text=trimmed_text(text, keep))


def trimmed_text(text: str, keep: int) -> str:
    if keep >= len(text):
        return text
    return text[:keep] + TRIM_MARKER.format(count=len(text) - keep)


def fits(turns: Sequence[TurnText], budget_tokens: int, count: TokenCounter) -> bool:
    return sum(turn_tokens(turn, count) for turn in turns) <= budget_tokens
