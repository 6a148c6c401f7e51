"""Fixtures of the fault-injection suite: more partitions, the quoting fake LLM, and a worker
launcher whose processes are stopped afterwards (their logs printed when the test failed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from devtools.stack import PostgresProcess, start_postgres
from tests.harness import Topics
from tests.reliability.support import DatabaseProbe, QuotingLLM, Workers
from worker.store.postgres import connect, migrate

PARTITIONS = 6  # enough for three workers to each own some


@pytest_asyncio.fixture
async def topics(kafka_bootstrap_servers: str) -> Topics:
    created = Topics.unique()
    await created.create(kafka_bootstrap_servers, partitions=PARTITIONS)
    return created


@pytest_asyncio.fixture
async def llm() -> AsyncIterator[QuotingLLM]:
    server = QuotingLLM()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture
async def probe(database_url: str) -> AsyncIterator[DatabaseProbe]:
    opened = await DatabaseProbe.open(database_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def workers(
    tmp_path: Path,
    database_url: str,
    kafka_bootstrap_servers: str,
    topics: Topics,
    llm: QuotingLLM,
    request: pytest.FixtureRequest,
) -> Iterator[Workers]:
    launcher = Workers(
        log_dir=tmp_path,
        database_url=database_url,
        bootstrap_servers=kafka_bootstrap_servers,
        topics=topics,
        llm_base_url=llm.base_url,
    )
    yield launcher
    launcher.stop_all()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for process in launcher.started:
            print(f"--- {process.log_path.name} ---\n{process.log_text()[-4000:]}")


@pytest_asyncio.fixture
async def own_postgres(tmp_path: Path) -> AsyncIterator[PostgresProcess]:
    """A migrated PostgreSQL server of this test's own, to stop and start (whatever
    DATABASE_URL says: the session's server must not go down under other tests)."""
    server = start_postgres(tmp_path / "pg", durable=False)
    try:
        conn = await connect(server.url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield server
    finally:
        server.stop(mode="immediate")
