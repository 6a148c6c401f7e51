"""What the worker, the operator commands and the tests build from one `Settings` object.

`python -m worker` loads the settings once (worker/__main__.py) and hands them to the command;
`bootstrap(settings)` opens the database they name, as the worker's role, and builds what runs
on it, so a setting means the same thing in the app (worker/app.py), in every tool and in the
tests' fixtures.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from worker.extract.factory import build_extractor
from worker.ops.clock import Clock, utc_now
from worker.qualify.deferred_extraction import DeferredTurnSettings
from worker.qualify.repository import ConversationStateRepository
from worker.qualify.service import QualificationService
from worker.settings import Settings
from worker.store.database import Database, open_database
from worker.store.deferred_extraction import Debounce


@dataclass(frozen=True, kw_only=True)
class Components:
    settings: Settings
    database: Database
    clock: Clock = utc_now  # the one clock of everything built here

    def repository(self) -> ConversationStateRepository:
        return ConversationStateRepository(
            database=self.database, update_topic=self.settings.update_topic, clock=self.clock
        )

    def service(self) -> QualificationService:
        """Built when asked for: with an LLM model its adapter imports LiteLLM (a second and
        ~130 MB), which commands that only read states never need."""
        return build_service(self.settings, self.database, clock=self.clock)


def build_service(
    settings: Settings, database: Database, *, clock: Clock = utc_now
) -> QualificationService:
    """The one place a service is assembled: the app, `reextract`, `eval` and the tests."""
    return QualificationService(
        database=database,
        extractor=build_extractor(settings),
        update_topic=settings.update_topic,
        concurrency=settings.llm_concurrency,
        criteria=settings.stage_criteria,
        debounce=debounce_of(settings),
        deferred=DeferredTurnSettings(
            turn_topic=settings.turn_topic,
            dlq_topic=settings.dlq_topic,
            max_turn_chars=settings.max_turn_chars,
        ),
        clock=clock,
    )


def debounce_of(settings: Settings) -> Debounce | None:
    """None with EXTRACT_DEBOUNCE_MS=0: each batch extracts its turns at once."""
    if settings.extract_debounce_ms == 0:
        return None
    return Debounce(
        quiet=timedelta(milliseconds=settings.extract_debounce_ms),
        max_wait=timedelta(milliseconds=settings.extract_max_wait_ms),
    )


@contextlib.asynccontextmanager
async def bootstrap(
    settings: Settings, *, pool_size: int | None = None
) -> AsyncIterator[Components]:
    """The database of `settings` for the block's lifetime, with `pool_size` connections
    (default `DB_POOL_SIZE`), and what is built on it."""
    size = settings.db_pool_size if pool_size is None else pool_size
    async with open_database(
        settings.database_url, max_size=size, role=settings.db_role
    ) as database:
        yield Components(settings=settings, database=database)
