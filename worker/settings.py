"""One frozen settings object, read once from the environment (CONTRACT.md section 6)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PlainValidator, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from worker.qualify.criteria import DEFAULT_CRITERIA, StageCriteria, parse_stage_criteria

RULES_MODEL = "rules"  # LLM_MODEL value that selects the offline rule-based extractor
# The settings naming every topic the worker reads or writes (`Settings.topics`).
TOPIC_SETTINGS = ("turn_topic", "override_topic", "update_topic", "dlq_topic")


def _stage_criteria(value: object) -> StageCriteria:
    """`STAGE_CRITERIA` as text (from the environment) or as criteria (from code)."""
    if isinstance(value, StageCriteria):
        return value
    if isinstance(value, str):
        return parse_stage_criteria(value)
    raise ValueError("expected a JSON object {stage: [dimension, ...]} or `off`")


# NoDecode: the text goes to the parser as it is (pydantic-settings would JSON-decode it first,
# and `off` is no JSON).
StageCriteriaSetting = Annotated[StageCriteria, NoDecode, PlainValidator(_stage_criteria)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_capitals(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Tansu (the embedded broker) does not serve InitProducerId, so idempotence is opt-in.
    kafka_enable_idempotence: bool = False
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    db_pool_size: int = Field(default=10, ge=2)
    # The role the worker's queries run as (migration 0002): owns nothing, sees one tenant at a
    # time. Empty: run as the login role itself (then row-level security may not apply).
    db_role: str = "qualification_worker"

    # LiteLLM's bundled list prices this model, cache reads and writes included (the dated
    # `claude-sonnet-4-20250514` is listed at 0 there: its cost would be unknown).
    llm_model: str = "anthropic/claude-sonnet-4-5"
    llm_api_base: str | None = None
    llm_api_key: SecretStr | None = None
    # Structured output: `auto` is JSON mode for an OpenAI-compatible server of one's own
    # (`openai/<name>` with an LLM_API_BASE other than OpenAI's), TOOLS everywhere else.
    llm_mode: Literal["auto", "tools", "json"] = "auto"
    # What the model fills in: `lean` lists only the dimensions the turns inform (a third of
    # the schema tokens); `full` asks for every field of QualificationExtraction.
    llm_response_schema: Literal["lean", "full"] = "lean"
    llm_max_tokens: int = Field(default=2048, ge=64)
    # Input tokens one prompt may take; unset: the model's context size from LiteLLM minus
    # LLM_MAX_TOKENS, or 8192 minus LLM_MAX_TOKENS for a model LiteLLM does not know.
    llm_max_prompt_tokens: int | None = Field(default=None, ge=1024)
    # USD per million tokens; each overrides LiteLLM's price list (unset: the list's price,
    # and a model the list lacks has an unknown cost, never 0).
    llm_input_price_per_mtok: float | None = Field(default=None, ge=0)
    llm_output_price_per_mtok: float | None = Field(default=None, ge=0)
    llm_cache_read_price_per_mtok: float | None = Field(default=None, ge=0)
    llm_cache_write_price_per_mtok: float | None = Field(default=None, ge=0)
    llm_timeout_s: float = Field(default=30.0, gt=0)
    llm_max_retries: int = Field(
        default=2, ge=0, description="instructor re-asks on invalid output"
    )
    llm_transport_attempts: int = Field(default=4, ge=1, description="tries on 429/5xx/timeouts")
    llm_retry_budget_s: float = Field(default=90.0, gt=0, description="total time for all tries")
    # Extractions in flight per process: what hides LLM latency. A catch-up batch holds ~125
    # conversations; at 8 it took 16 LLM round trips (W1 at 800 ms: 94 turns/s), at 64 it takes
    # 2 (412 turns/s). Size it to your provider's limit: requests/min ~ 60 * this / latency_s.
    llm_concurrency: int = Field(default=64, ge=1)
    # After this many failed extractions in a row (429/5xx/timeouts after their retries), fail
    # open at once for the cooldown, then probe: a dead provider must not stall partitions.
    llm_circuit_failures: int = Field(default=5, ge=1)
    llm_circuit_cooldown_s: float = Field(default=30.0, gt=0)
    # Turns an LLM outage left pending in a conversation that went quiet: extracted by the
    # pending sweeper once this old, looked for every interval (worker/qualify/sweeper.py; 0 = off).
    pending_sweep_interval_s: float = Field(default=30.0, ge=0)
    pending_quiet_s: float = Field(default=60.0, ge=0)
    # Debounced extraction (README, How it works): above 0, a batch only stores its
    # turns and commits; a conversation is extracted once no turn came for this long, or its
    # oldest waiting turn waited EXTRACT_MAX_WAIT_MS: one call for a whole burst of turns.
    # 0: every batch extracts its conversations at once.
    extract_debounce_ms: int = Field(default=0, ge=0)
    extract_max_wait_ms: int = Field(default=10_000, ge=0)
    # How often the extraction scheduler looks for due conversations (it also runs with no
    # debounce, to extract the turns deferred while one was set).
    extract_poll_interval_ms: int = Field(default=200, ge=10)

    # A backlog interleaves many conversations, so a batch holds only a few turns of each, and
    # the worker makes one extraction per conversation per batch: 500 records gave ~4 turns a call
    # in the catch-up benchmark (tests/bench, W1), 2000 give ~10. The cost: a batch of 2000
    # distinct conversations takes 2000 / LLM_CONCURRENCY LLM round trips before it commits.
    batch_max_records: int = Field(default=2000, ge=1)
    batch_timeout_ms: int = Field(default=200, ge=1)
    max_turn_chars: int = Field(default=20_000, ge=1)
    redelivery_backoff_s: float = Field(default=1.0, ge=0)
    outbox_poll_interval_s: float = Field(default=1.0, gt=0)

    consumer_group: str = "qualification-worker"
    # How fast the group notices a dead worker and hands its partitions to the others.
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1_000)
    kafka_heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    # Per partition and fetch; at aiokafka's 1 MiB default a fetch holds fewer records than a
    # batch may take, and the batch comes out short.
    kafka_max_partition_fetch_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    # v3: the largest produce request the worker sends (aiokafka's max_request_size), for dead
    # letters and update events alike. Dead letters are cut to fit it; the bounds of an update
    # event (docs/decisions.md, Bounds) are sized for 1 MiB, hence the minimum. Keep it at or
    # under the broker's `message.max.bytes` (and the topics' `max.message.bytes`): start-up
    # checks that when the broker says.
    kafka_max_request_bytes: int = Field(default=1024 * 1024, ge=1024 * 1024)
    turn_topic: str = "conversation.turn"
    # v2: a person's or a CRM's corrections, keyed like turns (CONTRACT.md section 1).
    override_topic: str = "qualification.override"
    update_topic: str = "qualification.updated"
    dlq_topic: str = "conversation.turn.dlq"

    # The exit criteria of the deal stages (worker/qualify/criteria.py, CONTRACT.md section 4):
    # unset for the default table, `off`, or a JSON object {stage: [dimension, ...]}.
    stage_criteria: StageCriteriaSetting = DEFAULT_CRITERIA
    # Inactivity stalls (worker/qualify/inactivity.py): an open deal whose latest turn is this
    # many days old moves to `stalled`, looked for every interval. 0 disables either.
    stall_after_days: int = Field(default=30, ge=0)
    stall_sweep_interval_s: float = Field(default=3600.0, ge=0)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # Personal data (docs/personal-data.md). Emails, phone numbers, card numbers, IBANs and
    # US SSNs are replaced by placeholders in the turn text the extractor sees and in the whole
    # variable part of every prompt sent to the LLM provider (the known state included).
    redact_contact_data: bool = True
    # Turn text (and metadata) is cleared this many days after the turn's extraction; 0 = kept.
    turn_text_retention_days: int = Field(default=0, ge=0)
    turn_text_retention_interval_s: float = Field(default=3600.0, gt=0)

    log_format: Literal["json", "console"] = "json"

    # /health, /ready, /metrics and /docs/asyncapi; HTTP_PORT=0 serves no HTTP at all.
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=8080, ge=0, le=65535)
    # /ready fails when records wait and no batch was committed for this long (LLM retries
    # included: keep it above LLM_RETRY_BUDGET_S).
    ready_stall_s: float = Field(default=180.0, gt=0)

    @property
    def uses_rules(self) -> bool:
        return self.llm_model == RULES_MODEL

    @property
    def topics(self) -> tuple[str, ...]:
        """Every topic the worker reads or writes, inputs first: what `stack up`, `demo` and
        the tests' harness create."""
        return tuple(str(getattr(self, name)) for name in TOPIC_SETTINGS)


def load_settings() -> Settings:
    """Settings from the environment; a bad value is a one-line ConfigurationError."""
    from pydantic import ValidationError

    from worker.errors import ConfigurationError

    try:
        return Settings()
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        # A validator's own ValueError reads better without pydantic's "Value error, " prefix.
        cause = first.get("ctx", {}).get("error") if first["type"] == "value_error" else None
        message = str(cause) if cause is not None else first["msg"]
        raise ConfigurationError(f"{name}: {message}") from None
