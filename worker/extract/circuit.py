"""A circuit breaker for the LLM: stop calling a provider that keeps failing, probe it later.

Without it, every conversation of a batch spends the whole retry budget against a dead or
hanging provider before failing open, so one batch takes about
`ceil(conversations / LLM_CONCURRENCY) * LLM_RETRY_BUDGET_S` (close to an hour for 500
conversations with the defaults): the partition stalls and the group evicts the consumer.
With it, after `failure_threshold` failed extractions in a row the next ones fail open at once
for `cooldown_s`; then one call at a time probes the provider until one succeeds. Pure: no I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(kw_only=True)
class CircuitBreaker:
    failure_threshold: int = 5
    cooldown_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _failures: int = field(default=0, init=False)
    _opened_at: float | None = field(default=None, init=False)
    _probing: bool = field(default=False, init=False)

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def allow(self) -> bool:
        """May a call go out now? Closed: yes. Open: one probe once the cooldown has passed."""
        if self._opened_at is None:
            return True
        if self._probing or self.clock() - self._opened_at < self.cooldown_s:
            return False
        self._probing = True
        return True

    def succeeded(self) -> bool:
        """Record a success; True when it closed an open circuit."""
        was_open = self.is_open
        self._failures, self._opened_at, self._probing = 0, None, False
        return was_open

    def failed(self) -> bool:
        """Record a provider failure; True when it opened the circuit. A failure while open
        (a failed probe, or a call that was already in flight) restarts the cooldown."""
        was_open = self.is_open
        self._failures += 1
        self._probing = False
        if self._failures >= self.failure_threshold:
            self._opened_at = self.clock()
        return self.is_open and not was_open
