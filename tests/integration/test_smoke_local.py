"""`make smoke-local` (tests/bench/smoke_local.py) against the fake OpenAI-compatible server:
JSON mode end to end through the worker's service, and a clear line when no server answers."""

from __future__ import annotations

import socket

import pytest

from tests.bench.smoke_local import main_async, parse_args
from tests.fakes.llm_server import FakeLLMServer, echo_extraction


def a_closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens once the probe socket is closed


def name_the_server(monkeypatch: pytest.MonkeyPatch, api_base: str) -> None:
    for name, value in {
        "LLM_MODEL": "openai/qwen",
        "LLM_API_BASE": api_base,
        "LLM_TRANSPORT_ATTEMPTS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("LLM_MODE", raising=False)  # the default: auto
    monkeypatch.delenv("LLM_API_KEY", raising=False)  # a local server asks for none


async def test_no_server_is_one_clear_line_and_exit_status_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api_base = f"http://127.0.0.1:{a_closed_port()}/v1"
    name_the_server(monkeypatch, api_base)

    status = await main_async(parse_args([]))

    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith(f"smoke-local: no server answers at {api_base}")
    assert err.count("\n") == 1


async def test_a_self_hosted_server_gets_json_mode_and_the_findings_are_printed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakeLLMServer(reply_builder=echo_extraction) as server:
        name_the_server(monkeypatch, server.base_url)

        status = await main_async(parse_args([]))

    out = capsys.readouterr().out
    assert status == 0, out
    request = server.requests[0]
    assert request["response_format"] == {"type": "json_object"}
    assert "tools" not in request
    assert '"signals"' in request["messages"][0]["content"]  # the schema, in the system prompt
    assert "mode json (LLM_MODE=auto)" in out
    need = next(line for line in out.splitlines() if line.startswith("need "))
    assert need.split()[2] == "yes"  # the fake quoted a prospect sentence as the need
