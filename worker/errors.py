"""Transient errors mean "redeliver later"; permanent ones mean "dead-letter or report and stop"."""

from __future__ import annotations


class WorkerError(Exception):
    """Base of the worker's own errors."""


class TransientError(WorkerError):
    """Retrying later can succeed: database or broker unreachable, pool exhausted."""


class DatabaseUnavailable(TransientError):
    pass


class PermanentError(WorkerError):
    """Retrying will not help: bad configuration, bad input, an edited migration."""


class ConfigurationError(PermanentError):
    pass


class MigrationError(PermanentError):
    pass


class RejectedByDatabase(PermanentError):
    """PostgreSQL refused the data (a constraint, an encoding): retrying cannot help, so the
    records that carried it are dead-lettered as `invalid_event`."""


class ConversationNotFound(PermanentError):
    """The conversation has no state (yet, or any more)."""
