"""The bench's profile split (tests/bench/profile.py): who owns a sampled stack."""

from __future__ import annotations

import pytest

from tests.bench.profile import CATEGORIES, one_line, parse, split_ms

SITE = "/app/.venv/lib/python3.11/site-packages"
ROOT = "/app/worker"
LOOP = "BaseEventLoop._run_once (/usr/lib/python3.11/asyncio/base_events.py:1922)"
SERVICE = f"QualificationService._extract ({ROOT}/qualify/service.py:371)"


def stack(*frames: str, count: int = 1) -> str:
    return ";".join(frames) + f" {count}"


@pytest.mark.parametrize(
    ("leaf", "expected"),
    [
        (f"AsyncInstructor.create ({SITE}/instructor/v2/core/client.py:833)", "client"),
        (f"acompletion ({SITE}/litellm/main.py:676)", "client"),
        (f"Connection.fetch ({SITE}/asyncpg/connection.py:690)", "SQL"),
        (f"ConversationTurns.insert ({ROOT}/store/repositories.py:40)", "SQL"),
        (f"build_messages ({ROOT}/extract/prompt.py:120)", "prompt"),
        (f"redact ({ROOT}/extract/redaction.py:50)", "redaction"),
        (f"merge_extraction ({ROOT}/qualify/merge.py:60)", "merge"),
        (f"QualificationExtractor.turn_budget ({ROOT}/extract/llm.py:300)", "budget"),
        (f"QualificationExtractor._verified ({ROOT}/extract/llm.py:400)", "other ours"),
    ],
)
def test_a_stack_belongs_to_its_outermost_owner(leaf: str, expected: str) -> None:
    assert parse([stack(LOOP, SERVICE, leaf)]) == {expected: 1}


def test_token_counting_under_the_budget_is_budget_not_client() -> None:
    budget = f"QualificationExtractor.plan_chunks ({ROOT}/extract/llm.py:270)"
    counter = f"token_counter ({SITE}/litellm/utils.py:2570)"

    assert parse([stack(LOOP, SERVICE, budget, counter, count=3)]) == {"budget": 3}


def test_waiting_threads_are_left_out_and_the_loop_is_runtime() -> None:
    select = "EpollSelector.select (/usr/lib/python3.11/selectors.py:468)"
    kafka = f"Fetcher._fetch ({SITE}/aiokafka/consumer/fetcher.py:400)"

    assert parse([stack(LOOP, select, count=5), stack(LOOP, kafka, count=2)]) == {"runtime": 2}


def test_the_cpu_per_call_is_shared_in_the_proportions_of_the_samples() -> None:
    split = split_ms({"client": 3, "SQL": 1}, cpu_ms_per_call=8.0)

    assert split["client"] == 6.0 and split["SQL"] == 2.0
    assert sum(split.values()) == 8.0 and set(split) == set(CATEGORIES)
    assert one_line("W2", split).startswith("W2: 8.00 worker CPU ms per extraction = ours 2.00")
