"""`python -m worker migrate` and the migration runner, against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from schemas import DealStage
from worker.errors import MigrationError
from worker.store.postgres import Migration, load_migrations, migrate


async def test_second_migrate_is_a_no_op(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        first = await migrate(conn)
        second = await migrate(conn)
        count = await conn.fetchval("SELECT count(*) FROM tenant.schema_migrations")
    finally:
        await conn.close()
    assert first == [m.version for m in load_migrations()]
    assert second == []
    assert count == len(first)


async def test_concurrent_migrations_apply_each_file_once(empty_database_url: str) -> None:
    conns = [await asyncpg.connect(empty_database_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(conn) for conn in conns))
        rows = await conns[0].fetch("SELECT version FROM tenant.schema_migrations")
    finally:
        for conn in conns:
            await conn.close()
    applied_somewhere = sorted(v for result in results for v in result)
    assert applied_somewhere == sorted(m.version for m in load_migrations())
    assert len(rows) == len(applied_somewhere)


async def test_edited_migration_is_refused(empty_database_url: str) -> None:
    original = [Migration(version="0001", name="t", sql="CREATE TABLE tenant.t (id int);")]
    edited = [Migration(version="0001", name="t", sql="CREATE TABLE tenant.t (id bigint);")]
    conn = await asyncpg.connect(empty_database_url)
    try:
        await migrate(conn, original)
        with pytest.raises(MigrationError, match="edited"):
            await migrate(conn, edited)
    finally:
        await conn.close()


async def test_deal_stage_check_matches_the_enum(pool: asyncpg.Pool) -> None:
    definition = await pool.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conname = 'conversation_states_deal_stage_check'"
    )
    in_database = set(re.findall(r"'(\w+)'::", definition))
    assert in_database == {stage.value for stage in DealStage}


def run_cli(repo_root: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_migrate_from_two_processes_applies_once(
    repo_root: Path, empty_database_url: str
) -> None:
    env = {**os.environ, "DATABASE_URL": empty_database_url}
    command = [sys.executable, "-m", "worker", "migrate"]
    procs = [
        subprocess.Popen(command, cwd=repo_root, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    assert sorted(out.strip() for out in outputs) == sorted(
        [f"applied {', '.join(m.version for m in load_migrations())}", "database is up to date"]
    )
    again = run_cli(repo_root, empty_database_url, "migrate")
    assert again.returncode == 0 and again.stdout.strip() == "database is up to date"


@pytest.mark.parametrize(
    ("database_url", "message"),
    [
        ("notaurl", "not a valid PostgreSQL URL"),
        ("postgresql://postgres:secret@127.0.0.1:1/postgres", "cannot reach PostgreSQL"),
    ],
)
def test_cli_reports_a_bad_database_url_in_one_line(
    repo_root: Path, database_url: str, message: str
) -> None:
    result = run_cli(repo_root, database_url, "migrate")
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and "secret" not in result.stderr
