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
