"""The local delivery agent: alias expansion and Maildir delivery for `mydestination` domains.

SECURITY: delivers only into Maildirs below one spool directory that the daemon owns
(`queue_directory/spool/USER/Maildir/{tmp,new,cur}` by default; main.cf `hardener_local_spool`
overrides the spool root). It never runs commands or writes to paths named in aliases: `|command`,
`/file` and `:include:` aliases are refused as permanent failures. User names are checked against a
strict pattern before they become path components, every path step is opened with O_NOFOLLOW relative
to the spool directory's descriptor, and message files are created with O_EXCL, so neither a symlink
nor a crafted name can redirect a write outside the spool. Runs with the daemon's privileges; the
files belong to the daemon's user (the mail owner once privileges are dropped).

Alias targets with a domain that is not local are forwarded: the message is queued again for them
through cleanup (the `resubmit` callback), keeping the original envelope sender.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import secrets
import socket
import stat
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hardener.mta.address_form import AddressError, internalize, printable_external
from hardener.mta.delivery.result import (BOUNCED, DEFERRED, SENT, AttemptReport, DeliveryRequest,
                                          Destination, RecipientResult)

USER_RE = re.compile(r"[a-z0-9_][a-z0-9._-]{0,63}")
MAX_ALIAS_DEPTH = 20

# resubmit(sender, recipients, request) -> new queue id
Resubmit = Callable[[str, list[str], DeliveryRequest], Awaitable[str]]


@dataclass
class LocalSettings:
    """What the local agent takes from main.cf."""

    spool_dir: Path
    aliases: Mapping[str, list[str]] = field(default_factory=dict)
    local_domains: Callable[[str], bool] = lambda domain: not domain
    recipient_delimiter: str = ""
    require_known_user: bool = True
    myhostname: str = field(default_factory=socket.gethostname)


@dataclass
class _Target:
    kind: str  # "user", "forward" or "refused"
    value: str
    reason: str = ""


class LocalAgent:
    """Delivers to local users' Maildirs after alias expansion."""

    def __init__(self, settings: LocalSettings, resubmit: Resubmit | None = None) -> None:
        self.s = settings
        self.resubmit = resubmit

    async def deliver(self, dest: Destination, req: DeliveryRequest) -> AttemptReport:
        """Deliver `req` to each recipient; one result per recipient."""
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        results = []
        for rcpt in req.recipients:
            results.append(await self._deliver_one(loop, rcpt, req))
        return AttemptReport(results, transmission=time.monotonic() - started)

    async def _deliver_one(self, loop: asyncio.AbstractEventLoop, rcpt: str,
                           req: DeliveryRequest) -> RecipientResult:
        targets = self.expand(rcpt)
        refused = [t for t in targets if t.kind == "refused"]
        if refused:
            return RecipientResult(rcpt, BOUNCED, "5.3.0", refused[0].reason, "local")
        delivered: list[str] = []
        forwards = [t.value for t in targets if t.kind == "forward"]
        for target in targets:
            if target.kind != "user":
                continue
            try:
                await loop.run_in_executor(None, self._maildir_deliver, target.value, rcpt, req)
            except _PermanentError as exc:
                return RecipientResult(rcpt, BOUNCED, exc.dsn, str(exc), "local")
            except OSError as exc:
                return RecipientResult(rcpt, DEFERRED, "4.2.0",
                                       f"cannot update mailbox of {target.value}: {exc.strerror}",
                                       "local")
            delivered.append("delivered to maildir")
        if forwards:
            if self.resubmit is None:
                return RecipientResult(rcpt, DEFERRED, "4.3.0", "forwarding is not available",
                                       "local")
            try:
                qid = await self.resubmit(req.sender, forwards, req)
            except Exception as exc:  # noqa: BLE001 - cleanup errors are transient
                return RecipientResult(rcpt, DEFERRED, "4.3.0", f"cannot forward: {exc}", "local")
            delivered.append(f"forwarded as {qid}")
        return RecipientResult(rcpt, SENT, "2.0.0", ", ".join(delivered) or "delivered", "local")

    # -- aliases -----------------------------------------------------------------------------
    def expand(self, address: str) -> list[_Target]:
        """The final targets of a local address after alias expansion (deduplicated)."""
        out: list[_Target] = []
        seen: set[str] = set()
        self._expand(address, 0, seen, out)
        unique: dict[tuple[str, str], _Target] = {}
        for t in out:
            unique.setdefault((t.kind, t.value), t)
        return list(unique.values())

    def _expand(self, address: str, depth: int, seen: set[str], out: list[_Target]) -> None:
        local, _, domain = address.rpartition("@") if "@" in address else (address, "", "")
        domain = domain.lower()
        if domain and not self.s.local_domains(domain):
            out.append(_Target("forward", address))
            return
        user = local.lower()
        if self.s.recipient_delimiter and self.s.recipient_delimiter in user:
            base = user.split(self.s.recipient_delimiter, 1)[0]
            user = user if user in self.s.aliases else base
        if user in seen or depth > MAX_ALIAS_DEPTH or user not in self.s.aliases:
            out.append(self._user_target(user))
            return
        seen.add(user)
        for target in self.s.aliases[user]:
            if target.startswith("|"):
                out.append(_Target("refused", target, f"alias {user}: delivery to a command is "
                                   "not supported by hardener's local delivery"))
            elif target.startswith("/") or target.startswith("./"):
                out.append(_Target("refused", target, f"alias {user}: delivery to a file is not "
                                   "supported by hardener's local delivery"))
            elif target.lower().startswith(":include:"):
                out.append(_Target("refused", target, f"alias {user}: :include: lists are not "
                                   "supported by hardener's local delivery"))
            elif target.lower() == user:
                out.append(self._user_target(user))
            else:
                # alias values are written in external form ("x y"@example.net); the queue and
                # the recursion take the internal form, as Postfix's local(8) does
                try:
                    internal = internalize(target)
                except AddressError as exc:
                    out.append(_Target("refused", target, f"alias {user}: bad address: {exc}"))
                    continue
                self._expand(internal, depth + 1, seen, out)

    def _user_target(self, user: str) -> _Target:
        if not USER_RE.fullmatch(user):
            return _Target("refused", user, f"unknown user: \"{user[:64]}\"")
        if self.s.require_known_user:
            try:
                pwd.getpwnam(user)
            except KeyError:
                return _Target("refused", user, f"unknown user: \"{user}\"")
        return _Target("user", user)

    # -- Maildir -----------------------------------------------------------------------------
    def _maildir_deliver(self, user: str, rcpt: str, req: DeliveryRequest) -> None:
        """Write one message into spool/USER/Maildir/new (tmp, fsync, rename). Runs in a thread."""
        if not USER_RE.fullmatch(user):
            raise _PermanentError(f"unusable user name {user!r}")
        spool = os.open(self.s.spool_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        fds = [spool]
        try:
            home = _open_subdir(spool, user, 0o700)
            fds.append(home)
            maildir = _open_subdir(home, "Maildir", 0o700)
            fds.append(maildir)
            sub = {name: _open_subdir(maildir, name, 0o700) for name in ("tmp", "new", "cur")}
            fds += list(sub.values())
            name = (f"{int(time.time())}.P{os.getpid()}Q{req.qid}R{secrets.token_hex(4)}."
                    f"{self.s.myhostname.split('.')[0]}")
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600,
                         dir_fd=sub["tmp"])
            try:
                # external (quoted) forms: an address cannot end the header or add another
                head = (f"Return-Path: <{printable_external(req.sender)}>\n"
                        f"Delivered-To: {printable_external(rcpt)}\n").encode("utf-8", "replace")
                _write_all(fd, head)
                content = req.open_content()
                try:
                    while chunk := content.read(65536):
                        _write_all(fd, chunk)
                finally:
                    content.close()
                os.fsync(fd)
            except BaseException:
                os.close(fd)
                os.unlink(name, dir_fd=sub["tmp"])
                raise
            os.close(fd)
            os.rename(name, name, src_dir_fd=sub["tmp"], dst_dir_fd=sub["new"])
            os.fsync(sub["new"])
        finally:
            for fd in fds:
                os.close(fd)


class _PermanentError(Exception):
    def __init__(self, message: str, dsn: str = "5.3.0") -> None:
        super().__init__(message)
        self.dsn = dsn


def _open_subdir(parent: int, name: str, mode: int) -> int:
    """Open (creating if needed) directory `name` below descriptor `parent`, never via a symlink."""
    try:
        os.mkdir(name, mode, dir_fd=parent)
    except FileExistsError:
        pass
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
    except OSError as exc:
        raise _PermanentError(f"mailbox path component {name!r} is not a directory "
                              f"({exc.strerror})") from None
    st = os.fstat(fd)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        os.close(fd)
        raise _PermanentError(f"mailbox directory {name!r} is not owned by the mail system")
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
