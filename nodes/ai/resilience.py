"""Staying useful while a vendor struggles: retry waits and a circuit breaker per model.

A model call that fails with vendor trouble (rate limit, server error, timeout, no connection)
is tried again after a wait: what the vendor's `Retry-After` asks for, else exponential backoff
with jitter. After `threshold` such failures in a row, a model's circuit opens and calls to it
fail at once for `cooldown_s` (a fallback model takes over, when the step has one); then one
call is let through, and its success closes the circuit again.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class RetryPolicy:
    """How long to wait before trying a failed model call again."""

    backoff_s: float = 0.5
    #: The longest wait FlowLoom accepts; a vendor asking for more is not waited for.
    max_wait_s: float = 30.0

    def backoff(self, attempt: int) -> float:
        """Wait after failed attempt number `attempt` (from 1): base · 2^(n-1), ±50 % jitter."""
        return min(self.max_wait_s, self.backoff_s * 2 ** (attempt - 1) * (0.5 + random.random()))


@dataclass(slots=True)
class CircuitBreaker:
    """Failures in a row of one model, and since when its calls are paused."""

    threshold: int
    cooldown_s: float
    failures: int = 0
    opened_at: float | None = None
    last_failure: str = ""

    def paused_for(self) -> float | None:
        """Seconds calls stay paused, or None when a call may go ahead."""
        if self.opened_at is None:
            return None
        left = self.opened_at + self.cooldown_s - time.monotonic()
        return left if left > 0 else None

    def succeeded(self) -> None:
        self.failures = 0
        self.opened_at = None

    def failed(self, reason: str) -> None:
        self.failures += 1
        self.last_failure = reason
        # after the cooldown one trial call goes ahead; its failure pauses calls again
        if self.failures >= self.threshold:
            self.opened_at = time.monotonic()


@dataclass(slots=True)
class Circuits:
    """Every model's circuit breaker, by (provider, base URL, model)."""

    threshold: int = 5
    cooldown_s: float = 30.0
    _breakers: dict[tuple[str, str, str], CircuitBreaker] = field(default_factory=dict)

    def breaker(self, provider: str, base_url: str | None, model: str) -> CircuitBreaker:
        key = (provider, base_url or "", model)
        found = self._breakers.get(key)
        if found is None:
            found = self._breakers[key] = CircuitBreaker(self.threshold, self.cooldown_s)
        return found

    def reset(self) -> None:
        self._breakers.clear()


#: Shared by every AI step of the process.
RETRY_POLICY = RetryPolicy()
CIRCUITS = Circuits()
