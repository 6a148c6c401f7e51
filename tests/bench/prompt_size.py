"""What every extraction sends and gets back, lean schema against full.

Run `python -m tests.bench.prompt_size`.

Prints characters and tokens of the fixed part (system prompt + the tool definition instructor
sends, the part a provider can cache), of the reply that says nothing (small talk), and of a
typical reply (three dimensions, two insights, a stage). Tokens come from
`litellm.token_counter` (tiktoken's cl100k_base for these models: Claude's own tokenizer
counts somewhat more). Also prints what the fixed part costs per million calls on the default
model, uncached and read from Anthropic's prompt cache.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import instructor
import litellm
import pydantic

from schemas import BANTSignals, DealStage, MEDDICSignals, QualificationExtraction
from worker.extract.lean import ExtractedSignals, from_extraction
from worker.extract.pricing import listed_prices
from worker.extract.prompt import SYSTEM_PROMPTS, ResponseSchema
from worker.settings import Settings

MODEL = Settings().llm_model
ANTHROPIC_MIN_CACHEABLE_TOKENS = 1024  # Sonnet; a shorter prefix is never cached

TYPICAL = QualificationExtraction(
    bant=BANTSignals(
        budget_identified=True,
        budget_confidence=0.85,
        budget_evidence=["We have a budget of around $50K for this, approved by our CFO."],
        budget_range="$50k, approved",
        authority_identified=True,
        authority_confidence=0.7,
        authority_evidence=["approved by our CFO"],
        authority_role="CFO",
    ),
    meddic=MEDDICSignals(
        decision_criteria=["Salesforce integration", "SSO"],
        decision_criteria_confidence=0.8,
        decision_criteria_evidence=["It must integrate with Salesforce and support SSO."],
    ),
    overall_confidence=0.45,
    key_insights=["Budget approved by the CFO", "Salesforce and SSO are must-haves"],
    recommended_next_questions=["Who else signs off besides the CFO?"],
    suggested_stage=DealStage.QUALIFICATION,
    stage_reason="Budget and decision criteria are known.",
)


def tokens(text: str) -> int:
    counted: int = litellm.token_counter(model=MODEL, text=text)
    return counted


def tool_definition(model: type[pydantic.BaseModel]) -> str:
    function = instructor.response_schema(model).openai_schema
    return json.dumps({"type": "function", "function": function})


def reply(schema: ResponseSchema, extraction: QualificationExtraction) -> str:
    """Every field filled in, as models tend to: the full schema's 50 signal fields, the lean
    schema's listed dimensions only."""
    if schema == "lean":
        return from_extraction(extraction).model_dump_json()
    return extraction.model_dump_json()


def measure(schema: ResponseSchema) -> dict[str, tuple[int, int]]:
    model = ExtractedSignals if schema == "lean" else QualificationExtraction
    system, tool = SYSTEM_PROMPTS[schema], tool_definition(model)
    parts = {
        "system prompt": system,
        "tool schema": tool,
        "fixed part": system + tool,
        "empty reply": reply(schema, QualificationExtraction()),
        "typical reply": reply(schema, TYPICAL),
    }
    return {name: (len(text), tokens(text)) for name, text in parts.items()}


def main() -> None:
    results = {schema: measure(schema) for schema in ("full", "lean")}
    print(f"tokens: litellm.token_counter(model={MODEL!r})\n")
    print("| part | full chars | full tokens | lean chars | lean tokens |")
    print("|---|---:|---:|---:|---:|")
    for part in results["lean"]:
        full, lean = results["full"][part], results["lean"][part]
        print(f"| {part} | {full[0]:,} | {full[1]:,} | {lean[0]:,} | {lean[1]:,} |")
    prices = listed_prices(MODEL)
    print()
    for schema, parts in results.items():
        fixed = parts["fixed part"][1]
        cacheable = fixed >= ANTHROPIC_MIN_CACHEABLE_TOKENS
        uncached = fixed * prices["input"] * 1_000_000
        cached = fixed * prices["cache_read"] * 1_000_000
        print(
            f"{schema}: fixed part ${uncached:,.2f} per million calls uncached, "
            f"${cached:,.2f} read from the cache "
            f"({'cacheable' if cacheable else 'below the 1,024-token minimum: not cacheable'})"
        )


if __name__ == "__main__":
    main()
