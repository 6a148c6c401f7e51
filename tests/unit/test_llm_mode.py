"""LLM_MODE=auto picks the structured-output mode that works for the server in use."""

from __future__ import annotations

import pytest

from worker.extract.llm import QualificationExtractor, structured_output
from worker.settings import Settings


@pytest.mark.parametrize(
    ("model", "api_base", "expected"),
    [
        ("openai/qwen", "http://127.0.0.1:8080/v1", "json"),  # llama.cpp's server
        ("openai/llama-3.1-8b", "https://llm.internal.example/v1", "json"),  # vLLM of one's own
        ("openai/gpt-4o-mini", None, "tools"),  # OpenAI itself
        ("openai/gpt-4o-mini", "https://api.openai.com/v1", "tools"),
        ("anthropic/claude-sonnet-4-5", None, "tools"),
        ("anthropic/claude-sonnet-4-5", "http://127.0.0.1:9000", "tools"),  # a proxy in front
    ],
)
def test_auto_is_json_for_an_openai_compatible_server_of_ones_own(
    model: str, api_base: str | None, expected: str
) -> None:
    assert structured_output("auto", model, api_base) == expected


@pytest.mark.parametrize("mode", ["tools", "json"])
def test_an_explicit_mode_is_kept(mode: str) -> None:
    for model, api_base in [("openai/qwen", "http://127.0.0.1:8080/v1"), ("openai/gpt-4o", None)]:
        assert structured_output(mode, model, api_base) == mode  # type: ignore[arg-type]


def test_the_default_settings_pick_the_mode_from_the_server() -> None:
    local = Settings(llm_model="openai/qwen", llm_api_base="http://127.0.0.1:8080/v1")
    hosted = Settings(llm_model="anthropic/claude-sonnet-4-5")

    assert local.llm_mode == hosted.llm_mode == "auto"
    assert QualificationExtractor.from_settings(local).mode == "json"
    assert QualificationExtractor.from_settings(hosted).mode == "tools"


def test_json_mode_budgets_the_schema_it_sends_in_the_system_prompt() -> None:
    """JSON mode sends the schema indented inside the system prompt: more tokens than the
    tool definition, and the prompt budget counts them."""
    tools = QualificationExtractor(model_name="openai/qwen", mode="tools")
    json_mode = QualificationExtractor(model_name="openai/qwen", mode="json")

    assert json_mode.fixed_prompt_tokens() > tools.fixed_prompt_tokens()
