"""Prometheus metrics of the worker, served on `/metrics` (docs/operations.md).

One process-wide registry (prometheus_client's default, which also carries the process and
Python collectors). The `observe_*` functions take the worker's own result objects, so the
modules that do the work call one function each and never touch prometheus_client.
Labels are closed sets (reasons, models, stages, partitions): never a tenant or conversation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

from schemas import StageChange


class ExtractionFigures(Protocol):
    """What an extraction result reports (worker.extract.port.ExtractionResult)."""

    @property
    def status(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def attempts(self) -> int: ...
    @property
    def prompt_tokens(self) -> int: ...
    @property
    def completion_tokens(self) -> int: ...
    @property
    def cache_read_tokens(self) -> int: ...
    @property
    def cache_write_tokens(self) -> int: ...
    @property
    def cost_usd(self) -> float | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def evidence_dropped(self) -> int: ...


P = "qualification_"
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

TURNS_CONSUMED = Counter(
    f"{P}turns_consumed", "Records read from the input topics (turns and overrides)"
)
TURNS_APPLIED = Counter(f"{P}turns_applied", "Turns stored and counted in a state version")
TURNS_DEFERRED = Counter(
    f"{P}turns_deferred", "Turns stored for a debounced extraction (EXTRACT_DEBOUNCE_MS)"
)
DEFERRED_DEAD_LETTERS = Counter(
    f"{P}deferred_dead_letters",
    "Deferred turns dead-lettered from their stored form (unreadable, refused, conflicts)",
)
DEFERRED_EXTRACTIONS = Counter(
    f"{P}deferred_extractions",
    "Due conversations the extraction scheduler processed",
    ["outcome"],
)
DUPLICATES_SKIPPED = Counter(f"{P}duplicates_skipped", "Turns skipped: event_id already stored")
DEAD_LETTERED = Counter(f"{P}dead_lettered", "Records sent to the DLQ", ["reason"])
DEAD_LETTERS_UNPUBLISHED = Counter(
    f"{P}dead_letters_unpublished",
    "Dead letters the broker refused for good (logged with the record's position, then skipped)",
    ["reason"],
)
BATCHES = Counter(f"{P}batches", "Consumed batches by outcome", ["outcome"])
BATCH_SIZE = Histogram(
    f"{P}batch_size_records", "Records per batch", buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000)
)
BATCH_SECONDS = Histogram(f"{P}batch_duration_seconds", "Time to process a batch", buckets=_SECONDS)
CONSUMER_LAG = Gauge(f"{P}consumer_lag", "Records behind the end", ["topic", "partition"])

LLM_CALLS = Counter(f"{P}llm_calls", "Extractions, one per conversation", ["model", "status"])
LLM_REQUESTS = Counter(f"{P}llm_requests", "Requests sent, re-asks included", ["model"])
LLM_SECONDS = Histogram(
    f"{P}llm_latency_seconds", "Extraction time, retries included", ["model"], buckets=_SECONDS
)
LLM_TOKENS = Counter(
    f"{P}llm_tokens",
    "Tokens billed by kind: prompt (all input, cached included), completion, and the parts of"
    " prompt read from (cache_read) and written to (cache_write) the provider's prompt cache",
    ["model", "kind"],
)
LLM_COST = Counter(f"{P}llm_cost_usd", "Cost of the tokens (models with a known price)", ["model"])
LLM_COST_UNKNOWN = Counter(
    f"{P}llm_cost_unknown", "Extractions whose cost is unknown (no price for the model)", ["model"]
)
LLM_FAILURES = Counter(f"{P}llm_failures", "Extractions that failed open", ["model", "error"])
EVIDENCE_DROPPED = Counter(f"{P}evidence_quotes_dropped", "Quotes not found in the turns")

VERSIONS = Counter(f"{P}state_versions", "State versions committed", ["extraction"])
STAGE_PROPOSALS = Counter(
    f"{P}stage_proposals", "Stage proposals by outcome", ["from_stage", "to_stage", "outcome"]
)
OUTBOX_BACKLOG = Gauge(f"{P}outbox_backlog", "Outbox rows not yet published")
OUTBOX_PUBLISHED = Counter(f"{P}outbox_published", "Update events published")
OUTBOX_NOT_PUBLISHED = Counter(
    f"{P}outbox_not_published",
    "Outbox rows the broker refused while it took others: set aside and retried later",
    ["error"],
)
OUTBOX_LATENCY = Histogram(
    f"{P}outbox_publish_latency_seconds",
    "From the state version's transaction to the broker's acknowledgement",
    buckets=_SECONDS,
)

# Every reason a record can be dead-lettered for shows up as 0 before the first one.
for _reason in ("invalid_json", "invalid_event", "too_large", "conflict"):
    DEAD_LETTERED.labels(reason=_reason)


OVERRIDES_APPLIED = Counter(
    f"{P}overrides_applied", "Overrides applied as a state version", ["actor_type"]
)
SUGGESTIONS_RECORDED = Counter(
    f"{P}suggestions_recorded",
    "The AI's differing views of human-owned dimensions recorded as suggestions",
    ["dimension"],
)


def observe_batch(*, records: int, applied: int, duplicates: int, seconds: float) -> None:
    TURNS_CONSUMED.inc(records)
    TURNS_APPLIED.inc(applied)
    DUPLICATES_SKIPPED.inc(duplicates)
    BATCH_SIZE.observe(records)
    BATCH_SECONDS.observe(seconds)


def observe_dead_letters(reasons: Iterable[str]) -> None:
    for reason in reasons:
        DEAD_LETTERED.labels(reason=reason).inc()


def observe_extraction(result: ExtractionFigures, seconds: float) -> None:
    model = result.model
    LLM_CALLS.labels(model=model, status=result.status).inc()
    LLM_REQUESTS.labels(model=model).inc(result.attempts)
    LLM_SECONDS.labels(model=model).observe(seconds)
    LLM_TOKENS.labels(model=model, kind="prompt").inc(result.prompt_tokens)
    LLM_TOKENS.labels(model=model, kind="completion").inc(result.completion_tokens)
    LLM_TOKENS.labels(model=model, kind="cache_read").inc(result.cache_read_tokens)
    LLM_TOKENS.labels(model=model, kind="cache_write").inc(result.cache_write_tokens)
    if result.cost_usd is not None:
        LLM_COST.labels(model=model).inc(result.cost_usd)
    elif result.attempts:  # tokens were billed at a price we do not know: say so, not 0
        LLM_COST_UNKNOWN.labels(model=model).inc()
    if result.status == "failed":
        LLM_FAILURES.labels(model=model, error=result.error or "unknown").inc()
    EVIDENCE_DROPPED.inc(result.evidence_dropped)


def observe_version(change: StageChange | None, extraction_status: str) -> None:
    VERSIONS.labels(extraction=extraction_status).inc()
    if change is None:
        return
    # Each judged step of a stage walk on its own: a walk from prospecting to negotiation is
    # four one-step moves, never a "prospecting -> negotiation" that reads like a skip.
    for move in change.steps or [change]:
        STAGE_PROPOSALS.labels(
            from_stage=move.from_stage.value,
            to_stage=move.to_stage.value,
            outcome="accepted" if move.accepted else "rejected",
        ).inc()


def observe_published(ages_s: Iterable[float]) -> None:
    for age in ages_s:
        OUTBOX_PUBLISHED.inc()
        OUTBOX_LATENCY.observe(max(age, 0.0))


def observe_not_published(errors: Iterable[str]) -> None:
    for error in errors:
        OUTBOX_NOT_PUBLISHED.labels(error=error).inc()


def set_lag(lag: Mapping[tuple[str, int], int], *, previous: Iterable[tuple[str, int]]) -> None:
    """Per-partition lag; partitions this process no longer owns lose their series."""
    for topic, partition in set(previous) - set(lag):
        CONSUMER_LAG.remove(topic, str(partition))
    for (topic, partition), behind in lag.items():
        CONSUMER_LAG.labels(topic=topic, partition=str(partition)).set(behind)


def exposition() -> tuple[bytes, str]:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
