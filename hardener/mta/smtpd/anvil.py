"""Per-client connection count and rate limits (Postfix's anvil, in process).

smtpd_client_connection_count_limit: simultaneous sessions per client address;
smtpd_client_connection_rate_limit: new sessions per client per anvil_rate_time_unit.
Clients in smtpd_client_event_limit_exceptions are not limited. 0 means no limit.

SECURITY: keyed by the client IP from the kernel (never by anything the client says). Memory is
bounded: idle entries are dropped, and the table holds at most `max_clients` addresses.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Sequence

from hardener.mta.smtpd.relay_policy import in_networks


class Anvil:
    """Counts sessions per client address."""

    def __init__(self, count_limit: int, rate_limit: int, rate_unit: float, exceptions: Sequence,
                 clock: Callable[[], float] = time.monotonic, max_clients: int = 100000) -> None:
        self.count_limit = count_limit
        self.rate_limit = rate_limit
        self.rate_unit = rate_unit
        self.exceptions = list(exceptions)
        self.clock = clock
        self.max_clients = max_clients
        self.active: dict[str, int] = collections.Counter()
        self.arrivals: dict[str, collections.deque[float]] = {}

    def connect(self, client: str) -> str | None:
        """Register a new session; returns None if allowed, else 'count' or 'rate' (not counted)."""
        if in_networks(client, self.exceptions):
            self.active[client] += 1
            return None
        now = self.clock()
        if self.count_limit and self.active.get(client, 0) >= self.count_limit:
            return "count"
        if self.rate_limit:
            q = self.arrivals.get(client)
            if q is None:
                if len(self.arrivals) >= self.max_clients:
                    self._expire(now)
                q = self.arrivals.setdefault(client, collections.deque())
            while q and q[0] <= now - self.rate_unit:
                q.popleft()
            if len(q) >= self.rate_limit:
                return "rate"
            q.append(now)
        self.active[client] += 1
        return None

    def carry_over(self, old: "Anvil") -> None:
        """Take over `old`'s counters (reload): sessions open across a reload keep counting
        against their client, as Postfix's anvil outlives an smtpd reload."""
        self.active = old.active
        self.arrivals = old.arrivals

    def disconnect(self, client: str) -> None:
        """A session of `client` ended."""
        n = self.active.get(client, 0) - 1
        if n > 0:
            self.active[client] = n
        else:
            self.active.pop(client, None)

    def _expire(self, now: float) -> None:
        for client in [c for c, q in self.arrivals.items() if not q or q[-1] <= now - self.rate_unit]:
            del self.arrivals[client]
