"""What an extraction's tokens cost: LiteLLM's bundled price list, overridable per price.

Unknown stays unknown: a model the list lacks (or prices at 0, which is how the list says it
does not know) has no cost (`None`), never a cost of 0, unless the settings give the prices.
Cache reads and writes are priced apart: a cached prefix read costs a tenth of fresh input at
Anthropic and half at OpenAI, a cache write 1.25 times fresh input at Anthropic.
"""

from __future__ import annotations

import os

# LiteLLM downloads a price list at import unless told to use its bundled copy; set it first.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import functools
from dataclasses import dataclass
from typing import Any

import litellm

PER_MTOK = 1_000_000


@dataclass(frozen=True, kw_only=True)
class TokenUsage:
    """Tokens one extraction was billed for. `prompt_tokens` counts all input tokens, the
    cached ones included (OpenAI's convention, and LiteLLM's for Anthropic too)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def fresh_prompt_tokens(self) -> int:
        return max(self.prompt_tokens - self.cache_read_tokens - self.cache_write_tokens, 0)


@dataclass(frozen=True, kw_only=True)
class TokenPrices:
    """USD per token. A missing cache price falls back to the input price (never to 0): a
    provider that does not price cache writes (OpenAI) bills them as plain input."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None

    def cost(self, usage: TokenUsage) -> float:
        cache_read = self.input if self.cache_read is None else self.cache_read
        cache_write = self.input if self.cache_write is None else self.cache_write
        return (
            usage.fresh_prompt_tokens * self.input
            + usage.cache_read_tokens * cache_read
            + usage.cache_write_tokens * cache_write
            + usage.completion_tokens * self.output
        )


@dataclass(frozen=True, kw_only=True)
class PriceOverrides:
    """Prices from the settings, in USD per million tokens; None: take LiteLLM's."""

    input_per_mtok: float | None = None
    output_per_mtok: float | None = None
    cache_read_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None


def token_prices(model: str, overrides: PriceOverrides | None = None) -> TokenPrices | None:
    """The prices of `model`: each from the overrides if set, else from LiteLLM's list.

    None when the input or the output price is unknown after that."""
    overrides = overrides or PriceOverrides()
    listed = listed_prices(model)
    input_price = _per_token(overrides.input_per_mtok, listed.get("input"))
    output_price = _per_token(overrides.output_per_mtok, listed.get("output"))
    if input_price is None or output_price is None:
        return None
    return TokenPrices(
        input=input_price,
        output=output_price,
        cache_read=_per_token(overrides.cache_read_per_mtok, listed.get("cache_read")),
        cache_write=_per_token(overrides.cache_write_per_mtok, listed.get("cache_write")),
    )


def _per_token(override_per_mtok: float | None, listed: float | None) -> float | None:
    if override_per_mtok is not None:  # an explicit 0 is a price (a self-hosted model)
        return override_per_mtok / PER_MTOK
    return listed


@functools.cache
def listed_prices(model: str) -> dict[str, float]:
    """LiteLLM's prices for `model` (USD per token); a price of 0 there means unknown."""
    try:
        info: Any = litellm.get_model_info(model)
    except Exception:  # LiteLLM raises a plain Exception for a model it does not know
        return {}
    keys = {
        "input": "input_cost_per_token",
        "output": "output_cost_per_token",
        "cache_read": "cache_read_input_token_cost",
        "cache_write": "cache_creation_input_token_cost",
    }
    return {name: float(info[key]) for name, key in keys.items() if info.get(key)}


def cost_usd(
    model: str, usage: TokenUsage, overrides: PriceOverrides | None = None
) -> float | None:
    """The price of `usage`, or None when the price of `model` is unknown."""
    prices = token_prices(model, overrides)
    return None if prices is None else prices.cost(usage)
