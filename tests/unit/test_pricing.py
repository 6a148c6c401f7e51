"""Prices: LiteLLM's list with cache prices, overrides per price, unknown never 0."""

from __future__ import annotations

import os

import pytest

from worker.errors import ConfigurationError
from worker.extract.pricing import (
    PriceOverrides,
    TokenUsage,
    cost_usd,
    listed_prices,
    token_prices,
)
from worker.settings import Settings, load_settings

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import litellm

USAGE = TokenUsage(
    prompt_tokens=10_000, completion_tokens=500, cache_read_tokens=6_000, cache_write_tokens=2_000
)


def test_default_model_is_listed_with_input_output_and_cache_prices() -> None:
    prices = listed_prices(Settings().llm_model)

    assert set(prices) == {"input", "output", "cache_read", "cache_write"}
    assert all(price > 0 for price in prices.values())


def test_cost_bills_cache_reads_and_writes_at_their_own_prices() -> None:
    model = "anthropic/claude-sonnet-4-5"
    entry = litellm.get_model_info(model)
    expected = (
        2_000 * entry["input_cost_per_token"]  # 10,000 less 6,000 read less 2,000 written
        + 6_000 * entry["cache_read_input_token_cost"]
        + 2_000 * entry["cache_creation_input_token_cost"]
        + 500 * entry["output_cost_per_token"]
    )

    assert cost_usd(model, USAGE) == pytest.approx(expected)
    uncached = TokenUsage(prompt_tokens=10_000, completion_tokens=500)
    assert cost_usd(model, USAGE) < cost_usd(model, uncached)  # type: ignore[operator]


def test_unknown_model_has_unknown_cost_never_zero() -> None:
    assert token_prices("openai/never-heard-of-it") is None
    assert cost_usd("openai/never-heard-of-it", USAGE) is None
    # Listed, but at 0: LiteLLM's way of not knowing.
    assert cost_usd("anthropic/claude-sonnet-4-20250514", USAGE) is None
    # One of the two needed prices is not enough.
    assert cost_usd("openai/never-heard-of-it", USAGE, PriceOverrides(input_per_mtok=1)) is None


def test_overrides_price_an_unknown_model_and_replace_listed_prices() -> None:
    overrides = PriceOverrides(
        input_per_mtok=2, output_per_mtok=10, cache_read_per_mtok=0.2, cache_write_per_mtok=2.5
    )
    expected = (2_000 * 2 + 6_000 * 0.2 + 2_000 * 2.5 + 500 * 10) / 1_000_000

    assert cost_usd("openai/never-heard-of-it", USAGE, overrides) == pytest.approx(expected)
    assert cost_usd("anthropic/claude-sonnet-4-5", USAGE, overrides) == pytest.approx(expected)
    only_output = cost_usd("anthropic/claude-sonnet-4-5", USAGE, PriceOverrides(output_per_mtok=0))
    listed = cost_usd("anthropic/claude-sonnet-4-5", USAGE)
    assert only_output == pytest.approx(listed - 500 * 15 / 1_000_000)  # type: ignore[operator]


def test_free_by_choice_is_zero_and_missing_cache_prices_bill_as_input() -> None:
    free = PriceOverrides(input_per_mtok=0, output_per_mtok=0)
    assert cost_usd("openai/my-llama", USAGE, free) == 0.0
    # OpenAI lists no cache-write price: written tokens cost what fresh input does.
    prices = token_prices("openai/gpt-4o-mini")
    assert prices is not None and prices.cache_write is None
    writes = TokenUsage(prompt_tokens=1000, cache_write_tokens=1000)
    assert cost_usd("openai/gpt-4o-mini", writes) == pytest.approx(1000 * prices.input)


def test_a_negative_price_is_a_one_line_error_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLM_CACHE_READ_PRICE_PER_MTOK", "-1")

    with pytest.raises(ConfigurationError, match=r"^LLM_CACHE_READ_PRICE_PER_MTOK: ") as raised:
        load_settings()
    assert "\n" not in str(raised.value)
