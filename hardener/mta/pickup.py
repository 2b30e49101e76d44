"""pickup: moves locally submitted mail from maildrop/ through cleanup into incoming/.

SECURITY: runs as the mail owner (hardener/mta/master/pickup_process.py). maildrop/ is the mail
owner's (mode 0700): local users no longer write there themselves; they hand their message to
pickup's socket (hardener/mta/pickup_socket.py), and pickup writes the file, with the submitter's
uid as the kernel reported it (SO_PEERCRED) in a `uid:` line. Root may also write there (`hardener
sendmail` run by root while the daemon is down, an admin): such a file is not the mail owner's,
and its submitter is its owner, never what a `uid:` line in it says (refused there).
pickup still trusts nothing it reads: it opens each file with O_NOFOLLOW|O_NONBLOCK and checks it
is a regular file with one link (a hard link to somebody else's file is refused, never mailed),
that its name is a maildrop id, that it is not larger than message_size_limit, and that the
envelope block is well formed with sane addresses; anything else is moved to corrupt/ and logged.
The submitter's uid is logged (`QUEUEID: uid=1000 from=<alice@...>`, as Postfix's pickup) and
written in the Received: header. It only renames or unlinks names in maildrop/ (a planted link is
moved or removed, never followed) and writes only through cleanup (local_submission=True: missing
Date:, Message-ID:, From: added, bare LF normalised).

File format (written by pickup_socket, or by `hardener sendmail` run by root while the daemon is
down; see write_maildrop_header()):

    hardener-maildrop: 1
    sender: alice                  (percent-encoded like queue files; empty = null sender)
    full-name: Alice%20Example     (optional; sendmail -F)
    recipient: bob@example.com     (one or more)
    uid: 1000                      (the submitter, as the kernel reported it; see above)
    <blank line>
    <message as given on stdin>
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import secrets
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from hardener.mta.address_form import AddressError, internalize, printable_external
from hardener.mta.maillog import get_logger
from hardener.mta.queue.file import QueueFileError, decode_value, encode_value
from hardener.mta.safe_open import create_exclusive, open_dir

log = get_logger("pickup")

MAGIC = "hardener-maildrop"
VERSION = 1
NAME_RE = re.compile(r"[0-9A-F]{20}")
MAX_HEADER = 1 << 20
MAX_RECIPIENTS = 1000
MAX_ADDRESS = 998
_CHUNK = 65536
_STALE_TEMP = 86400


class MaildropError(Exception):
    """A maildrop file that pickup refuses."""


def new_maildrop_name() -> str:
    """A fresh maildrop file name: 20 uppercase hex digits (time + random)."""
    return f"{time.time_ns() // 1000 & 0xFFFFFFFFFFFF:012X}{secrets.randbits(32):08X}"


def check_address(address: str, what: str) -> str:
    """The internal form of an address a local user gave (address_form.internalize, the same parser
    smtpd uses); MaildropError with one line saying what is wrong: control characters, a space or
    special outside quotes, a bad domain, too long."""
    if len(address) > MAX_ADDRESS:
        raise MaildropError(f"{what} address too long")
    try:
        return internalize(address)
    except AddressError as exc:
        raise MaildropError(f"{what} address {exc}") from None


def write_maildrop_header(sender: str, recipients: list[str], full_name: str | None,
                          uid: int | None = None) -> bytes:
    """The envelope block of a maildrop file (`uid`: the submitter, when pickup writes it)."""
    lines = [f"{MAGIC}: {VERSION}", f"sender: {encode_value(sender)}".rstrip(" ")]
    if full_name:
        lines.append(f"full-name: {encode_value(full_name)}")
    lines += [f"recipient: {encode_value(r)}" for r in recipients]
    if uid is not None:
        lines.append(f"uid: {int(uid)}")
    return ("\n".join(lines) + "\n\n").encode("ascii")


class MaildropWriteError(Exception):
    """Writing a maildrop file failed. `stage`: "open" (the directory), "create" (the temporary
    file) or "write" (writing, fsync or rename); `temp`: the temporary's name; `error`: the
    OSError."""

    def __init__(self, stage: str, temp: str, error: OSError) -> None:
        super().__init__(f"{stage} {temp}: {error.strerror or error}")
        self.stage, self.temp, self.error = stage, temp, error


@contextmanager
def new_maildrop_file(maildrop: str | os.PathLike[str]) -> Iterator[tuple[BinaryIO, str]]:
    """A maildrop file written all-or-nothing: yields (file, name); the caller writes the envelope
    block (write_maildrop_header) and the message into the file. On a normal exit it is fsynced
    and renamed from tNAME to NAME (a maildrop id, which pickup picks up only then); on any
    exception the temporary is removed and the exception re-raised, an OSError as
    MaildropWriteError. tNAME is created O_EXCL|O_NOFOLLOW, mode 0600, through an O_NOFOLLOW
    directory fd (safe_open), as root writes it too."""
    name = new_maildrop_name()
    temp = f"t{name}"
    try:
        dfd = open_dir(Path(maildrop))
    except OSError as exc:
        raise MaildropWriteError("open", temp, exc) from None
    try:
        try:
            fd = create_exclusive(temp, 0o600, dir_fd=dfd)
        except OSError as exc:
            raise MaildropWriteError("create", temp, exc) from None
        try:
            with os.fdopen(fd, "wb") as out:
                yield out, name
                out.flush()
                os.fsync(out.fileno())
            os.rename(temp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            os.fsync(dfd)
        except BaseException as exc:
            try:
                os.unlink(temp, dir_fd=dfd)
            except OSError:
                pass
            if isinstance(exc, OSError):
                raise MaildropWriteError("write", temp, exc) from None
            raise
    finally:
        os.close(dfd)


@dataclass(frozen=True)
class MaildropEnvelope:
    """The envelope block of a maildrop file, validated."""

    sender: str
    recipients: list[str]
    full_name: str | None
    uid: int | None     # the `uid:` line; trusted only in a file pickup wrote itself


def parse_maildrop_header(block: bytes) -> MaildropEnvelope:
    """The envelope of a maildrop file or of a submission on pickup's socket; MaildropError if
    malformed (one line saying what)."""
    try:
        text = block.decode("ascii")
    except UnicodeDecodeError:
        raise MaildropError("non-ASCII byte in the envelope") from None
    lines = text.split("\n")
    if not lines or lines[0] != f"{MAGIC}: {VERSION}":
        raise MaildropError("not a hardener maildrop file")
    sender: str | None = None
    full_name: str | None = None
    uid: int | None = None
    recipients: list[str] = []
    try:
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if not sep or " " in value:
                raise MaildropError(f"malformed envelope line {line[:60]!r}")
            if name == "sender" and sender is None:
                sender = check_address(decode_value(value), "sender")
            elif name == "full-name" and full_name is None:
                full_name = decode_value(value)[:200]
            elif name == "recipient":
                rcpt = check_address(decode_value(value), "recipient")
                if not rcpt:
                    raise MaildropError("empty recipient")
                recipients.append(rcpt)
                if len(recipients) > MAX_RECIPIENTS:
                    raise MaildropError("too many recipients")
            elif name == "uid" and uid is None:
                if not value.isdigit() or len(value) > 10:
                    raise MaildropError(f"malformed uid {value[:20]!r}")
                uid = int(value)
            else:
                raise MaildropError(f"unexpected envelope field {name[:40]!r}")
    except (QueueFileError, UnicodeError) as exc:
        raise MaildropError(str(exc)) from None
    if sender is None:
        raise MaildropError("no sender")
    if not recipients:
        raise MaildropError("no recipients")
    return MaildropEnvelope(sender, recipients, full_name, uid)


class Pickup:
    """Polls maildrop/ every `interval` seconds (or when woken) and queues what it finds."""

    def __init__(self, layout: object, cleanup: object, *, myorigin: str, size_limit: int,
                 interval: float = 1.0, before_queueing: Callable[[], None] | None = None) -> None:
        self.layout = layout
        self.cleanup = cleanup
        self.myorigin = myorigin
        self.size_limit = size_limit
        self.interval = interval
        # called once per scan that finds work, before anything is logged (pickup_process: fetch
        # a fresh log descriptor after rotation)
        self.before_queueing = before_queueing
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        """Scan maildrop/ now."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the current file and stop."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Scan until stop()."""
        while not self._stopping:
            await self.scan()
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    async def scan(self) -> int:
        """Queue every complete file in maildrop/; returns how many were queued."""
        maildrop = self.layout.dir("maildrop")
        queued = 0
        try:
            names = sorted(os.listdir(maildrop))
        except OSError as exc:
            log.warning(f"cannot read {maildrop}: {exc.strerror}")
            return 0
        if self.before_queueing is not None and any(NAME_RE.fullmatch(n) for n in names):
            self.before_queueing()
        for name in names:
            if self._stopping:
                break
            if NAME_RE.fullmatch(name):
                queued += await self._pick(name)
            elif name.startswith("t"):
                self._remove_stale(name)
        return queued

    def _remove_stale(self, name: str) -> None:
        """Remove a temporary file an interrupted sendmail left behind (after a day)."""
        path = self.layout.dir("maildrop") / name
        try:
            st = os.lstat(path)
            if time.time() - st.st_mtime > _STALE_TEMP:
                os.unlink(path)
        except OSError:
            pass

    async def _pick(self, name: str) -> int:
        path = self.layout.dir("maildrop") / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return 0
        except OSError as exc:
            self._reject(name, f"cannot open: {exc.strerror}")
            return 0
        with os.fdopen(fd, "rb") as fh:
            try:
                st = os.fstat(fh.fileno())
                if not stat.S_ISREG(st.st_mode):
                    raise MaildropError("not a regular file")
                if st.st_nlink != 1:
                    raise MaildropError(f"file has {st.st_nlink} links (a hard link is refused)")
                if self.size_limit and st.st_size > self.size_limit + MAX_HEADER:
                    raise MaildropError("message file too big")
                block = _read_block(fh)
                envelope = parse_maildrop_header(block)
                content_size = st.st_size - len(block) - 2
                if self.size_limit and content_size > self.size_limit:
                    raise MaildropError("message file too big")
                submitter = submitter_uid(envelope, st.st_uid)
            except MaildropError as exc:
                self._reject(name, str(exc))
                return 0
            user = _user_name(submitter)
            sender = self._qualify(envelope.sender) if envelope.sender else ""
            recipients = [self._qualify(r) for r in envelope.recipients]
            try:
                writer = self.cleanup.begin(sender, recipients, client=("localhost", "127.0.0.1"),
                                            helo="", protocol="local", local_submission=True,
                                            full_name=envelope.full_name,
                                            submitter=str(submitter))
                while chunk := fh.read(_CHUNK):
                    await writer.write(chunk)
                qid = await writer.commit()
            except Exception as exc:  # noqa: BLE001 - cleanup errors: leave the file, retry later
                log.warning(f"{name}: cannot queue, will retry: {exc}")
                try:
                    await writer.abort()  # type: ignore[possibly-undefined]
                except Exception:  # noqa: BLE001
                    pass
                return 0
        log.info(f"{qid}: uid={submitter} from=<{printable_external(sender)}>"
                 + (f" ({user})" if user else ""))
        try:
            os.unlink(path)
        except OSError as exc:
            log.warning(f"{name}: queued as {qid} but cannot remove: {exc.strerror}")
        return 1

    def _qualify(self, address: str) -> str:
        return address if "@" in address else f"{address}@{self.myorigin}"

    def _reject(self, name: str, reason: str) -> None:
        log.warning(f"{name}: refused maildrop file, moved to corrupt/: {reason}")
        try:
            os.rename(self.layout.dir("maildrop") / name, self.layout.dir("corrupt") / name)
        except OSError:
            try:
                os.unlink(self.layout.dir("maildrop") / name)
            except OSError:
                pass


def submitter_uid(envelope: MaildropEnvelope, file_owner: int) -> int:
    """Who submitted a maildrop file. A file this process owns was written by pickup's socket
    server in a directory only the mail owner writes: its `uid:` line is what SO_PEERCRED said.
    Any other file was put there by root (or left by an older version): its owner is the
    submitter, and a `uid:` line in it is a forgery (MaildropError)."""
    if file_owner == os.geteuid():
        return envelope.uid if envelope.uid is not None else file_owner
    if envelope.uid is not None and envelope.uid != file_owner:
        raise MaildropError(f"uid line ({envelope.uid}) in a file owned by uid {file_owner}")
    return file_owner


def _read_block(fh) -> bytes:
    """The envelope block up to the blank line (bounded); leaves `fh` at the message start."""
    buf = bytearray()
    while True:
        line = fh.readline(MAX_HEADER)
        if not line:
            raise MaildropError("truncated file (no end of envelope)")
        if line == b"\n":
            return bytes(buf[:-1]) if buf.endswith(b"\n") else bytes(buf)
        buf += line
        if len(buf) > MAX_HEADER:
            raise MaildropError("envelope too large")


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""
