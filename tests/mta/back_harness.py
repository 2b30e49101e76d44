"""In-process harness for the back half (qmgr + delivery agents + bounce) on a temporary queue.

The real daemon (tests/fixtures/mta.py) runs smtpd and qmgr together; these tests drive qmgr
directly so the scheduling rules can be checked one at a time. Every peer is real (smtp-sink,
asyncio servers on loopback); messages enter the queue through the real cleanup.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from hardener.mta.bounce import Bouncer
from hardener.mta.cleanup.service import Cleanup, CleanupSettings
from hardener.mta.delivery.error import ErrorAgent
from hardener.mta.delivery.local import LocalAgent, LocalSettings
from hardener.mta.delivery.nexthop import NextHopResolver
from hardener.mta.delivery.routing import Router, RoutingSettings
from hardener.mta.delivery.smtp import SmtpAgent, SmtpSettings
from hardener.mta.delivery.smtp_client import Timeouts
from hardener.mta.qmgr.manager import QmgrSettings, QueueManager, make_resubmitter
from hardener.mta.qmgr.retry import RetryPolicy
from hardener.mta.queue.layout import QueueLayout


class Harness:
    """A queue directory, cleanup and a QueueManager wired like the daemon does."""

    def __init__(self, root: Path, *, relayhost: str = "", transport_map: dict[str, str] | None = None,
                 retry: RetryPolicy | None = None, concurrency: int = 20,
                 tls_level: str = "none", mydestination: list[str] | None = None,
                 aliases: dict[str, list[str]] | None = None, active_limit: int = 20000,
                 smtp_timeouts: Timeouts | None = None) -> None:
        self.layout = QueueLayout(root / "queue")
        self.layout.ensure()
        self.cleanup = Cleanup(self.layout, CleanupSettings("mx.test.example", "test.example"))
        retry = retry or RetryPolicy(1, 4, 1, 3600, 3600)
        routing = RoutingSettings(mydestination=mydestination or ["mx.test.example"],
                                  relayhost=relayhost, transport_map=transport_map or {},
                                  local_transport="local:")
        smtp = SmtpSettings(helo_name="mx.test.example", tls_security_level=tls_level,
                            timeouts=smtp_timeouts or Timeouts())
        local = LocalSettings(spool_dir=self.layout.dir("spool"), aliases=aliases or {},
                              local_domains=lambda d: not d or d in routing.mydestination,
                              require_known_user=False, myhostname="mx.test.example")
        error = ErrorAgent()
        agents = {"smtp": SmtpAgent(smtp, NextHopResolver(nameservers=["127.0.0.1"])),
                  "local": LocalAgent(local, make_resubmitter(self.cleanup)),
                  "error": error, "retry": error, "discard": error}
        self.qmgr = QueueManager(self.layout, QmgrSettings(retry=retry, active_limit=active_limit,
                                                           destination_concurrency=concurrency,
                                                           incoming_poll=0.2),
                                 Router(routing), agents, Bouncer(self.cleanup, "mx.test.example"))
        self.cleanup.on_commit = self.qmgr.wake

    async def submit(self, sender: str, recipients: list[str], body: bytes | None = None,
                     flags: tuple[str, ...] = ()) -> str:
        body = body or (f"From: <{sender}>\nTo: <{recipients[0]}>\nSubject: test\n"
                        "Message-Id: <m@test>\n\nhello\n").encode()
        writer = self.cleanup.begin(sender, recipients, client=("client.test", "127.0.0.9"),
                                    helo="client.test", flags=flags)
        await writer.write(body)
        return await writer.commit()

    def count(self, queue: str) -> int:
        return len(self.layout.list(queue))

    def queued(self) -> int:
        return sum(self.count(q) for q in ("incoming", "active", "deferred"))

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
        """Poll `predicate` while the event loop runs qmgr (bounded in time)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            await asyncio.sleep(0.05)
        return predicate()


async def run_with(h: Harness, body: Callable[[], "asyncio.Future | object"]) -> None:
    """Run qmgr while `body()` (a coroutine function) runs; stop it afterwards."""
    task = asyncio.ensure_future(h.qmgr.run())
    try:
        await body()
    finally:
        await h.qmgr.stop(grace=1.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        h.cleanup.close()
