"""qmgr: the queue manager. Moves mail from incoming/ into a bounded active/, hands it to delivery
agents, and moves what could not be delivered to deferred/ until its next try.

SECURITY: trusts nothing in the queue files it reads (hardener.mta.queue.file validates them; a file
that does not parse goes to corrupt/ and is logged). Runs in the daemon process as an asyncio task,
with the daemon's privileges (the mail owner after the privilege drop). Touches only the queue
directory: renames between queues, removes delivered queue files, writes the defer/ sidecars. It never
writes a queue file itself; bounces and forwarded mail go through cleanup.

Scheduling (Postfix semantics):
 * incoming/ -> active/ while fewer than `qmgr_message_active_limit` messages are active;
 * per destination (transport + next hop) at most `default_destination_concurrency_limit` deliveries
   at a time (`TRANSPORT_destination_concurrency_limit` overrides per transport);
 * a next hop that cannot be reached is dead for `minimal_backoff_time`: its other mail is deferred
   without a connection attempt (hardener.mta.qmgr.dead);
 * a deferred message waits minimal_backoff_time, doubling each time up to maximal_backoff_time
   (its next try is kept in the sidecar and, as in Postfix, as the deferred file's mtime);
   deferred/ is scanned every queue_run_delay (hardener.mta.qmgr.retry);
 * after maximal_queue_lifetime (bounce_queue_lifetime for bounces) it is returned to the sender;
 * on start, mail left in active/ by a crash goes back to incoming/.
A message's queue file is removed only after every recipient is delivered or its bounce is queued,
so a crash at any point repeats deliveries (at most the ones in flight) but never loses mail.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from hardener.mta import metrics
from hardener.mta.address_form import printable_external
from hardener.mta.bounce import Bouncer, FailedRecipient
from hardener.mta.delivery.result import (BOUNCED, DEFERRED, SENT, AttemptReport,
                                          DeliveryRequest, Destination, RecipientResult)
from hardener.mta.delivery.routing import Router
from hardener.mta.maillog import get_logger
from hardener.mta.qmgr.dead import DeadDestinations
from hardener.mta.qmgr.retry import RetryPolicy
from hardener.mta.qmgr.window import ConcurrencyWindow
from hardener.mta.queue.file import Envelope, QueueFileError, open_content, read_envelope
from hardener.mta.queue.layout import QueueLayout
from hardener.mta.queue.state import DONE, MessageState, QueueState, RecipientState
from hardener.mta.queue.state import BOUNCED as ST_BOUNCED
from hardener.mta.queue.state import DEFERRED as ST_DEFERRED

log = get_logger("qmgr")

# Left in defer/ by `hardener mta queue flush` for the running daemon (not a queue id: never a sidecar).
FLUSH_MARKER = ".flush"


class DeliveryAgent(Protocol):
    """What qmgr needs from a delivery agent."""

    async def deliver(self, dest: Destination, req: DeliveryRequest) -> AttemptReport: ...


@dataclass
class QmgrSettings:
    """The queue manager's main.cf values."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    active_limit: int = 20000
    destination_concurrency: int = 20
    initial_concurrency: int = 5
    transport_concurrency: dict[str, int] = field(default_factory=dict)
    destination_recipient_limit: int = 50
    incoming_poll: float = 1.0


def format_delay(seconds: float) -> str:
    """Postfix's delay notation: 0.12, 1.5, 42, and 0 for nothing."""
    if seconds < 0.005:
        return "0"
    if seconds < 10:
        return f"{seconds:.2f}".rstrip("0").rstrip(".")
    if seconds < 100:
        return f"{seconds:.1f}".rstrip("0").rstrip(".")
    return str(int(seconds))


class QueueManager:
    """Schedules deliveries for one queue directory. Start with `run()`; wake with `wake()`."""

    def __init__(self, layout: QueueLayout, settings: QmgrSettings, router: Router,
                 agents: dict[str, DeliveryAgent], bouncer: Bouncer, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.layout = layout
        self.settings = settings
        self.router = router
        self.agents = agents
        self.bouncer = bouncer
        self.clock = clock
        self.state = QueueState(layout.dir("defer"))
        self.dead = DeadDestinations(settings.retry.minimal_backoff_time)
        self._active: dict[str, asyncio.Task[None]] = {}
        self._windows: dict[str, ConcurrencyWindow] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._loops: list[asyncio.Task[None]] = []
        self.delivered = 0

    # -- lifecycle -------------------------------------------------------------------------------
    def recover(self) -> int:
        """Move every message left in active/ back to incoming/ (start-up after a crash)."""
        moved = 0
        for qid in self.layout.list("active"):
            try:
                self.layout.move(qid, "active", "incoming")
                moved += 1
            except FileNotFoundError:
                continue
        if moved:
            log.info(f"recovered {moved} message(s) from the active queue")
        return moved

    async def run(self) -> None:
        """Recover, then schedule until stop() is called."""
        self.recover()
        self._loops = [asyncio.ensure_future(self._incoming_loop()),
                       asyncio.ensure_future(self._deferred_loop())]
        try:
            await asyncio.gather(*self._loops)
        except asyncio.CancelledError:
            pass

    def wake(self, qid: str | None = None) -> None:
        """New mail in incoming/ (cleanup's on_commit callback); safe to call often."""
        self._wake.set()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking new work; give running deliveries `grace` seconds, then cancel them.

        A cancelled message stays in active/ and goes back to incoming/ at the next start.
        """
        self._stopping = True
        for task in self._loops:
            task.cancel()
        running = list(self._active.values())
        if running:
            _, pending = await asyncio.wait(running, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        for agent in self.agents.values():
            close = getattr(agent, "close", None)
            if close is not None:
                await close()

    async def _incoming_loop(self) -> None:
        last_flush_check = 0.0
        while not self._stopping:
            try:
                await asyncio.wait_for(self._wake.wait(), self.settings.incoming_poll)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            now = time.monotonic()
            if now - last_flush_check >= self.settings.incoming_poll:
                last_flush_check = now
                self._check_flush_request()
            self.fill_active()

    def _check_flush_request(self) -> None:
        """`hardener mta queue flush` leaves defer/.flush: forget dead next hops, retry all now."""
        marker = self.layout.dir("defer") / FLUSH_MARKER
        try:
            os.unlink(marker)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning(f"cannot remove {marker}: {exc.strerror}")
            return
        self.dead.clear()
        moved = self.scan_deferred(force=True)
        log.info(f"flush requested: {moved} deferred message(s) scheduled, dead next hops forgotten")

    async def _deferred_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.settings.retry.queue_run_delay)
            if self.scan_deferred():
                self.wake()

    # -- queue movement --------------------------------------------------------------------------
    def fill_active(self) -> None:
        """Start deliveries for incoming mail while the active queue has room."""
        free = self.settings.active_limit - len(self._active)
        if free <= 0 or self._stopping:
            return
        for qid in self.layout.list("incoming")[:free]:
            if qid in self._active:
                continue
            try:
                os.rename(self.layout.path("incoming", qid), self.layout.path("active", qid))
            except FileNotFoundError:
                continue  # a queue tool took it
            # No directory fsync: after a crash the file is in incoming/ or active/, both recovered.
            self._active[qid] = asyncio.ensure_future(self._process_guarded(qid))

    def scan_deferred(self, force: bool = False) -> int:
        """Move deferred mail whose next try is due (all of it with `force`) to incoming/."""
        now = self.clock()
        moved = 0
        for qid in self.layout.list("deferred"):
            if not force:
                # As Postfix: a deferred file's mtime is its next try, so a scan needs one stat.
                try:
                    if os.stat(self.layout.path("deferred", qid)).st_mtime > now:
                        continue
                except FileNotFoundError:
                    continue
            try:
                os.rename(self.layout.path("deferred", qid), self.layout.path("incoming", qid))
                moved += 1
            except FileNotFoundError:
                continue
        return moved

    # -- one message -----------------------------------------------------------------------------
    async def _process_guarded(self, qid: str) -> None:
        try:
            await self._process(qid)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad message must not stop the queue
            log.warning(f"{qid}: unexpected error, message deferred: {exc!r}")
            try:
                self._defer(qid, self.state.load(qid), f"internal error: {exc}")
            except OSError:
                pass
        finally:
            self._active.pop(qid, None)
            self._wake.set()

    async def _process(self, qid: str) -> None:
        path = self.layout.path("active", qid)
        entered = self.clock()
        try:
            env = read_envelope(path)
        except QueueFileError as exc:
            if not path.exists():
                return  # deleted or moved by a queue tool while we looked
            log.warning(f"{qid}: corrupt queue file, moved to corrupt/: {exc}")
            try:
                self.layout.move(qid, "active", "corrupt")
            except OSError:
                pass
            return
        st = self.state.load(qid)
        log.info(f"{qid}: from=<{printable_external(env.sender)}>, size={env.size}, "
                 f"nrcpt={len(env.recipients)} (queue active)")
        pending = st.pending([r.address for r in env.recipients])
        groups: dict[Destination, list[str]] = {}
        for rcpt in pending:
            groups.setdefault(self.router.resolve(rcpt), []).append(rcpt)
        limit = max(self.settings.destination_recipient_limit, 1)
        jobs = [self._deliver_group(dest, env, path, rcpts[i:i + limit], entered)
                for dest, rcpts in groups.items() for i in range(0, len(rcpts), limit)]
        results: list[RecipientResult] = []
        for batch in await asyncio.gather(*jobs):
            results.extend(batch)
        if st.first_attempt == 0:
            st.first_attempt = entered
        st.last_attempt = self.clock()
        for r in results:
            state = {SENT: DONE, BOUNCED: ST_BOUNCED, DEFERRED: ST_DEFERRED}[r.status]
            st.recipients[r.recipient] = RecipientState(state, r.dsn, r.reply)
            if r.status == DEFERRED:
                st.last_reason = r.reply
            else:
                self.delivered += r.status == SENT
        await self._finish(qid, env, st)

    async def _deliver_group(self, dest: Destination, env: Envelope, path: os.PathLike,
                             rcpts: list[str], entered: float) -> list[RecipientResult]:
        agent = self.agents.get(dest.transport)
        req = DeliveryRequest(env.queue_id, env.sender, rcpts, lambda: open_content(path),
                              env.size, env.arrival, env.is_bounce)
        if agent is None:
            report = AttemptReport([RecipientResult(r, DEFERRED, "4.3.0",
                                                    f"mail transport {dest.transport} unavailable")
                                    for r in rcpts])
            return self._log_results(env, report, entered, self.clock(), dest)
        window = self._windows.get(dest.key)
        if window is None:
            limit = self.settings.transport_concurrency.get(dest.transport,
                                                            self.settings.destination_concurrency)
            window = self._windows[dest.key] = ConcurrencyWindow(
                self.settings.initial_concurrency, limit)
        dead = self.dead.check(dest.key)
        if dead is None:
            async with window:
                dead = self.dead.check(dest.key)
                started = self.clock()
                if dead is None:
                    report = await agent.deliver(dest, req)
                    if report.hop_dead:
                        reason = next((r.reply for r in report.results if r.status == DEFERRED), "")
                        self.dead.mark_dead(dest.key, reason)
                        window.failure()
                    elif any(r.status == SENT for r in report.results):
                        self.dead.mark_alive(dest.key)
                        window.success()
                    return self._log_results(env, report, entered, started, dest)
        # Dead destination: defer without a connection attempt, as Postfix's qmgr does.
        reason = f"delivery temporarily suspended: {dead.reason}"
        report = AttemptReport([RecipientResult(r, DEFERRED, dead.dsn, reason) for r in rcpts])
        return self._log_results(env, report, entered, self.clock(), dest)

    def _log_results(self, env: Envelope, report: AttemptReport, entered: float, started: float,
                     dest: Destination) -> list[RecipientResult]:
        now = self.clock()
        a = max(entered - env.arrival, 0.0)
        b = max(started - entered, 0.0)
        c, d = report.conn_setup, report.transmission
        delays = "/".join(format_delay(x) for x in (a, b, c, d))
        agent_log = get_logger(dest.transport)
        for r in report.results:
            agent_log.info(f"{env.queue_id}: to=<{printable_external(r.recipient)}>, "
                           f"relay={r.relay}, delay={format_delay(now - env.arrival)}, "
                           f"delays={delays}, dsn={r.dsn}, status={r.status} ({r.reply})")
            metrics.count_delivery(r.status, dest.transport)
        return report.results

    async def _finish(self, qid: str, env: Envelope, st: MessageState) -> None:
        """Bounce, remove or defer the message after an attempt."""
        now = self.clock()
        deferred = [a for a, r in st.recipients.items() if r.status == ST_DEFERRED]
        expired = bool(deferred) and self.settings.retry.expired(env.arrival, now, env.is_bounce)
        if expired:
            log.info(f"{qid}: from=<{printable_external(env.sender)}>, status=expired, "
                     "returned to sender")
            for addr in deferred:
                r = st.recipients[addr]
                st.recipients[addr] = RecipientState(ST_BOUNCED, "4.4.7" if r.dsn.startswith("4")
                                                     else r.dsn, r.reason)
            deferred = []
        failed = [(a, r) for a, r in st.recipients.items() if r.status == ST_BOUNCED]
        if failed:
            orcpt = {r.address: r.orcpt for r in env.recipients}
            report = [FailedRecipient(a, r.dsn, r.reason, _diagnostic(r.reason),
                                      _remote_mta(r.reason), orcpt.get(a)) for a, r in failed]
            path = self.layout.path("active", qid)
            try:
                await self.bouncer.bounce(env, report, lambda: open_content(path))
            except Exception as exc:  # noqa: BLE001 - cleanup failure: keep the mail, retry later
                log.warning(f"{qid}: cannot queue the non-delivery notification: {exc}")
                self._defer(qid, st, f"bounce not queued: {exc}")
                return
            for a, r in failed:
                st.recipients[a] = RecipientState(DONE, r.dsn, r.reason)
        if deferred:
            self._defer(qid, st, st.last_reason)
            return
        try:
            # In a worker thread: an unlink waits for the file system journal, the loop must not.
            await asyncio.get_running_loop().run_in_executor(
                None, os.unlink, self.layout.path("active", qid))
        except FileNotFoundError:
            pass
        if st.attempts or failed or os.path.exists(self.layout.dir("defer") / qid):
            self.state.remove(qid)
        log.info(f"{qid}: removed")

    def _defer(self, qid: str, st: MessageState, reason: str) -> None:
        st.attempts += 1
        st.delay = self.settings.retry.next_delay(st.delay)
        st.next_attempt = self.clock() + st.delay
        st.last_reason = reason or st.last_reason
        self.state.save(qid, st)
        try:
            target = self.layout.move(qid, "active", "deferred")
            os.utime(target, (st.next_attempt, st.next_attempt))
        except FileNotFoundError:
            self.state.remove(qid)  # deleted by a queue tool meanwhile


def _diagnostic(reason: str) -> str:
    """Diagnostic-Code for a DSN from a logged reason ('host X said: 550 ... (in reply to ...)')."""
    marker = " said: "
    if reason.startswith("host ") and marker in reason:
        text = reason.split(marker, 1)[1]
        text = text.rsplit(" (in reply to ", 1)[0]
        return f"smtp; {text}"
    return f"X-Postfix; {reason}"


def _remote_mta(reason: str) -> str:
    if reason.startswith("host ") and " said: " in reason:
        relay = reason[5:].split(" said: ", 1)[0]
        return relay.split("[", 1)[0]
    return ""


Resubmitter = Callable[[str, list[str], DeliveryRequest], Awaitable[str]]


def make_resubmitter(cleanup: object) -> Resubmitter:
    """A callback for the local agent: queue a copy of a message for forwarded recipients."""

    async def resubmit(sender: str, recipients: list[str], req: DeliveryRequest) -> str:
        writer = cleanup.begin(sender, recipients, client=("localhost", "127.0.0.1"),
                               protocol="local", flags=["bounce"] if req.is_bounce else [])
        content = req.open_content()
        try:
            while chunk := content.read(65536):
                await writer.write(chunk)
            return await writer.commit()
        except BaseException:
            await writer.abort()
            raise
        finally:
            content.close()

    return resubmit
