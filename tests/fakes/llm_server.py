"""A fake LLM server speaking OpenAI's chat completions and Anthropic's Messages API.

It runs in-process (`async with FakeLLMServer() as server:`) or as a subprocess
(`python -m tests.fakes.llm_server --port 0 --print-port [--latency-ms N] [--reply echo|empty]`,
or `with subprocess_server() as base_url:`), always on 127.0.0.1.
The worker reaches it through the real LiteLLM client with `LLM_MODEL=openai/<name>` and
`LLM_API_BASE=server.base_url` (`.../v1`), or with `LLM_MODEL=anthropic/<name>` and
`LLM_API_BASE=server.anthropic_base_url` (no `/v1`: LiteLLM appends `/v1/messages`), so
instructor, LiteLLM, the provider SDK path and HTTP are all real.

Replies are scripted per test: `server.script(reply, reply, ...)` queues replies that are used
in order, one per request; when the queue is empty the default reply is built from the request
(`reply_builder`, or a fixed, valid, empty extraction; `echo_extraction` quotes the first
prospect sentence as a need, and is the subprocess default). Every request body is recorded.

Extractions are written in the full `QualificationExtraction` shape; a dict reply follows the
schema the request SENT: when that is the worker's lean `ExtractedSignals` (a `signals`
property), the dict is rewritten into it (`lean_arguments`), so tests read the same either way.

Usage is estimated at four characters a token. Prompt caching is simulated: Anthropic caches
the prefix up to the last `cache_control` marker (tools, then system, then messages), OpenAI
the tools plus the system message on its own; a prefix of at least `cache_min_tokens` is
written on first sight and read after (Anthropic: `cache_creation_input_tokens` and
`cache_read_input_tokens`; OpenAI: `prompt_tokens_details.cached_tokens`). With
`context_limit_tokens` set, a larger prompt is answered 400 "context length exceeded" in the
request's format.

Control (subprocess mode, also served in-process):
  POST /_control {"mode": "ok"} | {"mode": "error", "status": 500} | {"mode": "hang"}
                 | {"latency_ms": 20} | {"context_limit_tokens": 4000}
                                            switch the default behaviour
  GET  /_stats   {"requests": n, "prompt_tokens": n, "completion_tokens": n,
                  "cache_read_tokens": n, "cache_write_tokens": n, "mode": ...}
  POST /_reset   clear the recorded requests, counters, cache and script
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
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

from schemas.dimensions import DIMENSIONS, DimensionSpec

JsonObject = dict[str, Any]
CACHE_MIN_TOKENS = 1024  # Anthropic's minimum cacheable prefix (Sonnet); OpenAI's too

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
    """`prompt_tokens` counts all input tokens, the cached ones included (OpenAI's way)."""

    prompt_tokens: int
    completion_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def as_json(self) -> JsonObject:
        total = self.prompt_tokens + self.completion_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": total,
            "prompt_tokens_details": {"cached_tokens": self.cache_read_tokens},
        }

    def as_anthropic_json(self) -> JsonObject:
        # Anthropic's input_tokens are the ones after the last cache breakpoint only.
        fresh = self.prompt_tokens - self.cache_read_tokens - self.cache_write_tokens
        return {
            "input_tokens": max(fresh, 0),
            "output_tokens": self.completion_tokens,
            "cache_creation_input_tokens": self.cache_write_tokens,
            "cache_read_input_tokens": self.cache_read_tokens,
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
    """The natural reply carrying `extraction`: a tool call if tools were offered, else JSON,
    in the shape of the schema the request sent."""
    shaped = shaped_for(extraction, request)
    if request.get("tools"):
        return ToolCallReply(arguments=shaped)
    return ContentReply(content=json.dumps(shaped))


# --- what the request sent --------------------------------------------------------------------


def content_text(content: Any) -> str:
    """A message's text: a string, or the text of its content blocks."""
    if isinstance(content, list):
        return "\n".join(
            str(block.get("text") or "") for block in content if isinstance(block, dict)
        )
    return str(content or "")


def request_text(request: JsonObject) -> str:
    """All prompt text: the system prompt (Anthropic keeps it apart) and every message."""
    parts = [content_text(request.get("system"))]
    parts += [content_text(message.get("content")) for message in request.get("messages", [])]
    return "\n".join(part for part in parts if part)


def tool_parameters(request: JsonObject) -> JsonObject:
    tools = request.get("tools") or [{}]
    tool = tools[0]
    parameters: JsonObject = tool.get("input_schema") or tool.get("function", {}).get(
        "parameters", {}
    )
    return parameters


def sends_lean_schema(request: JsonObject) -> bool:
    """The worker's lean `ExtractedSignals` (a `signals` list), not the full extraction."""
    if request.get("tools"):
        return "signals" in tool_parameters(request).get("properties", {})
    return '"signals"' in request_text(request)  # JSON mode: the schema is in the prompt


def shaped_for(extraction: JsonObject, request: JsonObject) -> JsonObject:
    if sends_lean_schema(request) and ("bant" in extraction or "meddic" in extraction):
        return lean_arguments(extraction)
    return extraction


def lean_arguments(full: JsonObject) -> JsonObject:
    """A full-shaped extraction dict as the lean one, value for value (invalid values too, so
    a test of re-asks on bad output tests the same thing in both shapes)."""
    signals = []
    for dimension in DIMENSIONS:
        signal = _lean_signal(dimension, full.get(dimension.group.value) or {})
        if signal is not None:
            signals.append(signal)
    lean = {key: value for key, value in full.items() if key not in ("bant", "meddic")}
    return {"signals": signals, **lean}


def _lean_signal(dimension: DimensionSpec, group: JsonObject) -> JsonObject | None:
    renames = {
        f"{dimension.name}_identified": "identified",
        dimension.confidence_field: "confidence",
        dimension.evidence_field: "evidence",
    }
    renames |= {value.name: value.slot.name for value in dimension.values}
    found = {lean: group[full] for full, lean in renames.items() if full in group}
    return {"dimension": dimension.name, **found} if found else None


_PROSPECT_TURN = re.compile(r'<turn [^>]*speaker="prospect"[^>]*>\n(?P<text>.*?)\n</turn>', re.S)


def echo_extraction(request: JsonObject) -> JsonObject:
    """A plausible extraction: the first prospect sentence of the request, quoted as a need.

    The quote is verbatim, so it survives the extractor's evidence check and changes state:
    enough for end-to-end and reliability runs to see real merges.
    """
    found = _PROSPECT_TURN.search(request_text(request))
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
    return Usage(
        prompt_tokens=estimated_prompt_tokens(request), completion_tokens=len(answer) // 4 + 1
    )


def estimated_prompt_tokens(request: JsonObject) -> int:
    prompt_chars = len(request_text(request)) + len(json.dumps(request.get("tools") or []))
    return prompt_chars // 4 + 1


def cacheable_prefix(request: JsonObject, *, anthropic: bool) -> list[Any]:
    """What the provider would cache. Anthropic: tools, system blocks and message blocks up to
    the last `cache_control` marker. OpenAI (automatic): the tools and the system message."""
    if not anthropic:
        messages = request.get("messages") or []
        system = messages[:1] if messages and messages[0].get("role") == "system" else []
        return [*(request.get("tools") or []), *system] if system else []
    system = request.get("system") or []
    blocks = [*(request.get("tools") or [])]
    blocks += system if isinstance(system, list) else [{"type": "text", "text": system}]
    for message in request.get("messages") or []:
        content = message.get("content")
        blocks += content if isinstance(content, list) else [{"type": "text", "text": content}]
    marked = [
        i for i, block in enumerate(blocks) if isinstance(block, dict) and "cache_control" in block
    ]
    return blocks[: marked[-1] + 1] if marked else []


def prefix_tokens(prefix: list[Any]) -> int:
    # The same estimate as the prompt's: text of blocks, tools as JSON.
    chars = 0
    for item in prefix:
        if isinstance(item, dict) and item.get("type") == "text":
            chars += len(str(item.get("text") or ""))
        elif isinstance(item, dict) and "role" in item:
            chars += len(content_text(item.get("content")))
        else:
            chars += len(json.dumps(item))
    return chars // 4


@dataclass(kw_only=True)
class FakeLLMServer:
    """Scriptable OpenAI-compatible server. `requests` holds each request body, oldest first."""

    host: str = "127.0.0.1"
    port: int = 0
    latency_s: float = 0.0
    reply_builder: ReplyBuilder | None = None
    record_limit: int | None = None  # the subprocess keeps only the latest bodies
    context_limit_tokens: int | None = None  # larger prompts: 400 "context length exceeded"
    # Names what a request is about (e.g. its conversation); `peak_in_flight` then holds, per
    # name, the most requests ever answered at once: two workers extracting one conversation
    # at the same time show up as 2.
    request_key: Callable[[JsonObject], str | None] | None = None
    peak_in_flight: dict[str, int] = field(default_factory=dict)
    _in_flight: dict[str, int] = field(default_factory=dict)
    cache_min_tokens: int = CACHE_MIN_TOKENS
    requests: deque[JsonObject] = field(init=False)
    headers: deque[Mapping[str, str]] = field(init=False)
    paths: deque[str] = field(init=False)  # the path of each recorded request
    mode: JsonObject = field(default_factory=lambda: {"mode": "ok"})
    # When set (in-process only), every reply is held until the test sets this event: what
    # happens while an extraction is in flight (a `forget`, a kill) is then up to the test.
    gate: asyncio.Event | None = None
    received: int = 0  # all requests, also those trimmed from `requests` by record_limit
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    _cached_prefixes: set[str] = field(default_factory=set)
    _script: deque[Reply] = field(default_factory=deque)
    _runner: web.AppRunner | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.requests = deque(maxlen=self.record_limit)
        self.headers = deque(maxlen=self.record_limit)
        self.paths = deque(maxlen=self.record_limit)

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> FakeLLMServer:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/chat/completions", self._chat)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/messages", self._messages)
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
        """For OpenAI-compatible models (`openai/...`)."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """For `anthropic/...` models: LiteLLM appends `/v1/messages` itself."""
        return f"http://{self.host}:{self.port}"

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
        self.paths.clear()
        self._cached_prefixes.clear()
        self.received = self.prompt_tokens = self.completion_tokens = 0
        self.cache_read_tokens = self.cache_write_tokens = 0
        self.mode = {"mode": "ok"}

    # --- handlers ----------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, anthropic=False)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, anthropic=True)

    async def _handle(self, request: web.Request, *, anthropic: bool) -> web.StreamResponse:
        body: JsonObject = await request.json()
        self.received += 1
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        self.paths.append(request.path)
        name = self.request_key(body) if self.request_key is not None else None
        if name is not None:
            self._in_flight[name] = self._in_flight.get(name, 0) + 1
            self.peak_in_flight[name] = max(self.peak_in_flight.get(name, 0), self._in_flight[name])
        try:
            reply = self._next_reply(body)
            await self._wait(self.latency_s + getattr(reply, "delay_s", 0.0))
            if self.gate is not None:
                await self._held(self.gate)
            return await self._respond(reply, body, anthropic=anthropic)
        finally:
            if name is not None:
                self._in_flight[name] -= 1

    def _next_reply(self, body: JsonObject) -> Reply:
        too_long = self._context_error(body)
        if too_long is not None:  # a real provider checks this before anything else
            return too_long
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

    def _context_error(self, body: JsonObject) -> ErrorReply | None:
        if self.context_limit_tokens is None:
            return None
        tokens = estimated_prompt_tokens(body)
        if tokens <= self.context_limit_tokens:
            return None
        return ErrorReply(
            status=400, message=context_error_message(tokens, self.context_limit_tokens)
        )

    async def _wait(self, seconds: float) -> None:
        if seconds > 0:
            # Waiting on the stop event (not a bare sleep) lets stop() end a delay early.
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
            except TimeoutError:
                pass

    async def _held(self, gate: asyncio.Event) -> None:
        """Until the gate opens, or the server stops."""
        opened = asyncio.ensure_future(gate.wait())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({opened, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            opened.cancel()
            stopping.cancel()

    async def _respond(
        self, reply: Reply, body: JsonObject, *, anthropic: bool
    ) -> web.StreamResponse:
        if isinstance(reply, HangReply):
            await self._stopping.wait()
            return web.Response(status=503)
        if isinstance(reply, ErrorReply):
            return _anthropic_error(reply) if anthropic else _error_response(reply)
        if anthropic:
            return web.json_response(self._anthropic_message(reply, body))
        return web.json_response(self._completion(reply, body))

    def _usage(
        self, reply: ToolCallReply | ContentReply, body: JsonObject, answer: str, *, anthropic: bool
    ) -> Usage:
        usage = reply.usage or self._with_cache(estimated_usage(body, answer), body, anthropic)
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.cache_read_tokens += usage.cache_read_tokens
        self.cache_write_tokens += usage.cache_write_tokens
        return usage

    def _with_cache(self, usage: Usage, body: JsonObject, anthropic: bool) -> Usage:
        prefix = cacheable_prefix(body, anthropic=anthropic)
        tokens = min(prefix_tokens(prefix), usage.prompt_tokens)
        if not prefix or tokens < self.cache_min_tokens:
            return usage
        key = json.dumps(prefix, sort_keys=True)
        if key in self._cached_prefixes:
            return dataclasses.replace(usage, cache_read_tokens=tokens)
        self._cached_prefixes.add(key)
        # OpenAI caches silently: it reports reads only.
        return dataclasses.replace(usage, cache_write_tokens=tokens if anthropic else 0)

    def _anthropic_message(
        self, reply: ToolCallReply | ContentReply, body: JsonObject
    ) -> JsonObject:
        content, stop_reason, answer = _anthropic_content(reply, body)
        usage = self._usage(reply, body, answer, anthropic=True)
        return {
            "id": f"msg_fake_{next(self._ids)}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "fake"),
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage.as_anthropic_json(),
        }

    def _completion(self, reply: ToolCallReply | ContentReply, body: JsonObject) -> JsonObject:
        message, finish_reason, answer = _message(reply, body)
        usage = self._usage(reply, body, answer, anthropic=False)
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
        if "context_limit_tokens" in command:
            limit = command.pop("context_limit_tokens")
            self.context_limit_tokens = None if limit is None else int(limit)
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
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "context_limit_tokens": self.context_limit_tokens,
            "mode": self.mode,
            "latency_ms": self.latency_s * 1000,
        }


def _message(reply: ToolCallReply | ContentReply, body: JsonObject) -> tuple[JsonObject, str, str]:
    if isinstance(reply, ContentReply):
        return {"role": "assistant", "content": reply.content}, "stop", reply.content
    text = _arguments_text(reply, body)
    call = {
        "id": "call_fake",
        "type": "function",
        "function": {"name": _tool_name(body), "arguments": text},
    }
    return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls", text


def _anthropic_content(
    reply: ToolCallReply | ContentReply, body: JsonObject
) -> tuple[list[JsonObject], str, str]:
    if isinstance(reply, ContentReply):
        return [{"type": "text", "text": reply.content}], "end_turn", reply.content
    text = _arguments_text(reply, body)
    try:
        tool_input = json.loads(text)
    except json.JSONDecodeError:  # the Messages API has no malformed tool input: say it as text
        return [{"type": "text", "text": text}], "end_turn", text
    block = {"type": "tool_use", "id": "toolu_fake", "name": _tool_name(body), "input": tool_input}
    return [block], "tool_use", text


def _arguments_text(reply: ToolCallReply, body: JsonObject) -> str:
    """The tool call's arguments as sent: raw text as scripted, a dict in the sent schema."""
    arguments = reply.arguments
    return arguments if isinstance(arguments, str) else json.dumps(shaped_for(arguments, body))


def _tool_name(body: JsonObject) -> str:
    tools = body.get("tools") or [{}]
    tool = tools[0]
    name: str = tool.get("name") or tool.get("function", {}).get("name", "extract")
    return name


def context_error_message(tokens: int, limit: int) -> str:
    return (
        f"This model's maximum context length is {limit} tokens. However, your messages "
        f"resulted in {tokens} tokens. Please reduce the length of the messages."
    )


def _error_response(reply: ErrorReply) -> web.Response:
    kind = {429: "rate_limit_error", 400: "invalid_request_error"}.get(reply.status, "server_error")
    code: int | str = reply.status
    if reply.status == 400 and "maximum context length" in reply.message:
        code = "context_length_exceeded"
    payload = {"error": {"message": reply.message, "type": kind, "code": code}}
    return web.json_response(payload, status=reply.status)


_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _anthropic_error(reply: ErrorReply) -> web.Response:
    message = reply.message
    if reply.status == 400 and "maximum context length" in message:
        found = re.findall(r"\d+", message)  # Anthropic words it its own way
        message = f"prompt is too long: {found[1]} tokens > {found[0]} maximum"
    kind = _ANTHROPIC_ERRORS.get(reply.status, "api_error")
    payload = {"type": "error", "error": {"type": kind, "message": message}}
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
