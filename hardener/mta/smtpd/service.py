"""smtpd's listening side: what Postfix's master does for an smtpd service (accept, limit, stress).

One SmtpdService per master.cf smtpd service (one or more listening sockets):

- Process limit. Connections are accepted only while fewer than the service's process limit of
  sessions run. At the limit the service stops watching its listening sockets, as master stops
  watching them when every smtpd process is busy (master_avail_listen): new clients wait in the
  kernel's listen backlog and get their 220 when a session ends. Nobody is refused for it.
- Stress. When a connection takes the last free slot of a stress-capable service (see
  Listener.stress_capable), the service is under stress until STRESS_HOLD seconds after the last
  time that happened (master_avail_event); sessions accepted under stress get the stress limits
  (main.cf's `${stress?...}` defaults: smtpd_timeout 10s, smtpd_hard_error_limit 1,
  smtpd_junk_command_limit 1, per-request deadlines). Postfix's warning is logged, at most once
  per STRESS_HOLD seconds, when such a service has to stop accepting.

SECURITY: accepts connections from the outside world, reads nothing from them. Runs as the mail
owner after the privilege drop. The number of sessions per service is bounded by the process limit.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import Callable

from hardener.mta.maillog import get_logger
from hardener.mta.config.settings import Listener

log = get_logger("master")

STRESS_HOLD = 1000.0   # seconds, as Postfix's master
ACCEPT_BATCH = 64      # connections accepted per readiness event (bounded)
RESOURCE_PAUSE = 1.0   # seconds without accepting after EMFILE/ENFILE/ENOBUFS/ENOMEM
_RESOURCE_ERRORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}

# factory(listener, stress, release) -> the session's protocol; release() must be called once
# the session is over (it may be called again: only the first call counts)
SessionFactory = Callable[[Listener, bool, Callable[[], None]], asyncio.Protocol]


class SmtpdService:
    """The listening sockets of one smtpd service, its session count and its stress state."""

    def __init__(self, sockets: list[tuple[Listener, socket.socket]], factory: SessionFactory,
                 *, counts: dict[str, int] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not sockets:
            raise ValueError("a service needs at least one listening socket")
        first = sockets[0][0]
        self.name = first.service
        self.limit = first.process_limit
        self.stress_capable = first.stress_capable
        self.sockets = sockets
        self.factory = factory
        self.counts = counts if counts is not None else {}  # shared: the daemon waits on them
        self.clock = clock
        self.active = 0
        self.stress_until = float("-inf")
        self._busy_warned = float("-inf")
        self._watching = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.counts[self.name] = 0

    # -- watching the listening sockets ----------------------------------------------------------

    def start(self) -> None:
        """Start accepting (call from the running event loop)."""
        self._loop = asyncio.get_running_loop()
        self._watch(True)

    def close(self) -> None:
        """Stop accepting for good; sessions already running go on. The sockets stay open (the
        daemon that bound them closes them)."""
        self._closed = True
        self._watch(False)

    def _watch(self, on: bool) -> None:
        if self._loop is None or on == self._watching or (on and self._closed):
            return
        for listener, sock in self.sockets:
            if on:
                self._loop.add_reader(sock.fileno(), self._accept, listener, sock)
            else:
                self._loop.remove_reader(sock.fileno())
        self._watching = on

    def in_stress(self) -> bool:
        """True while the service is under stress (new sessions get the stress limits)."""
        return self.clock() < self.stress_until

    # -- accepting ---------------------------------------------------------------------------------

    def _accept(self, listener: Listener, sock: socket.socket) -> None:
        for _ in range(ACCEPT_BATCH):
            if self.active >= self.limit:
                self._at_limit()
                return
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno in _RESOURCE_ERRORS and self._loop is not None:
                    log.warning(f"service {self.name}: accept: {exc.strerror}; "
                                f"pausing {RESOURCE_PAUSE:g} s")
                    self._watch(False)
                    self._loop.call_later(RESOURCE_PAUSE, self._resume_after_pause)
                else:
                    log.warning(f"service {self.name}: accept: {exc.strerror or exc}")
                return
            self._start_session(listener, conn)
        if self.active >= self.limit:
            self._at_limit()

    def _resume_after_pause(self) -> None:
        if self.active < self.limit:
            self._watch(True)

    def _start_session(self, listener: Listener, conn: socket.socket) -> None:
        conn.setblocking(False)
        self.active += 1
        self.counts[self.name] = self.active
        stress = self._note_load()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._session_ended()

        assert self._loop is not None
        try:
            protocol = self.factory(listener, stress, release)
        except Exception as exc:  # a bug must cost one connection, never the listener
            log.error(f"service {self.name}: cannot start a session: {exc!r}")
            conn.close()
            release()
            return
        task = self._loop.create_task(self._loop.connect_accepted_socket(lambda: protocol, conn))

        def started(done: asyncio.Task) -> None:
            if done.cancelled() or done.exception() is not None:
                conn.close()
                release()

        task.add_done_callback(started)

    def _note_load(self) -> bool:
        """Stress bookkeeping for a session that just took a slot; True if it runs under stress."""
        if not self.stress_capable:
            return False
        now = self.clock()
        if self.active >= self.limit:       # this session took the last free slot
            self.stress_until = now + STRESS_HOLD
        return now < self.stress_until

    def _at_limit(self) -> None:
        self._watch(False)
        now = self.clock()
        if self.stress_capable and now - self._busy_warned > STRESS_HOLD:
            self._busy_warned = now
            listener = self.sockets[0][0]
            internal = (f"[{listener.address}]:{listener.port}" if ":" in self.name
                        else str(listener.port))
            log.warning(f'service "{self.name}" ({internal}) has reached its process limit '
                        f'"{self.limit}": new clients may experience noticeable delays')
            log.warning("to avoid this condition, increase the process count in master.cf or "
                        "reduce the service time per client")
            log.warning("see http://www.postfix.org/STRESS_README.html for examples of "
                        "stress-adapting configuration settings")

    def _session_ended(self) -> None:
        self.active -= 1
        self.counts[self.name] = self.active
        if self.active < self.limit:
            self._watch(True)
