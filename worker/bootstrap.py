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

from worker.qualify.repository import ConversationStateRepository
from worker.qualify.service import QualificationService, build_service
from worker.settings import Settings
from worker.store.unit_of_work import Database, open_database


@dataclass(frozen=True, kw_only=True)
class Components:
    settings: Settings
    database: Database

    def repository(self) -> ConversationStateRepository:
        return ConversationStateRepository(
            database=self.database, update_topic=self.settings.update_topic
        )

    def service(self) -> QualificationService:
        """Built when asked for: with an LLM model its adapter imports LiteLLM (a second and
        ~130 MB), which commands that only read states never need."""
        return build_service(self.settings, self.database)


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
