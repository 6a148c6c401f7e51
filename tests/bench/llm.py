"""The benchmark's fake LLM: tests/fakes/llm_server.py in its own process, plus a per-request log.

    python -m tests.bench.llm --latency-ms 800 --log requests.jsonl

Replies are the fake's `echo` extraction (a verbatim need quote, so states really change and the
known-state summary really grows). For every request it appends one JSON line: prompt tokens (the
fake's four-characters-a-token estimate, the same figure its `usage` reports), how many turns the
prompt carries and their share of the tokens, and the `[cN tK]` markers of those turns (see
workload.py). Prints its port first.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson

from tests.fakes.llm_server import (
    CACHE_MIN_TOKENS,
    FakeLLMServer,
    JsonObject,
    Reply,
    echo_extraction,
    estimated_usage,
)

_MARKER = re.compile(r"\[c(\d+) t(\d+)\]")
_TURN_TAG = "<turn index="


@dataclass(kw_only=True)
class RequestLog:
    out: IO[bytes]

    def __call__(self, body: JsonObject) -> Reply | JsonObject:
        user = "\n".join(str(m.get("content") or "") for m in body.get("messages", []))
        turns = [(int(c), int(t)) for c, t in _MARKER.findall(user)]
        # rfind: the system prompt names the tags too; the block itself comes last.
        start, end = user.rfind("<turns>"), user.rfind("</turns>")
        entry = {
            "at": time.monotonic(),
            "prompt_tokens": estimated_usage(body, "").prompt_tokens,
            # The new turns' share (same estimate); the rest is instructions, schema and state.
            "turns_tokens": (end - start) // 4 if 0 <= start < end else 0,
            "turns": user.count(_TURN_TAG),
            "refs": turns,
        }
        self.out.write(orjson.dumps(entry) + b"\n")
        return echo_extraction(body)


async def serve(latency_ms: float, log_path: Path, cache_min_tokens: int) -> None:
    with log_path.open("wb") as out:
        server = FakeLLMServer(
            latency_s=latency_ms / 1000,
            record_limit=1,
            reply_builder=RequestLog(out=out),
            cache_min_tokens=cache_min_tokens,
        )
        await server.start()
        print(server.port, flush=True)  # the parent reads this line to find us
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        await server.stop()


@dataclass(frozen=True, kw_only=True)
class FakeLLM:
    base_url: str
    process: subprocess.Popen[str]

    @property
    def anthropic_base_url(self) -> str:
        """For `anthropic/...` models: LiteLLM appends `/v1/messages` itself."""
        return self.base_url.removesuffix("/v1")


@contextmanager
def fake_llm(
    *, latency_ms: float, log_path: Path, cache_min_tokens: int = CACHE_MIN_TOKENS
) -> Iterator[FakeLLM]:
    """The fake in its own process (its CPU is not the worker's); stopped on exit. A prompt
    prefix marked for caching is cached from `cache_min_tokens` on (huge: no cache at all)."""
    command = [sys.executable, "-m", "tests.bench.llm", "--latency-ms", str(latency_ms)]
    command += ["--log", str(log_path), "--cache-min-tokens", str(cache_min_tokens)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield FakeLLM(base_url=f"http://127.0.0.1:{port}/v1", process=process)
    finally:
        process.terminate()
        process.wait(timeout=15)


def read_log(path: Path) -> list[JsonObject]:
    with path.open("rb") as lines:
        return [orjson.loads(line) for line in lines if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--cache-min-tokens", type=int, default=CACHE_MIN_TOKENS)
    args = parser.parse_args()
    asyncio.run(serve(args.latency_ms, args.log, args.cache_min_tokens))


if __name__ == "__main__":
    main()
