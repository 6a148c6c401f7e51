"""PostgreSQL on 127.0.0.1: start it (initdb the first time), find a running one, stop it.

pg_ctl daemonises postgres, so the server outlives the process that started it; `postmaster.pid`
in its data directory is the source of truth about it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Self

from devtools.stack.postgres_setup import (
    PG_USER,
    initdb,
    pg_bin,
    pg_env,
    prepare_pg_dir,
    run_pg,
    service_account,
    stack_conf,
)
from devtools.stack.processes import (
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    ServerProcess,
    StackError,
    log_tail,
    process_alive,
    start_on_some_port,
    wait_for,
)

ShutdownMode = Literal["smart", "fast", "immediate"]


@dataclass(frozen=True)
class _Postmaster:
    pid: int
    port: int
    ready: bool


def _read_postmaster(pgdata: Path) -> _Postmaster | None:
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        return _Postmaster(pid=int(lines[0]), port=int(lines[3]), ready=lines[7].strip() == "ready")
    except (FileNotFoundError, IndexError, ValueError):
        return None  # absent, or being written by a starting server


def _pg_isready(port: int) -> bool:
    where = ["-h", "127.0.0.1", "-p", str(port), "-U", PG_USER]
    args = [pg_bin("pg_isready"), "-q", "-t", "2", *where]
    return subprocess.run(args, env=pg_env(), check=False).returncode == 0


class PostgresProcess(ServerProcess):
    """One PostgreSQL server on 127.0.0.1:`port` with its data under `data_dir`; restartable."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int,
        durable: bool = True,
        account: pwd.struct_passwd | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self.durable = durable
        self._account = account
        self._pid = 0

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres"

    @property
    def pid(self) -> int:
        """The postmaster's pid (the last one known while stopped)."""
        postmaster = _read_postmaster(self.pgdata)
        return postmaster.pid if postmaster else self._pid

    def is_running(self) -> bool:
        postmaster = _read_postmaster(self.pgdata)
        return postmaster is not None and process_alive(postmaster.pid)

    def start(self) -> Self:
        """Start on the same port and data; return once it accepts TCP connections."""
        if self.is_running():
            return self
        prepare_pg_dir(self.data_dir, self._account)  # pytest resets its tmp root to 0700
        self._write_settings()
        args = [pg_bin("pg_ctl"), "-D", str(self.pgdata), "-l", str(self.log_path), "-w"]
        args += ["-t", str(int(START_TIMEOUT_S)), "start"]
        if run_pg(args, self.data_dir, self._account, START_TIMEOUT_S + 5) != 0:
            raise self._error("did not start")
        # pg_ctl -w trusts postmaster.pid; confirm over TCP, the way every client will connect.
        if not wait_for(lambda: _pg_isready(self.port), time.monotonic() + START_TIMEOUT_S):
            raise self._error("started but does not accept TCP connections")
        self._pid = self.pid
        return self

    def _write_settings(self) -> None:
        path = self.pgdata / "stack.conf"
        path.write_text(stack_conf(self.data_dir, self.port, self.durable))
        if self._account is not None:  # readable by the server whatever our umask is
            os.chown(path, self._account.pw_uid, self._account.pw_gid)

    def stop(self, mode: ShutdownMode = "fast") -> bool:
        """Stop the server (`immediate` simulates a crash); False if it was not running."""
        if not self.is_running():
            return False
        args = [pg_bin("pg_ctl"), "-D", str(self.pgdata), "-m", mode, "-w"]
        args += ["-t", str(int(STOP_TIMEOUT_S)), "stop"]
        if run_pg(args, self.data_dir, self._account, STOP_TIMEOUT_S + 5) != 0:
            self._kill()
        return True

    def _kill(self) -> None:
        postmaster = _read_postmaster(self.pgdata)
        if postmaster is not None and process_alive(postmaster.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(postmaster.pid, signal.SIGKILL)
            wait_for(lambda: not process_alive(postmaster.pid), time.monotonic() + STOP_TIMEOUT_S)

    def _error(self, what: str) -> StackError:
        return StackError(
            f"PostgreSQL in {self.data_dir} (port {self.port}) {what}.\n"
            f"--- pg_ctl.log ---\n{log_tail(self.data_dir / 'pg_ctl.log', 10)}\n"
            f"--- postgres.log ---\n{log_tail(self.log_path)}"
        )


def running_postgres(data_dir: Path) -> PostgresProcess | None:
    """The server already running on `data_dir` (started by any process), if there is one."""
    data_dir = data_dir.resolve()
    postmaster = _read_postmaster(data_dir / "pgdata")
    if postmaster is None or not postmaster.ready or not process_alive(postmaster.pid):
        return None
    conf = data_dir / "pgdata" / "stack.conf"
    durable = not conf.exists() or "fsync = off" not in conf.read_text()
    process = PostgresProcess(
        data_dir, port=postmaster.port, durable=durable, account=service_account()
    )
    process._pid = postmaster.pid
    return process


def start_postgres(
    data_dir: Path, *, port: int | None = None, durable: bool = True
) -> PostgresProcess:
    """Initialise (first time) and start PostgreSQL with data and logs under `data_dir`.

    Trust auth for user `postgres` on 127.0.0.1 only. `durable=False` turns fsync off: for tests.
    """
    data_dir = data_dir.resolve()
    if (existing := running_postgres(data_dir)) is not None:
        raise StackError(f"PostgreSQL already runs on {data_dir} (port {existing.port})")
    account = service_account()
    prepare_pg_dir(data_dir, account)
    initdb(data_dir, account, durable)
    return start_on_some_port(
        lambda p: PostgresProcess(data_dir, port=p, durable=durable, account=account).start(),
        port,
    )
