"""Dead-destination cache of the queue manager.

SECURITY: in-memory bookkeeping of the daemon; touches no file and no network.

As in Postfix's qmgr, when a next hop cannot be reached at all (connection refused, timeout, no
address, TLS required and not offered), the destination is marked dead for `minimal_backoff_time`.
While it is dead, the rest of its mail is deferred at once with the same reason, without a connection
attempt each, so one unreachable domain cannot clog the active queue for the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class DeadEntry:
    """Why a destination is dead and until when (monotonic clock)."""

    reason: str
    dsn: str
    until: float


class DeadDestinations:
    """Next hop key -> DeadEntry, expiring after `ttl` seconds."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._dead: dict[str, DeadEntry] = {}

    def mark_dead(self, nexthop: str, reason: str, dsn: str = "4.4.1") -> None:
        """Record that `nexthop` could not be reached."""
        self._dead[nexthop] = DeadEntry(reason, dsn, self._clock() + self.ttl)

    def mark_alive(self, nexthop: str) -> None:
        """Forget an earlier failure (a delivery to `nexthop` worked)."""
        self._dead.pop(nexthop, None)

    def check(self, nexthop: str) -> DeadEntry | None:
        """The entry when `nexthop` is dead now, else None (expired entries are dropped)."""
        entry = self._dead.get(nexthop)
        if entry is None:
            return None
        if entry.until <= self._clock():
            del self._dead[nexthop]
            return None
        return entry

    def clear(self) -> None:
        """Forget every dead destination (used by a queue flush)."""
        self._dead.clear()

    def __len__(self) -> int:
        return len(self._dead)
