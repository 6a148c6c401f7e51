"""`make smoke-local`: one labelled conversation through the worker against your model server.

    make smoke-local LLM_API_BASE=http://127.0.0.1:8080/v1 LLM_MODEL=openai/qwen

Not in CI: it needs a model server you run (README, Self-hosted models). The conversation's
turns go through the worker's own service (`process_batch`: redaction, prompt budget, the LLM
call with the mode `LLM_MODE` picks, evidence check, merge, stage machine) with a throw-away
embedded PostgreSQL (never your DATABASE_URL), in one batch, as a backlog would arrive; no
broker. It prints what was found beside the labels. Other worker settings (LLM_MODE,
LLM_MAX_PROMPT_TOKENS, prices, LLM_TIMEOUT_S…) are read from the environment as the worker
reads them. Exit status: 0 when the extraction succeeded, 1 when it failed, 2 when no server
answers or the settings are unusable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from devtools.evaluation.dataset import LabelledConversation, read_dataset
from devtools.evaluation.harness import counted_service, replay
from devtools.evaluation.scoring import ConversationScore, score_conversation
from devtools.stack import start_postgres
from schemas import ConversationState
from worker.errors import ConfigurationError
from worker.extract.llm import structured_output
from worker.qualify.repository import ConversationStateRepository
from worker.settings import Settings, load_settings
from worker.store.database import open_database
from worker.store.postgres import migrate_database

DATASET = Path(__file__).resolve().parents[2] / "examples" / "eval" / "development.jsonl"
# A 7-turn email thread that says nine of the ten dimensions: one call, a short prompt.
DEFAULT_CONVERSATION = "e35"
PROBE_TIMEOUT_S = 5.0


class NoServer(Exception):
    """Nothing answers at LLM_API_BASE."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversation", default=DEFAULT_CONVERSATION, help="a dataset id")
    parser.add_argument("--dataset", type=Path, default=DATASET)
    return parser.parse_args(argv)


def usable_settings() -> tuple[Settings, str]:
    """The settings and the server they name."""
    settings = load_settings()
    if settings.uses_rules or not settings.llm_api_base:
        raise ConfigurationError(
            "set LLM_API_BASE and LLM_MODEL, e.g. "
            "make smoke-local LLM_API_BASE=http://127.0.0.1:8080/v1 LLM_MODEL=openai/qwen"
        )
    return settings, settings.llm_api_base


async def probe(api_base: str) -> None:
    """Any HTTP answer from `{api_base}/models` means a server is there; none raises NoServer."""
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.get(f"{api_base.rstrip('/')}/models") as response,
        ):
            await response.read()
    except (aiohttp.ClientError, TimeoutError) as error:
        reason = type(error).__name__ if isinstance(error, TimeoutError) else str(error)
        raise NoServer(
            f"no server answers at {api_base} ({reason or type(error).__name__}); start one "
            "(README, Self-hosted models) or pass LLM_API_BASE=http://host:port/v1"
        ) from None


@contextlib.asynccontextmanager
async def throwaway_database() -> AsyncIterator[str]:
    """An embedded PostgreSQL in a temporary directory, migrated: never DATABASE_URL's."""
    with tempfile.TemporaryDirectory(prefix="qw-smoke-") as directory:
        server = await asyncio.to_thread(start_postgres, Path(directory), durable=False)
        try:
            await migrate_database(server.url)
            yield server.url
        finally:
            await asyncio.to_thread(server.stop)


def pick(dataset: Path, conversation_id: str) -> LabelledConversation:
    conversations = read_dataset(dataset).conversations
    for conversation in conversations:
        if conversation.id == conversation_id:
            return conversation
    raise ConfigurationError(f"no conversation {conversation_id!r} in {dataset}")


async def run(settings: Settings, conversation: LabelledConversation) -> int:
    async with (
        throwaway_database() as url,
        open_database(url, max_size=2, role=settings.db_role) as database,
    ):
        service, extractor = counted_service(settings, database)
        repository = ConversationStateRepository(database=database, update_topic="updates")
        started = time.monotonic()
        state = await replay(conversation, service, repository, per_batch=None)
        seconds = time.monotonic() - started
    usage = extractor.usage
    print(
        f"{usage.calls} extraction(s), {usage.failed} failed, {usage.llm_requests} LLM "
        f"request(s), {usage.prompt_tokens} prompt + {usage.completion_tokens} completion "
        f"tokens, {seconds:.1f} s"
    )
    report(score_conversation(conversation.id, conversation.expect, state), state)
    return 1 if usage.failed or not usage.calls else 0


def report(score: ConversationScore, state: ConversationState) -> None:
    print(f"{'dimension':<20} {'labelled':<9} {'found':<6} evidence")
    for dimension in score.dimensions:
        labelled = "-" if dimension.expected is None else ("yes" if dimension.expected else "no")
        found = "yes" if dimension.predicted else "no"
        quote = " ".join(next(iter(evidence(state, dimension.dimension.value)), "").split())
        print(f"{dimension.dimension.value:<20} {labelled:<9} {found:<6} {quote[:90]}")
    acceptable = ", ".join(stage.value for stage in score.acceptable_stages)
    print(f"stage: {score.stage.value} (labelled acceptable: {acceptable})")


def evidence(state: ConversationState, dimension: str) -> list[str]:
    for group in (state.qualification.bant, state.qualification.meddic):
        quotes = getattr(group, f"{dimension}_evidence", None)
        if quotes is not None:
            return list(quotes)
    return []


async def main_async(args: argparse.Namespace) -> int:
    try:
        settings, api_base = usable_settings()
        conversation = pick(args.dataset, args.conversation)
        await probe(api_base)
    except (ConfigurationError, NoServer) as error:
        print(f"smoke-local: {error}", file=sys.stderr)
        return 2
    mode = structured_output(settings.llm_mode, settings.llm_model, api_base)
    print(
        f"{settings.llm_model} at {api_base}, mode {mode} "
        f"(LLM_MODE={settings.llm_mode}); conversation {conversation.id}: "
        f"{len(conversation.turns)} turns, {conversation.title}"
    )
    return await run(settings, conversation)


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
