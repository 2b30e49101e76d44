"""Per-destination concurrency window of the queue manager (Postfix's slow start).

SECURITY: in-memory bookkeeping; touches nothing.

A destination starts with `initial_destination_concurrency` parallel deliveries; each successful
delivery widens the window by one up to the destination's limit
(`default_destination_concurrency_limit` or `TRANSPORT_destination_concurrency_limit`); a failed
connection shrinks it back to the initial value. So a next hop that is down sees a handful of
connection attempts before it is marked dead, never one per queued message.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class ConcurrencyWindow:
    """An asyncio semaphore whose size grows on success and shrinks on failure."""

    def __init__(self, initial: int, limit: int) -> None:
        self.limit = max(limit, 1)
        self.initial = max(min(initial, self.limit), 1)
        self.window = self.initial
        self.in_use = 0
        self._cond = asyncio.Condition()

    async def acquire(self) -> None:
        """Wait for a free slot."""
        async with self._cond:
            await self._cond.wait_for(lambda: self.in_use < self.window)
            self.in_use += 1

    async def release(self) -> None:
        """Give the slot back."""
        async with self._cond:
            self.in_use -= 1
            self._cond.notify_all()

    def success(self) -> None:
        """Positive feedback: one more parallel delivery allowed (up to the limit)."""
        if self.window < self.limit:
            self.window += 1
            self._notify_soon()

    def failure(self) -> None:
        """Negative feedback after a failed connection: back to the initial window."""
        self.window = self.initial

    def _notify_soon(self) -> None:
        async def notify() -> None:
            async with self._cond:
                self._cond.notify_all()
        asyncio.ensure_future(notify())

    async def __aenter__(self) -> "ConcurrencyWindow":
        await self.acquire()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.release()
