"""Command-line arguments that must name something valid: a bad one is a ConfigurationError
(one line, exit 2), never a traceback."""

from __future__ import annotations

from uuid import UUID

from schemas import DealStage
from worker.errors import ConfigurationError


def parse_uuid(value: str, what: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise ConfigurationError(f"{what} must be a UUID, got {value!r}") from None


def parse_stage(value: str | None) -> DealStage | None:
    if value is None:
        return None
    try:
        return DealStage(value)
    except ValueError:
        choices = ", ".join(stage.value for stage in DealStage)
        raise ConfigurationError(f"unknown stage {value!r}; one of: {choices}") from None
