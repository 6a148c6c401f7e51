"""Real PostgreSQL and a real Kafka-protocol broker for the tests.

Where they come from, in order: the environment (`DATABASE_URL`, `KAFKA_BOOTSTRAP_SERVERS`),
testcontainers when a Docker engine answers, else the embedded stack started for the session.
Each test gets its own database, cloned from a migrated template (fast: no migration per test).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio

from tests.fakes.llm_server import FakeLLMServer
from tests.harness import Topics, WorkerProcess, worker_env
from worker.bootstrap import Components, bootstrap
from worker.qualify.repository import ConversationStateRepository
from worker.settings import Settings
from worker.store.database import Database
from worker.store.postgres import create_pool, migrate


def docker_engine_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:  # no engine, no socket, no permission: all mean "not here"
        return False
    return True


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def postgres_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("DATABASE_URL"):
        yield url
    elif docker_engine_available():
        # testcontainers 4.15: the modules live under testcontainers.community (the old paths warn).
        from testcontainers.community.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield container.get_connection_url()
    else:
        from devtools.stack import start_postgres

        server = start_postgres(tmp_path_factory.mktemp("postgres"), durable=False)
        try:
            yield server.url
        finally:
            server.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if servers := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield servers
    elif docker_engine_available():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft() as container:
            yield container.get_bootstrap_server()
    else:
        from devtools.stack import start_broker

        broker = start_broker(tmp_path_factory.mktemp("broker"))
        try:
            yield broker.bootstrap_servers
        finally:
            broker.stop()


@contextlib.asynccontextmanager
async def scratch_database(
    server_url: str, prefix: str, *, template: str | None = None
) -> AsyncIterator[str]:
    """A database created for the block (cloned from `template` if given), dropped after it."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    clone = f' TEMPLATE "{template}"' if template else ""
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"{clone}')
        yield name
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest_asyncio.fixture(scope="session")
async def template_database(postgres_server_url: str) -> AsyncIterator[str]:
    """A migrated database that every test's database is cloned from."""
    async with scratch_database(postgres_server_url, "qw_template") as name:
        conn = await asyncpg.connect(with_database(postgres_server_url, name))
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield name


@pytest_asyncio.fixture
async def database_url(postgres_server_url: str, template_database: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test, dropped afterwards."""
    async with scratch_database(postgres_server_url, "qw_test", template=template_database) as name:
        yield with_database(postgres_server_url, name)


@pytest_asyncio.fixture
async def empty_database_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A fresh database with no migrations applied."""
    async with scratch_database(postgres_server_url, "qw_empty") as name:
        yield with_database(postgres_server_url, name)


@pytest_asyncio.fixture
async def components(database_url: str) -> AsyncIterator[Components]:
    """The database as the worker opens it, and what is built on it: the app's `bootstrap`."""
    settings = Settings(
        database_url=database_url, db_role="qualification_worker", update_topic="updates"
    )
    async with bootstrap(settings, pool_size=20) as built:
        yield built


@pytest.fixture
def pool(components: Components) -> asyncpg.Pool:
    """Connections as the worker runs them: role qualification_worker, row-level security on."""
    return components.database.pool


@pytest_asyncio.fixture
async def owner_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """Connections as the tables' owner, for setting up and checking across tenants."""
    pool = await create_pool(database_url, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def database(components: Components) -> Database:
    """The unit of work over `pool`, as the worker builds it."""
    return components.database


@pytest.fixture
def repository(components: Components) -> ConversationStateRepository:
    return components.repository()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest_asyncio.fixture
async def fake_llm() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer() as server:
        yield server


@pytest_asyncio.fixture
async def topics(kafka_bootstrap_servers: str) -> Topics:
    created = Topics.unique()
    await created.create(kafka_bootstrap_servers)
    return created


@pytest.fixture
def start_worker(
    tmp_path: Path,
    database_url: str,
    kafka_bootstrap_servers: str,
    topics: Topics,
    fake_llm: FakeLLMServer,
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., WorkerProcess]]:
    """Starts `python -m worker run` subprocesses for this test; stops them afterwards and
    prints their logs when the test failed."""
    started: list[WorkerProcess] = []

    def start(**extra_env: str) -> WorkerProcess:
        env = worker_env(
            database_url=database_url,
            bootstrap_servers=kafka_bootstrap_servers,
            topics=topics,
            llm_base_url=fake_llm.base_url,
            **extra_env,
        )
        process = WorkerProcess(env=env, log_path=tmp_path / f"worker-{len(started)}.log")
        started.append(process.start())
        return process

    yield start
    for process in started:
        if process.alive:
            process.stop()
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            print(f"--- {process.log_path.name} ---\n{process.log_text()[-5000:]}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
