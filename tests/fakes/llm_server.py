"""A fake OpenAI-compatible chat-completions server, for tests and the benchmark.

It runs in-process (`async with FakeLLMServer() as server:`) or as a subprocess
(`python -m tests.fakes.llm_server --port 0 --print-port [--latency-ms N] [--reply echo|empty]`,
or `with subprocess_server() as base_url:`), always on 127.0.0.1.
The worker reaches it through the real LiteLLM client with `LLM_MODEL=openai/<name>` and
`LLM_API_BASE=server.base_url`, so instructor, LiteLLM, the OpenAI SDK and HTTP are all real.

Replies are scripted per test: `server.script(reply, reply, ...)` queues replies that are used
in order, one per request; when the queue is empty the default reply is built from the request
(`reply_builder`, or a fixed, valid, empty extraction; `echo_extraction` quotes the first
prospect sentence as a need, and is the subprocess default). Every request body is recorded.

Control (subprocess mode, also served in-process):
  POST /_control {"mode": "ok"} | {"mode": "error", "status": 500} | {"mode": "hang"}
                 | {"latency_ms": 20}       switch the default behaviour
  GET  /_stats   {"requests": n, "prompt_tokens": n, "completion_tokens": n, "mode": ...}
  POST /_reset   clear the recorded requests, counters and script
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

JsonObject = dict[str, Any]

# A valid QualificationExtraction that claims nothing: what a model says about small talk.
EMPTY_EXTRACTION: JsonObject = {
    "bant": {},
    "meddic": {},
    "overall_confidence": 0.0,
    "key_insights": [],
    "recommended_next_questions": [],
    "suggested_stage": None,
    "stage_reason": None,
}


@dataclass(frozen=True, kw_only=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    def as_json(self) -> JsonObject:
        total = self.prompt_tokens + self.completion_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": total,
        }


@dataclass(frozen=True, kw_only=True)
class ToolCallReply:
    """The assistant calls the request's (first) tool with `arguments` (a dict, or raw text)."""

    arguments: JsonObject | str
    usage: Usage | None = None
    delay_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class ContentReply:
    """The assistant answers with message content: JSON text for json mode, or anything."""

    content: str
    usage: Usage | None = None
    delay_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class ErrorReply:
    status: int
    message: str = "scripted failure"
    delay_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class HangReply:
    """Never answers (until the server stops): for client timeouts."""


Reply = ToolCallReply | ContentReply | ErrorReply | HangReply
ReplyBuilder = Callable[[JsonObject], "Reply | JsonObject"]


def extraction_reply(extraction: JsonObject, request: JsonObject) -> Reply:
    """The natural reply carrying `extraction`: a tool call if tools were offered, else JSON."""
    if request.get("tools"):
        return ToolCallReply(arguments=extraction)
    return ContentReply(content=json.dumps(extraction))


_PROSPECT_TURN = re.compile(r'<turn [^>]*speaker="prospect"[^>]*>\n(?P<text>.*?)\n</turn>', re.S)


def echo_extraction(request: JsonObject) -> JsonObject:
    """A plausible extraction: the first prospect sentence of the request, quoted as a need.

    The quote is verbatim, so it survives the extractor's evidence check and changes state:
    enough for end-to-end and reliability runs to see real merges.
    """
    user = " ".join(str(m.get("content") or "") for m in request.get("messages", []))
    found = _PROSPECT_TURN.search(user)
    if found is None:
        return EMPTY_EXTRACTION
    sentence = re.split(r"(?<=[.!?])\s", found.group("text").strip(), maxsplit=1)[0][:120]
    need = {"need_identified": True, "need_confidence": 0.6, "need_evidence": [sentence]}
    need["need_description"] = sentence
    return {**EMPTY_EXTRACTION, "bant": need, "overall_confidence": 0.2}


REPLY_BUILDERS: dict[str, ReplyBuilder] = {
    "empty": lambda _request: EMPTY_EXTRACTION,
    "echo": echo_extraction,
}


def estimated_usage(request: JsonObject, answer: str) -> Usage:
    # About four characters a token: enough for totals in /_stats and the benchmark.
    prompt_chars = sum(len(str(m.get("content") or "")) for m in request.get("messages", []))
    prompt_chars += len(json.dumps(request.get("tools") or []))
    return Usage(prompt_tokens=prompt_chars // 4 + 1, completion_tokens=len(answer) // 4 + 1)


@dataclass(kw_only=True)
class FakeLLMServer:
    """Scriptable OpenAI-compatible server. `requests` holds each request body, oldest first."""

    host: str = "127.0.0.1"
    port: int = 0
    latency_s: float = 0.0
    reply_builder: ReplyBuilder | None = None
    record_limit: int | None = None  # the subprocess keeps only the latest bodies
    requests: deque[JsonObject] = field(init=False)
    headers: deque[Mapping[str, str]] = field(init=False)
    mode: JsonObject = field(default_factory=lambda: {"mode": "ok"})
    received: int = 0  # all requests, also those trimmed from `requests` by record_limit
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _script: deque[Reply] = field(default_factory=deque)
    _runner: web.AppRunner | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.requests = deque(maxlen=self.record_limit)
        self.headers = deque(maxlen=self.record_limit)

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> FakeLLMServer:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/chat/completions", self._chat)
        app.router.add_post("/_control", self._control)
        app.router.add_post("/_reset", self._reset)
        app.router.add_get("/_stats", self._stats)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._bound_port(site)
        return self

    async def stop(self) -> None:
        self._stopping.set()  # releases hanging handlers so cleanup does not wait for them
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeLLMServer:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @staticmethod
    def _bound_port(site: web.TCPSite) -> int:
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # --- scripting ---------------------------------------------------------------------

    def script(self, *replies: Reply) -> None:
        """Queue replies, used one per request in order before the default applies."""
        self._script.extend(replies)

    @property
    def pending_script(self) -> int:
        return len(self._script)

    def reset(self) -> None:
        self._script.clear()
        self.requests.clear()
        self.headers.clear()
        self.received = self.prompt_tokens = self.completion_tokens = 0
        self.mode = {"mode": "ok"}

    # --- handlers ----------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body: JsonObject = await request.json()
        self.received += 1
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        reply = self._next_reply(body)
        await self._wait(self.latency_s + getattr(reply, "delay_s", 0.0))
        return await self._respond(reply, body)

    def _next_reply(self, body: JsonObject) -> Reply:
        if self._script:
            return self._script.popleft()
        if self.mode["mode"] == "error":
            return ErrorReply(status=int(self.mode.get("status", 500)))
        if self.mode["mode"] == "hang":
            return HangReply()
        return self._default_reply(body)

    def _default_reply(self, body: JsonObject) -> Reply:
        built = self.reply_builder(body) if self.reply_builder else EMPTY_EXTRACTION
        if isinstance(built, dict):
            return extraction_reply(built, body)
        return built

    async def _wait(self, seconds: float) -> None:
        if seconds > 0:
            # Waiting on the stop event (not a bare sleep) lets stop() end a delay early.
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
            except TimeoutError:
                pass

    async def _respond(self, reply: Reply, body: JsonObject) -> web.StreamResponse:
        if isinstance(reply, HangReply):
            await self._stopping.wait()
            return web.Response(status=503)
        if isinstance(reply, ErrorReply):
            return _error_response(reply)
        return web.json_response(self._completion(reply, body))

    def _completion(self, reply: ToolCallReply | ContentReply, body: JsonObject) -> JsonObject:
        message, finish_reason, answer = _message(reply, body)
        usage = reply.usage or estimated_usage(body, answer)
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        return {
            "id": f"chatcmpl-fake-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": usage.as_json(),
        }

    async def _control(self, request: web.Request) -> web.Response:
        command: JsonObject = await request.json()
        if "latency_ms" in command:
            self.latency_s = float(command.pop("latency_ms")) / 1000
        if "mode" in command:
            self.mode = command
        return web.json_response({"mode": self.mode, "latency_ms": self.latency_s * 1000})

    async def _reset(self, _request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"reset": True})

    async def _stats(self, _request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    def stats(self) -> JsonObject:
        return {
            "requests": self.received,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "mode": self.mode,
            "latency_ms": self.latency_s * 1000,
        }


def _message(reply: ToolCallReply | ContentReply, body: JsonObject) -> tuple[JsonObject, str, str]:
    if isinstance(reply, ContentReply):
        return {"role": "assistant", "content": reply.content}, "stop", reply.content
    arguments = reply.arguments
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    call = {
        "id": "call_fake",
        "type": "function",
        "function": {"name": _tool_name(body), "arguments": text},
    }
    return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls", text


def _tool_name(body: JsonObject) -> str:
    tools = body.get("tools") or [{}]
    name: str = tools[0].get("function", {}).get("name", "extract")
    return name


def _error_response(reply: ErrorReply) -> web.Response:
    kind = "rate_limit_error" if reply.status == 429 else "server_error"
    payload = {"error": {"message": reply.message, "type": kind, "code": reply.status}}
    return web.json_response(payload, status=reply.status)


# --- subprocess mode ---------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay of every reply")
    parser.add_argument("--print-port", action="store_true", help="print the bound port first")
    parser.add_argument("--record-limit", type=int, default=100, help="request bodies kept")
    parser.add_argument("--reply", choices=sorted(REPLY_BUILDERS), default="echo")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    server = FakeLLMServer(
        host=args.host,
        port=args.port,
        latency_s=args.latency_ms / 1000,
        record_limit=args.record_limit,
        reply_builder=REPLY_BUILDERS[args.reply],
    )
    await server.start()
    if args.print_port:
        print(server.port, flush=True)  # the parent reads this line to find us
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main(sys.argv[1:])


@contextmanager
def subprocess_server(*, latency_ms: float = 0.0, reply: str = "echo") -> Iterator[str]:
    """Run the server in its own process (its CPU is not ours); yields its base URL."""
    command = [sys.executable, "-m", "tests.fakes.llm_server", "--print-port"]
    command += ["--latency-ms", str(latency_ms), "--reply", reply]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(timeout=10)
