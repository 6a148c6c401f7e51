"""The prompt budget: chunks of consecutive turns that fit, long turns trimmed visibly."""

from __future__ import annotations

import itertools

from tests.builders import turn_text
from worker.extract.prompt_budget import (
    TURN_OVERHEAD_TOKENS,
    plan_chunks,
    trim_turn,
    turn_tokens,
)


def four_chars_a_token(text: str) -> int:
    return (len(text) + 3) // 4


def test_turns_are_split_into_consecutive_chunks_within_the_budget() -> None:
    turns = [turn_text(f"turn {n} " + "x" * (40 * (n % 7)), n) for n in range(60)]
    budget = 400

    chunks = plan_chunks(turns, budget, four_chars_a_token)

    assert len(chunks) > 1
    assert [t for chunk in chunks for t in chunk] == turns  # all of them, in order, unchanged
    for chunk in chunks:
        assert sum(turn_tokens(t, four_chars_a_token) for t in chunk) <= budget
    # Greedy: a chunk ends only because the next turn would not fit.
    for chunk, following in itertools.pairwise(chunks):
        used = sum(turn_tokens(t, four_chars_a_token) for t in chunk)
        assert used + turn_tokens(following[0], four_chars_a_token) > budget


def test_turns_that_fit_are_one_chunk_and_no_turns_are_none() -> None:
    turns = [turn_text("short", n) for n in range(5)]

    assert plan_chunks(turns, 10_000, four_chars_a_token) == [turns]
    assert plan_chunks([], 10_000, four_chars_a_token) == []


def test_a_turn_longer_than_the_budget_is_trimmed_with_a_marker() -> None:
    huge = turn_text("We need SSO. " + "y" * 40_000, 1)
    turns = [turn_text("before", 0), huge, turn_text("after", 2)]
    budget = 1000

    chunks = plan_chunks(turns, budget, four_chars_a_token)

    planned = [t for chunk in chunks for t in chunk]
    assert [t.event_id for t in planned] == [t.event_id for t in turns]
    assert all(sum(turn_tokens(t, four_chars_a_token) for t in c) <= budget for c in chunks)
    trimmed = planned[1]
    assert trimmed.text.startswith("We need SSO. yyy")
    assert trimmed.text.endswith(
        f"…[trimmed {len(huge.text) - trimmed.text.index('…')} characters]"
    )
    assert turn_tokens(trimmed, four_chars_a_token) <= budget
    assert turn_tokens(trimmed, four_chars_a_token) > budget * 0.7  # not cut more than needed


def test_trimming_leaves_a_turn_that_fits_untouched() -> None:
    short = turn_text("We need SSO.")

    assert trim_turn(short, 100, four_chars_a_token) == short
    no_room = trim_turn(turn_text("z" * 10_000), TURN_OVERHEAD_TOKENS + 1, four_chars_a_token)
    assert no_room.text == "…[trimmed 10000 characters]"  # what was there is still said
