"""Retry policy of the queue manager: when a deferred message is tried again, and when it expires.

SECURITY: pure computation on numbers from main.cf and the message's own state; touches nothing.

Postfix semantics (postconf(5)): a message deferred for the first time waits `minimal_backoff_time`;
each further deferral doubles the wait, never beyond `maximal_backoff_time`. The deferred queue is
scanned every `queue_run_delay`, so the effective wait is rounded up to the next scan. A message still
undeliverable `maximal_queue_lifetime` after its arrival is returned to the sender
(`bounce_queue_lifetime` for a message that is itself a bounce).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """The five main.cf times (seconds) that govern retries."""

    minimal_backoff_time: float = 300.0
    maximal_backoff_time: float = 4000.0
    queue_run_delay: float = 300.0
    maximal_queue_lifetime: float = 5 * 86400.0
    bounce_queue_lifetime: float = 5 * 86400.0

    def next_delay(self, previous_delay: float) -> float:
        """The wait after this deferral, given the wait used after the previous one (0 if none)."""
        if previous_delay <= 0:
            delay = self.minimal_backoff_time
        else:
            delay = previous_delay * 2
        return max(self.minimal_backoff_time, min(delay, self.maximal_backoff_time))

    def lifetime(self, is_bounce: bool) -> float:
        """How long a message may stay in the queue before it is returned (or dropped, for bounces)."""
        return self.bounce_queue_lifetime if is_bounce else self.maximal_queue_lifetime

    def expired(self, arrival: float, now: float, is_bounce: bool) -> bool:
        """Whether a message that arrived at `arrival` has outlived its queue lifetime at `now`.

        Postfix treats a lifetime of 0 as "one delivery attempt only", which this does too.
        """
        return now - arrival >= self.lifetime(is_bounce)
