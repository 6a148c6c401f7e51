"""Named SQL from sql/queries/*.sql, connections and pools, and the migration runner."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import orjson
import structlog

from worker.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    MigrationError,
    RejectedByDatabase,
)

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
_NAME_LINE = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
# Any constant works; it only has to be the same in every process that migrates.
MIGRATION_LOCK_ID = 7_301_000_001

log = structlog.get_logger(__name__)


def parse_queries(text: str) -> dict[str, str]:
    """Split a file of `-- name: foo` blocks into {name: statement}."""
    parts = _NAME_LINE.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = body.strip()
    return queries


@functools.cache
def queries() -> Mapping[str, str]:
    """All named queries, read once."""
    loaded: dict[str, str] = {}
    for path in sorted((SQL_DIR / "queries").glob("*.sql")):
        for name, statement in parse_queries(path.read_text()).items():
            if name in loaded:
                raise ValueError(f"query {name!r} is defined twice ({path.name})")
            loaded[name] = statement
    return loaded


CONNECT_TIMEOUT_S = 10.0

# Errors that say "this data cannot be stored", not "the database is not there": retrying the
# same records would fail the same way and stall their partition.
REFUSED_BY_DATABASE = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)
_UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
)


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    try:
        yield
    except REFUSED_BY_DATABASE as error:
        raise RejectedByDatabase(f"{type(error).__name__}: {error}") from error
    except _UNAVAILABLE as error:
        raise DatabaseUnavailable(f"{type(error).__name__}: {error}") from error


def redact(database_url: str) -> str:
    """host:port/database of a URL, for messages: never the user's password."""
    try:
        parts = urlsplit(database_url)
        return f"{parts.hostname or '?'}:{parts.port or 5432}{parts.path}"
    except ValueError:
        return "<unparseable DATABASE_URL>"


async def init_connection(conn: asyncpg.Connection) -> None:
    """jsonb in and out as Python objects, serialised with orjson."""
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=lambda value: orjson.dumps(value).decode(),
        decoder=orjson.loads,
        format="text",
    )


async def connect(database_url: str) -> asyncpg.Connection:
    """One connection, with connection trouble turned into a one-line WorkerError."""
    try:
        conn = await asyncpg.connect(database_url, timeout=CONNECT_TIMEOUT_S)
    except BaseException as error:
        raise _explain(error, database_url) from error
    await init_connection(conn)
    return conn


async def create_pool(
    database_url: str, *, max_size: int = 10, role: str | None = None
) -> asyncpg.Pool:
    """A pool whose connections run as `role` (a startup parameter, so it survives resets)."""
    server_settings = {"role": role} if role else None
    try:
        return await asyncpg.create_pool(
            database_url,
            min_size=1,
            max_size=max_size,
            init=init_connection,
            timeout=CONNECT_TIMEOUT_S,
            server_settings=server_settings,
        )
    except BaseException as error:
        raise _explain(error, database_url) from error


def _explain(error: BaseException, database_url: str) -> BaseException:
    where = redact(database_url)
    if isinstance(error, (ValueError, asyncpg.ClientConfigurationError)):
        return ConfigurationError(f"DATABASE_URL is not a valid PostgreSQL URL: {error}")
    if isinstance(error, (OSError, TimeoutError)):
        return DatabaseUnavailable(f"cannot reach PostgreSQL at {where}: {error}")
    if isinstance(error, asyncpg.PostgresError):
        return ConfigurationError(f"PostgreSQL at {where} refused the connection: {error}")
    return error  # cancellation and the like pass through unchanged


@dataclass(frozen=True, kw_only=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path = SQL_DIR / "migrations") -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        version, _, name = path.stem.partition("_")
        migrations.append(Migration(version=version, name=name, sql=path.read_text()))
    return migrations


_BOOKKEEPING = """
CREATE SCHEMA IF NOT EXISTS tenant;
CREATE TABLE IF NOT EXISTS tenant.schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


async def migrate(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[str]:
    """Apply pending migrations in order; returns the versions applied (empty when up to date).

    A session advisory lock makes concurrent runs safe: the second waits, then finds nothing
    to do. An applied migration whose file changed is refused rather than silently skipped.
    """
    migrations = load_migrations() if migrations is None else migrations
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        await conn.execute(_BOOKKEEPING)
        applied = await _applied_checksums(conn)
        _refuse_edited(migrations, applied)
        pending = [m for m in migrations if m.version not in applied]
        for migration in pending:
            await _apply(conn, migration)
        return [m.version for m in pending]
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)


async def migrate_database(database_url: str) -> list[str]:
    """`migrate` on its own connection (as the login role: the tables' owner)."""
    conn = await connect(database_url)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


async def _applied_checksums(conn: asyncpg.Connection) -> dict[str, str]:
    rows = await conn.fetch("SELECT version, checksum FROM tenant.schema_migrations")
    return {row["version"]: row["checksum"] for row in rows}


def _refuse_edited(migrations: list[Migration], applied: dict[str, str]) -> None:
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is not None and recorded != migration.checksum:
            raise MigrationError(
                f"migration {migration.version}_{migration.name} was edited after it was applied; "
                "migrations are append-only: add a new one instead"
            )


async def _apply(conn: asyncpg.Connection, migration: Migration) -> None:
    async with conn.transaction():
        await conn.execute(migration.sql)
        await conn.execute(
            "INSERT INTO tenant.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            migration.version,
            migration.name,
            migration.checksum,
        )
    log.info("migration_applied", version=migration.version, migration=migration.name)
