"""The LLM extractor: instructor over LiteLLM, the versioned prompt, retries, evidence check.

One call extracts every BANT and MEDDIC signal of a batch of turns. Two retry layers:
instructor re-asks when the output does not validate (`LLM_MAX_RETRIES`); tenacity retries
transport trouble (429, 5xx, timeouts, refused connections) with jittered exponential
backoff, bounded by attempts (`LLM_TRANSPORT_ATTEMPTS`) and a total budget
(`LLM_RETRY_BUDGET_S`). LiteLLM's and the OpenAI SDK's own retries are off (`num_retries=0`).
When everything fails the extractor fails open: status `failed`, no extraction, no exception.

What is sent: the fixed part first (system prompt, tool schema; marked for Anthropic's prompt
cache), then what varies. The model fills in the lean `ExtractedSignals` (worker/extract/lean.py)
unless `LLM_RESPONSE_SCHEMA=full`; either way the caller gets a `QualificationExtraction`.
A prompt too large for the model's context fails at once with error `ContextWindowExceeded`
(never retried as it is): the caller plans smaller chunks (`plan_chunks(..., shrink=2)`).
"""

from __future__ import annotations

import os

# LiteLLM downloads a price list at import unless told to use its bundled copy: this must
# precede `import litellm`, wherever this module is imported from.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import asyncio
import functools
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import instructor
import litellm
import litellm.exceptions
import pydantic
import structlog
from instructor.core.exceptions import (
    AsyncValidationError,
    InstructorRetryException,
    ResponseParsingError,
)
from instructor.core.hooks import Hooks
from instructor.v2.core import patch as instructor_patch
from instructor.v2.validation import async_validators
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from schemas import DealStage, NextStage, QualificationExtraction, QualificationState
from worker.extract import prompt_budget
from worker.extract.circuit import CircuitBreaker
from worker.extract.evidence import verify_evidence
from worker.extract.lean import ExtractedSignals, to_extraction
from worker.extract.port import CONTEXT_WINDOW_EXCEEDED, ExtractionResult, TurnText
from worker.extract.pricing import PriceOverrides, TokenUsage, cost_usd
from worker.extract.prompt import (
    PROMPT_VERSION,
    SUMMARY_MAX_CHARS,
    SYSTEM_PROMPTS,
    Message,
    ResponseSchema,
    build_messages,
    user_message,
    with_cache_marker,
)
from worker.settings import Settings

litellm.suppress_debug_info = True  # no banner, no "Give Feedback" lines on errors
# instructor logs each failed attempt at ERROR with the exception text; a validation error's
# text quotes the model output, which quotes the turns. We log failures ourselves, without text.
logging.getLogger("instructor").setLevel(logging.CRITICAL)

log = structlog.get_logger(__name__)


def response_model(model: type[pydantic.BaseModel]) -> type[pydantic.BaseModel]:
    """`model` wrapped for instructor once, with its JSON schema built once.

    instructor wraps a plain model in a new class on every call, so its cached tool definition
    never hits; wrapped once, TOOLS mode's tool definition is built once (instructor caches it
    per class). JSON mode asks the model for its JSON schema on every
    call, and pydantic builds it anew each time (1 ms for the lean model): the schema is built
    here once and each call gets its own copy (a caller may change what it gets)."""
    wrapped = instructor.response_schema(model)
    built = json.dumps(wrapped.model_json_schema())
    fresh = wrapped.model_json_schema

    def model_json_schema(_cls: type[pydantic.BaseModel], *args: Any, **kwargs: Any) -> Any:
        return fresh(*args, **kwargs) if args or kwargs else json.loads(built)

    wrapped.model_json_schema = classmethod(model_json_schema)  # type: ignore[method-assign,assignment]
    return wrapped


_RESPONSE_MODELS: Mapping[ResponseSchema, type[pydantic.BaseModel]] = {
    "lean": response_model(ExtractedSignals),
    "full": response_model(QualificationExtraction),
}


def _check_async_validators_once(models: Sequence[type[pydantic.BaseModel]]) -> None:
    """instructor checks that the response model has no async validators up to seven times per
    call, walking every field each time (12% of the worker's CPU in W2-0ms-half). The answer
    for a class cannot change: our models are checked once, here (the original check raises if
    they ever get one), and any other model is still checked by instructor on every call."""
    original = async_validators.reject_async_validators
    for model in models:
        original(model)
    checked = frozenset(models)

    def reject_async_validators(response_model: Any) -> None:
        if isinstance(response_model, type) and response_model in checked:
            return
        original(response_model)

    # patch.py imported the name at its import; every other caller imports it at each call.
    async_validators.reject_async_validators = reject_async_validators
    instructor_patch.reject_async_validators = reject_async_validators  # type: ignore[attr-defined]


_check_async_validators_once(list(_RESPONSE_MODELS.values()))
# A model LiteLLM does not know: assume a small context (llama.cpp servers often run 4-8k) and
# say so; LLM_MAX_PROMPT_TOKENS sets the real figure.
UNKNOWN_CONTEXT_TOKENS = 8192
# Prompts are counted with LiteLLM's counter (tiktoken's cl100k for most models); other
# tokenizers (Claude's) split finer, so every count is taken this much larger.
TOKEN_COUNT_MARGIN = 1.2
_CONTEXT_ERROR_TEXT = ("context length", "context_length_exceeded", "prompt is too long")
StructuredOutput = Literal["tools", "json"]
_MODES: Mapping[StructuredOutput, instructor.Mode] = {
    "tools": instructor.Mode.TOOLS,
    "json": instructor.Mode.JSON,
}
OPENAI_HOST = "api.openai.com"
# What the prompt budget puts through the tokenizer (see `turn_budget`), cheapest first.
Counted = Literal["none", "fixed", "all"]
ESTIMATES: tuple[Counted, ...] = ("none", "fixed")
NO_API_KEY = "no-key"  # sent to an LLM_API_BASE when LLM_API_KEY is unset
# What instructor re-asks on: the output did not parse or did not validate.
_REASK_ERRORS = (
    pydantic.ValidationError,
    json.JSONDecodeError,
    ResponseParsingError,
    AsyncValidationError,
)
_TRANSIENT_STATUS = frozenset({408, 409, 425, 429})  # plus every 5xx (529: Anthropic overloaded)


@dataclass(kw_only=True)
class QualificationExtractor:
    """Extracts all signals of a batch of turns with one structured LLM call (fail-open)."""

    model_name: str
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)  # never in logs or tracebacks
    mode: StructuredOutput = "tools"
    max_tokens: int = 2048
    timeout_s: float = 30.0
    max_retries: int = 2
    transport_attempts: int = 4
    retry_budget_s: float = 90.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0
    prompt_version: str = PROMPT_VERSION
    response_schema: ResponseSchema = "lean"
    max_prompt_tokens: int | None = None  # None: from the model's context size
    redact_prompt: bool = False  # REDACT_CONTACT_DATA: no contact data in what is sent
    prices: PriceOverrides = field(default_factory=PriceOverrides)
    circuit: CircuitBreaker = field(default_factory=CircuitBreaker)
    _client: instructor.AsyncInstructor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._client = instructor.from_litellm(
            litellm.acompletion, mode=_MODES[self.mode], async_client=True
        )
        if self.response_schema == "full" and self.prompt_version == PROMPT_VERSION:
            self.prompt_version = f"{PROMPT_VERSION}-full"  # a different prompt, recorded so

    @property
    def caches_prompt(self) -> bool:
        """Anthropic caches only what a `cache_control` marker asks for; OpenAI-compatible
        providers cache long prefixes on their own."""
        return self.model_name.startswith("anthropic/")

    @classmethod
    def from_settings(cls, settings: Settings) -> QualificationExtractor:
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        return cls(
            model_name=settings.llm_model,
            api_base=settings.llm_api_base,
            api_key=key,
            mode=structured_output(settings.llm_mode, settings.llm_model, settings.llm_api_base),
            max_tokens=settings.llm_max_tokens,
            timeout_s=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
            transport_attempts=settings.llm_transport_attempts,
            retry_budget_s=settings.llm_retry_budget_s,
            response_schema=settings.llm_response_schema,
            max_prompt_tokens=settings.llm_max_prompt_tokens,
            redact_prompt=settings.redact_contact_data,
            prices=PriceOverrides(
                input_per_mtok=settings.llm_input_price_per_mtok,
                output_per_mtok=settings.llm_output_price_per_mtok,
                cache_read_per_mtok=settings.llm_cache_read_price_per_mtok,
                cache_write_per_mtok=settings.llm_cache_write_price_per_mtok,
            ),
            circuit=CircuitBreaker(
                failure_threshold=settings.llm_circuit_failures,
                cooldown_s=settings.llm_circuit_cooldown_s,
            ),
        )

    async def extract_signals(
        self,
        turns: Sequence[TurnText],
        existing_state: QualificationState,
        current_stage: DealStage,
        *,
        next_stage: NextStage | None = None,
    ) -> ExtractionResult:
        """One call for all signals in `turns`; never raises for LLM trouble (fail-open)."""
        if not turns:
            return self._result(_CallLog(), extraction=QualificationExtraction())
        if not self.circuit.allow():  # the provider is down: fail open without waiting on it
            return self._result(_CallLog(), extraction=None, error="CircuitOpen")
        # A turn too long for any prompt is trimmed (visibly), never a reason to fail forever.
        room = self._first_room(
            lambda room: all(surely_fits(turn, room) for turn in turns),
            existing_state,
            current_stage,
            next_stage,
        )
        turns = [
            turn
            if surely_fits(turn, room)
            else prompt_budget.trim_turn(turn, room, self.count_tokens)
            for turn in turns
        ]
        messages = build_messages(
            turns,
            existing_state,
            current_stage,
            next_stage=next_stage,
            schema=self.response_schema,
            redacted=self.redact_prompt,
        )
        if self.caches_prompt:
            messages = with_cache_marker(messages)
        calls = _CallLog()
        try:
            # The budget bounds everything: attempts, re-asks and the backoff sleeps between.
            async with asyncio.timeout(self.retry_budget_s):
                extraction: QualificationExtraction = await self._retrying()(
                    self._extract_once, messages, calls
                )
        except Exception as error:  # fail-open: any failure leaves the caller's state as is
            self._track_provider(error)
            return self._failed(error, calls)
        self._track_provider(None)
        return self._verified(extraction, turns, calls)

    # --- the prompt budget -------------------------------------------------------------

    def plan_chunks(
        self,
        turns: Sequence[TurnText],
        existing_state: QualificationState,
        current_stage: DealStage,
        *,
        next_stage: NextStage | None = None,
        shrink: int = 1,
    ) -> list[list[TurnText]]:
        """`turns` as consecutive chunks whose prompts fit `prompt_budget()`; see the port."""
        shrink = max(shrink, 1)
        most = sum(upper_bound_tokens(turn) for turn in turns)
        room = self._first_room(
            lambda room: most <= room // shrink, existing_state, current_stage, next_stage
        )
        if most <= room // shrink:
            return [list(turns)]  # live traffic: a few short turns, no tokenizer needed
        return prompt_budget.plan_chunks(turns, room // shrink, self.count_tokens)

    def prompt_budget(self) -> int:
        """Input tokens one prompt may take: LLM_MAX_PROMPT_TOKENS, else the model's context
        (LiteLLM's `max_input_tokens`) less the room kept for the reply."""
        if self.max_prompt_tokens is not None:
            return self.max_prompt_tokens
        return max(context_tokens(self.model_name) - self.max_tokens, 1024)

    def turn_budget(
        self,
        existing_state: QualificationState,
        current_stage: DealStage,
        *,
        next_stage: NextStage | None = None,
        counted: Counted = "all",
    ) -> int:
        """What a prompt leaves for turns: the budget less the fixed part (system prompt and
        schema), the variable frame around the turns, and room for the known-state summary to
        grow to its cap (the state grows between the chunks of one plan).

        `counted` says what goes through the tokenizer; the rest is taken at its upper bound
        (`upper_bound_text_tokens`), which leaves a smaller room: `"none"` (no tokenizer: it
        costs CPU and, loaded, ~40 MB), `"fixed"` (the fixed part, counted once per model and
        cached), `"all"` (the frame too, on every call)."""
        frame = user_message([], existing_state, current_stage, next_stage)
        summary_growth = max(SUMMARY_MAX_CHARS - len(frame), 0) // 3  # >= 3 characters a token
        if counted == "none":
            fixed = _fixed_prompt_upper_bound(self.response_schema, self.mode)
        else:
            fixed = self.fixed_prompt_tokens()
        if counted == "all":
            fixed += self.count_tokens(frame)
        else:
            fixed += upper_bound_text_tokens(frame)
        fixed += summary_growth
        return max(self.prompt_budget() - fixed, prompt_budget.TURN_OVERHEAD_TOKENS + 64)

    def _first_room(
        self,
        enough: Callable[[int], bool],
        existing_state: QualificationState,
        current_stage: DealStage,
        next_stage: NextStage | None,
    ) -> int:
        """The cheapest `turn_budget` that is `enough`, else the exact one: short live turns
        fit a large context without the tokenizer, a small context without counting on each
        call. Each estimate is a room no larger than the next, so a fit is a fit."""
        for counted in ESTIMATES:
            room = self.turn_budget(
                existing_state, current_stage, next_stage=next_stage, counted=counted
            )
            if enough(room):
                return room
        return self.turn_budget(existing_state, current_stage, next_stage=next_stage)

    def fixed_prompt_tokens(self) -> int:
        """The system prompt and the tool schema, counted: the same on every call."""
        return _fixed_prompt_tokens(self.model_name, self.response_schema, self.mode)

    def count_tokens(self, text: str) -> int:
        return count_tokens(self.model_name, text)

    def _track_provider(self, error: Exception | None) -> None:
        """Only an unreachable, erroring or hanging provider counts against the circuit; an
        answer, even an unusable one, shows it is up."""
        down = error is not None and (isinstance(error, TimeoutError) or is_transient(error))
        if down and self.circuit.failed():
            log.error(
                "llm_circuit_opened", model=self.model_name, cooldown_s=self.circuit.cooldown_s
            )
        elif not down and self.circuit.succeeded():
            log.info("llm_circuit_closed", model=self.model_name)

    # --- the call --------------------------------------------------------------------

    async def _extract_once(
        self, messages: list[Message], calls: _CallLog
    ) -> QualificationExtraction:
        calls.transport_attempts += 1
        reply: pydantic.BaseModel = await self._client.create(
            response_model=_RESPONSE_MODELS[self.response_schema],
            messages=cast("list[Any]", messages),  # our plain dicts are valid chat messages
            max_retries=self._reasking(),
            strict=False,  # lax JSON: "0.8" as a string is fine; out-of-range still fails
            hooks=calls.hooks(),
            **self._completion_kwargs(),
        )
        if isinstance(reply, ExtractedSignals):
            return to_extraction(reply)
        return cast("QualificationExtraction", reply)

    def _completion_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.model_name,
            "max_tokens": self.max_tokens,
            "timeout": self.timeout_s,
            "num_retries": 0,  # also sets the OpenAI SDK's max_retries to 0: we retry ourselves
        }
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self.api_key:
            kwargs["api_key"] = self.api_key
        elif self.api_base:
            # A server of one's own often asks for no key, but the OpenAI SDK refuses to send a
            # request without one (and LiteLLM would fall back to OPENAI_API_KEY: not for a
            # server other than OpenAI's).
            kwargs["api_key"] = NO_API_KEY
        return kwargs

    def _reasking(self) -> AsyncRetrying:
        # Our own Retrying, not an int: with an int instructor also stops re-asking once
        # `timeout` seconds have passed in total, which ties LLM_MAX_RETRIES to latency.
        return AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            retry=retry_if_exception_type(_REASK_ERRORS),
            reraise=True,
        )

    def _retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            stop=stop_after_attempt(self.transport_attempts)
            | stop_before_delay(self.retry_budget_s),
            wait=wait_random_exponential(multiplier=self.backoff_initial_s, max=self.backoff_max_s),
            retry=retry_if_exception(is_transient),
            before_sleep=self._log_retry,
            reraise=True,
        )

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "llm_transport_retry",
            error=error_name(error),
            attempt=state.attempt_number,
            wait_s=round(state.upcoming_sleep, 3),
            model=self.model_name,
        )

    # --- results ---------------------------------------------------------------------

    def _verified(
        self, extraction: QualificationExtraction, turns: Sequence[TurnText], calls: _CallLog
    ) -> ExtractionResult:
        verified, drops = verify_evidence(extraction, turns)
        dropped = sum(drops.values())
        if dropped:
            log.warning("evidence_dropped", dropped=dropped, fields=drops, model=self.model_name)
        return self._result(calls, extraction=verified, evidence_dropped=dropped)

    def _failed(self, error: Exception, calls: _CallLog) -> ExtractionResult:
        name = error_name(error)
        log.error(
            "extraction_failed",
            error=name,
            attempts=calls.requests,
            transport_attempts=calls.transport_attempts,
            model=self.model_name,
            prompt_version=self.prompt_version,
        )
        return self._result(calls, extraction=None, error=name)

    def _result(
        self,
        calls: _CallLog,
        *,
        extraction: QualificationExtraction | None,
        evidence_dropped: int = 0,
        error: str | None = None,
    ) -> ExtractionResult:
        return ExtractionResult(
            status="failed" if extraction is None else "ok",
            extraction=extraction,
            model=self.model_name,
            prompt_version=self.prompt_version,
            attempts=calls.requests,
            prompt_tokens=calls.usage.prompt_tokens,
            completion_tokens=calls.usage.completion_tokens,
            cache_read_tokens=calls.usage.cache_read_tokens,
            cache_write_tokens=calls.usage.cache_write_tokens,
            cost_usd=cost_usd(self.model_name, calls.usage, self.prices),
            evidence_dropped=evidence_dropped,
            error=error,
        )


@dataclass
class _CallLog:
    """What one extraction spent: requests sent (re-asks included) and tokens billed."""

    requests: int = 0
    transport_attempts: int = 0
    usage: TokenUsage = field(default_factory=TokenUsage)

    def hooks(self) -> Hooks:
        hooks = Hooks()
        hooks.on("completion:kwargs", self._on_request)
        hooks.on("completion:response", self._on_response)
        return hooks

    def _on_request(self, *_args: Any, **_kwargs: Any) -> None:
        self.requests += 1

    def _on_response(self, response: Any) -> None:
        # Every response counts, also the ones that failed validation: they were billed too.
        usage = getattr(response, "usage", None)
        details = getattr(usage, "prompt_tokens_details", None)
        # LiteLLM reports Anthropic's cache_read_input_tokens as OpenAI's cached_tokens too.
        cache_read = getattr(details, "cached_tokens", None)
        cache_write = getattr(usage, "cache_creation_input_tokens", None)
        cache_write = cache_write or getattr(details, "cache_creation_tokens", None)
        self.usage = TokenUsage(
            prompt_tokens=self.usage.prompt_tokens + (getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=self.usage.completion_tokens
            + (getattr(usage, "completion_tokens", 0) or 0),
            cache_read_tokens=self.usage.cache_read_tokens + (cache_read or 0),
            cache_write_tokens=self.usage.cache_write_tokens + (cache_write or 0),
        )


def structured_output(
    mode: Literal["auto", "tools", "json"], model: str, api_base: str | None
) -> StructuredOutput:
    """The structured-output mode `LLM_MODE` asks for; `auto` picks the one that works.

    An OpenAI-compatible server of one's own (`openai/<name>` with an `LLM_API_BASE` that is
    not OpenAI's: llama.cpp, vLLM, LM Studio…) gets JSON mode: llama.cpp's server turns TOOLS
    mode into a grammar, and small models then answer with an empty `signals` list, where JSON
    mode finds the signals (DESIGN.md, Qwen2.5-1.5B). Hosted providers get TOOLS mode."""
    if mode != "auto":
        return mode
    own_server = api_base is not None and urlsplit(api_base).hostname != OPENAI_HOST
    return "json" if model.startswith("openai/") and own_server else "tools"


# --- errors ------------------------------------------------------------------------------


def api_error(error: BaseException | None) -> BaseException | None:
    """The LiteLLM error inside instructor's wrapper (instructor sets it as `__cause__`)."""
    if isinstance(error, InstructorRetryException) and error.__cause__ is not None:
        return error.__cause__
    return error


def is_transient(error: BaseException) -> bool:
    """Worth another try: rate limits, server errors, timeouts, refused connections."""
    cause = api_error(error)
    if isinstance(cause, litellm.exceptions.Timeout | litellm.exceptions.APIConnectionError):
        return True
    status = getattr(cause, "status_code", None)
    return isinstance(status, int) and (status in _TRANSIENT_STATUS or status >= 500)


def is_context_window_exceeded(error: BaseException | None) -> bool:
    """The prompt is larger than the model takes: retrying it as it is cannot help."""
    cause = api_error(error)
    if isinstance(cause, litellm.exceptions.ContextWindowExceededError):
        return True
    text = str(cause).casefold()
    return getattr(cause, "status_code", None) == 400 and any(
        marker in text for marker in _CONTEXT_ERROR_TEXT
    )


def error_name(error: BaseException | None) -> str:
    if is_context_window_exceeded(error):
        return CONTEXT_WINDOW_EXCEEDED
    return type(api_error(error)).__name__


# --- token counts ------------------------------------------------------------------------


def count_tokens(model: str, text: str) -> int:
    """`text` in tokens, on the large side (see `TOKEN_COUNT_MARGIN`)."""
    counted: int = litellm.token_counter(model=model, text=text)
    return math.ceil(counted * TOKEN_COUNT_MARGIN)


def upper_bound_text_tokens(text: str) -> int:
    """At most this many tokens, without counting: one per UTF-8 byte (a BPE token is at
    least one byte), with the tokenizer margin."""
    return math.ceil(len(text.encode()) * TOKEN_COUNT_MARGIN)


def upper_bound_tokens(turn: TurnText) -> int:
    """`upper_bound_text_tokens` of the turn's text plus the turn's frame."""
    return upper_bound_text_tokens(turn.text) + prompt_budget.TURN_OVERHEAD_TOKENS


def surely_fits(turn: TurnText, room: int) -> bool:
    """True without counting when even the upper bound fits: live traffic's short turns skip
    the tokenizer."""
    return upper_bound_tokens(turn) <= room


@functools.cache
def context_tokens(model: str) -> int:
    """The model's input limit from LiteLLM's list, or `UNKNOWN_CONTEXT_TOKENS`."""
    try:
        known = litellm.get_model_info(model).get("max_input_tokens")
    except Exception:  # LiteLLM raises a plain Exception for a model it does not know
        known = None
    if not known:
        log.warning("llm_context_unknown", model=model, assumed_tokens=UNKNOWN_CONTEXT_TOKENS)
        return UNKNOWN_CONTEXT_TOKENS
    return int(known)


@functools.cache
def _fixed_prompt_tokens(model: str, schema: ResponseSchema, mode: StructuredOutput) -> int:
    counted = sum(count_tokens(model, text) for text in _fixed_prompt_texts(schema, mode))
    return counted + (JSON_MODE_INSTRUCTION_TOKENS if mode == "json" else 0)


@functools.cache
def _fixed_prompt_upper_bound(schema: ResponseSchema, mode: StructuredOutput) -> int:
    bound = sum(upper_bound_text_tokens(text) for text in _fixed_prompt_texts(schema, mode))
    return bound + (JSON_MODE_INSTRUCTION_TOKENS if mode == "json" else 0)


# instructor's JSON-mode instruction around the schema (about 40 words), on the large side.
JSON_MODE_INSTRUCTION_TOKENS = 100


def _fixed_prompt_texts(schema: ResponseSchema, mode: StructuredOutput) -> tuple[str, str]:
    """The system prompt and the schema as the mode sends it, the same on every call: TOOLS
    mode sends the tool definition; JSON mode appends the JSON schema to the system prompt,
    indented (instructor's `json.dumps(schema, indent=2)`)."""
    model = _RESPONSE_MODELS[schema]
    if mode == "json":
        return SYSTEM_PROMPTS[schema], json.dumps(model.model_json_schema(), indent=2)
    return SYSTEM_PROMPTS[schema], json.dumps(model.openai_schema)  # type: ignore[attr-defined]
