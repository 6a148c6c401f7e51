"""An interrupted `eval` stops what it started: its embedded PostgreSQL and its temporary folder.

Python ends a process at once on SIGTERM, and a Ctrl-C while a thread starts the server used to
leave that server running (parent 1) with its data folder behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.harness import REPO_ROOT
from tests.waiting import eventually

EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}


def eval_folders(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("qw-eval-*"))


def server_ready(tmp: Path) -> bool:
    return any(tmp.glob("qw-eval-*/**/postmaster.pid"))


def processes_in(tmp: Path) -> list[str]:
    """Command lines of the live processes that name `tmp` (a server's data folder is there)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:  # it ended while we looked
            continue
        line = b" ".join(words).decode(errors="replace")
        if str(tmp) in line and "worker eval" not in line:
            found.append(line)
    return found


def default_sigint() -> None:
    """In the child before exec: SIGINT as a terminal would deliver it. A test run started in the
    background has SIGINT ignored, and an ignored signal stays ignored across exec."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def start_eval(tmp: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}  # the embedded server
    env["TMPDIR"] = str(tmp)
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "worker", "eval", "--out", str(tmp / "out")),
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        preexec_fn=default_sigint,
    )


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
@pytest.mark.parametrize("moment", ["server_starting", "server_running"])
async def test_an_interrupted_eval_leaves_no_server_and_no_folder(
    tmp_path: Path, stop: signal.Signals, moment: str
) -> None:
    process = await start_eval(tmp_path)
    if moment == "server_starting":  # the temporary folder exists, the server is not up yet
        await eventually(
            lambda: asyncio.to_thread(eval_folders, tmp_path), bool, what="eval's folder"
        )
    else:
        await eventually(
            lambda: asyncio.to_thread(server_ready, tmp_path),
            bool,
            within_s=120,
            what="eval's PostgreSQL",
        )
    process.send_signal(stop)

    assert await asyncio.wait_for(process.wait(), timeout=120) == EXIT_CODES[stop]
    assert eval_folders(tmp_path) == []
    assert processes_in(tmp_path) == []
