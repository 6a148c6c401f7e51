"""Transient errors mean "redeliver later"; permanent ones mean "dead-letter or report and stop"."""

from __future__ import annotations


class WorkerError(Exception):
    """Base of the worker's own errors."""


class TransientError(WorkerError):
    """Retrying later can succeed: database or broker unreachable, pool exhausted."""


class DatabaseUnavailable(TransientError):
    pass


class DeferredExtractionBusy(TransientError):
    """An override must wait: another worker is extracting the conversation's deferred turns
    (its claim's lease runs); the batch comes again after the back-off."""


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


class ConversationErased(WorkerError):
    """The conversation was erased (`forget`) after an extraction read it: what it read must
    not be written back. Neither retried nor dead-lettered (a dead letter would copy the
    erased text): the extraction's turns are dropped."""
