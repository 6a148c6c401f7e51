"""Each labelled conversation through the worker's own unit of work, on a real PostgreSQL.

Per run (a model and a batch size): a fresh tenant per conversation, its turns published to the
service as `ConversationTurn`s in batches of N (or all at once), exactly as the consumer hands
them over, then the final state read back and scored. The extractor is wrapped to count calls,
tokens and cost; nothing else differs from `python -m worker run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from devtools.evaluation.dataset import Dataset, LabelledConversation
from devtools.evaluation.scoring import (
    ConversationScore,
    Summary,
    score_conversation,
    summarize,
)
from schemas import (
    Channel,
    ConversationState,
    ConversationTurn,
    DealStage,
    NextStage,
    QualificationState,
)
from worker.bootstrap import bootstrap, build_service
from worker.errors import ConfigurationError, TransientError
from worker.extract.port import ExtractionResult, ExtractorDecorator, TurnText
from worker.qualify.repository import ConversationStateRepository
from worker.qualify.service import QualificationService
from worker.settings import Settings
from worker.store.database import Database
from worker.store.postgres import migrate_database

TURN_SPACING = timedelta(minutes=3)  # when the dataset gives no occurred_at
CONTACT_EMAIL = "prospect@example.com"
MAX_CONVERSATIONS_IN_FLIGHT = 16  # bounded further by LLM_CONCURRENCY
PROGRESS_EVERY = 10  # conversations between progress lines on stderr


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """One evaluated configuration: a model and how many turns each batch carries."""

    model: str
    per_batch: int | None  # None: all turns of a conversation in one batch

    @property
    def mode(self) -> str:
        return "all" if self.per_batch is None else str(self.per_batch)

    @property
    def label(self) -> str:
        return f"{self.model} per-batch={self.mode}"


@dataclass(kw_only=True)
class ExtractorUsage:
    calls: int = 0
    failed: int = 0
    llm_requests: int = 0  # re-asks included
    prompt_tokens: int = 0
    completion_tokens: int = 0
    costs: list[float | None] = field(default_factory=list)
    evidence_dropped: int = 0
    seconds: float = 0.0

    @property
    def cost_usd(self) -> float | None:
        """The sum, or None (unknown) when any call's cost was unknown: never 0 for unknown."""
        if any(cost is None for cost in self.costs):
            return None
        return sum(cost for cost in self.costs if cost is not None)

    @property
    def microseconds_per_call(self) -> float | None:
        return self.seconds / self.calls * 1e6 if self.calls else None


@dataclass(kw_only=True)
class CountingExtractor(ExtractorDecorator):
    """The `Extractor` it wraps, unchanged, counting what each call cost."""

    usage: ExtractorUsage = field(default_factory=ExtractorUsage)

    async def extract_signals(
        self,
        turns: Sequence[TurnText],
        existing_state: QualificationState,
        current_stage: DealStage,
        *,
        next_stage: NextStage | None = None,
    ) -> ExtractionResult:
        started = time.perf_counter()
        result = await self.inner.extract_signals(
            turns, existing_state, current_stage, next_stage=next_stage
        )
        self._count(result, time.perf_counter() - started)
        return result

    def _count(self, result: ExtractionResult, seconds: float) -> None:
        usage = self.usage
        usage.calls += 1
        usage.failed += result.status != "ok"
        usage.llm_requests += result.attempts
        usage.prompt_tokens += result.prompt_tokens
        usage.completion_tokens += result.completion_tokens
        usage.costs.append(result.cost_usd)
        usage.evidence_dropped += result.evidence_dropped
        usage.seconds += seconds


@dataclass(kw_only=True)
class RunResult:
    spec: RunSpec
    scores: list[ConversationScore]
    usage: ExtractorUsage
    seconds: float

    @property
    def summary(self) -> Summary:
        return summarize(self.scores)


def counted_service(
    settings: Settings, database: Database
) -> tuple[QualificationService, CountingExtractor]:
    """The worker's own service (`build_service`), its extractor wrapped to count the calls."""
    service = build_service(settings, database)
    counting = CountingExtractor(inner=service.extractor)
    return replace(service, extractor=counting), counting


@contextlib.asynccontextmanager
async def evaluation_database() -> AsyncIterator[str]:
    """`DATABASE_URL` when set, else an embedded PostgreSQL in a temporary directory; migrated."""
    if url := os.environ.get("DATABASE_URL"):
        await _migrate(url)
        yield url
        return
    from devtools.stack import StackError, start_postgres

    with tempfile.TemporaryDirectory(prefix="qw-eval-") as directory:
        starting = asyncio.ensure_future(
            asyncio.to_thread(start_postgres, Path(directory), durable=False)
        )
        try:
            # Shielded: a stop (SIGTERM, Ctrl-C) while the server starts cannot stop the
            # thread, so wait for it and stop the server it started before leaving.
            server = await asyncio.shield(starting)
        except asyncio.CancelledError:
            with contextlib.suppress(StackError):
                await asyncio.to_thread((await starting).stop)
            raise
        except StackError as error:
            first_line = str(error).splitlines()[0]
            raise ConfigurationError(
                f"cannot start the embedded PostgreSQL: {first_line}"
            ) from None
        try:
            await _migrate(server.url)
            yield server.url
        finally:
            await asyncio.to_thread(server.stop)


async def _migrate(url: str) -> None:
    await migrate_database(url)


async def run_all(
    dataset: Dataset,
    specs: Sequence[RunSpec],
    settings: Settings,
    database_url: str,
    *,
    progress: Callable[[str], None] | None = None,
) -> list[RunResult]:
    in_flight = min(MAX_CONVERSATIONS_IN_FLIGHT, settings.llm_concurrency)
    size = in_flight + 2
    scratch = settings.model_copy(update={"database_url": database_url})
    async with bootstrap(scratch, pool_size=size) as components:
        return [
            await run_one(
                dataset, spec, settings, components.database, in_flight=in_flight, progress=progress
            )
            for spec in specs
        ]


async def run_one(
    dataset: Dataset,
    spec: RunSpec,
    settings: Settings,
    database: Database,
    *,
    in_flight: int,
    progress: Callable[[str], None] | None = None,
) -> RunResult:
    run_settings = settings.model_copy(update={"llm_model": spec.model})
    service, extractor = counted_service(run_settings, database)
    repository = ConversationStateRepository(database=database, update_topic=settings.update_topic)
    slots = asyncio.Semaphore(in_flight)
    done = 0
    total = len(dataset.conversations)
    started = time.perf_counter()

    async def one(conversation: LabelledConversation) -> ConversationScore:
        nonlocal done
        async with slots:
            final = await replay(conversation, service, repository, spec.per_batch)
        done += 1
        if progress is not None and (done % PROGRESS_EVERY == 0 or done == total):
            progress(f"eval {spec.label}: {done}/{total} conversations")
        return score_conversation(conversation.id, conversation.expect, final)

    scores = await asyncio.gather(*(one(c) for c in dataset.conversations))
    return RunResult(
        spec=spec,
        scores=list(scores),
        usage=extractor.usage,
        seconds=time.perf_counter() - started,
    )


async def replay(
    conversation: LabelledConversation,
    service: QualificationService,
    repository: ConversationStateRepository,
    per_batch: int | None,
) -> ConversationState:
    """The conversation's turns through `process_batch`, N at a time; its final state."""
    turns = conversation_turns(conversation, tenant_id=uuid.uuid4(), now=datetime.now(UTC))
    size = per_batch or len(turns)
    for start in range(0, len(turns), size):
        outcome = await service.process_batch(turns[start : start + size])
        if refused := [c.rejected for c in outcome.conversations if c.rejected is not None]:
            raise TransientError(
                f"conversation {conversation.id}: the database refused it: {refused[0]}"
            )
    key = turns[0].key
    state = await repository.get_state(key.tenant_id, key.account_id, key.contact_id)
    if state is None:  # cannot happen once a turn is stored; an empty state scores as nothing
        return ConversationState(
            tenant_id=key.tenant_id,
            account_id=key.account_id,
            contact_id=key.contact_id,
            contact_email=CONTACT_EMAIL,
        )
    return state


def conversation_turns(
    conversation: LabelledConversation, *, tenant_id: uuid.UUID, now: datetime
) -> list[ConversationTurn]:
    """The labelled turns as the consumer would decode them; unset times end a little before
    `now`, TURN_SPACING apart, so no inactivity rule sees an old conversation."""
    first = now - TURN_SPACING * len(conversation.turns)
    return [
        ConversationTurn(
            event_id=uuid.uuid4(),
            tenant_id=tenant_id,
            account_id=f"eval-{conversation.id}"[:100],
            contact_id="prospect",
            contact_email=CONTACT_EMAIL,
            channel=turn.channel or Channel.CHAT,
            speaker=turn.speaker,
            text=turn.text,
            occurred_at=turn.occurred_at or first + TURN_SPACING * index,
            sequence=index,
        )
        for index, turn in enumerate(conversation.turns)
    ]


def print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
