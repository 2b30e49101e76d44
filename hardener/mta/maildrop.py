"""Local submission (what `hardener sendmail` does; Postfix's postdrop): the message and its
envelope handed to the daemon's pickup over its socket, QUEUE/public/pickup (pickup_socket.py).

SECURITY: runs with the invoking user's privileges and trusts nothing it is given; pickup
re-validates everything and takes the submitter's uid from the kernel, not from here. The message is
read completely (bounded by message_size_limit, spilled to a private temporary file past 1 MB)
before connecting, so the daemon never waits for a slow stdin. Bounds: the header block read for -t
(MAX_HEADER), the recipient count (pickup's MAX_RECIPIENTS) and message_size_limit.

When the daemon is not running: an ordinary user gets exit 75 (EX_TEMPFAIL) and one line, and the
message is not queued (Postfix would queue it in maildrop/, which only the setgid postdrop may
write; here only pickup writes there). Root, who may write maildrop/ (the mail owner's, mode 0700)
anyway, gets Postfix's behaviour: the file is written there for pickup to find at the next start,
through an O_NOFOLLOW directory fd, created O_EXCL|O_NOFOLLOW under a temporary name, handed to the
mail owner (mode 0600, with `uid: 0`), fsynced and renamed only when complete; one warning line
says so.

Errors are SubmitError with sendmail's exit code (sysexits.h): 64 usage, 65 data error, 73 cannot
create, 75 temporary failure, 78 configuration error.
"""

from __future__ import annotations

import email.parser
import email.policy
import email.utils
import itertools
import os
import pwd
import socket
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from hardener.errors import HardenerError
from hardener.mta.config.config_dir import default_config_dir
from hardener.mta.pickup import (MAX_HEADER, MAX_RECIPIENTS, MaildropError, MaildropWriteError,
                                 check_address, new_maildrop_file, write_maildrop_header)
from hardener.mta.pickup_socket import MAX_REPLY, socket_path
from hardener.postfix.maincf import load_main_cf

EX_OK, EX_USAGE, EX_DATAERR, EX_CANTCREAT, EX_TEMPFAIL, EX_CONFIG = 0, 64, 65, 73, 75, 78
MAIL_CONFIG_ENV = "MAIL_CONFIG"
_CHUNK = 65536
CLIENT_TIMEOUT = 60.0          # seconds for connect, each send and the reply
_SPOOL_IN_MEMORY = 1 << 20     # message bytes kept in memory before a temporary file is used


class SubmitError(Exception):
    """A submission refused or failed: one line, and the sysexits code to exit with."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Submission:
    """What to submit: the envelope options of sendmail's command line."""

    recipients: list[str] = field(default_factory=list)
    sender: str | None = None          # None: the invoking user's login name
    full_name: str | None = None
    extract: bool = False              # -t: recipients from To:, Cc:, Bcc: as well
    ignore_dots: bool = False          # -i: a line with a single '.' does not end the message
    config_dir: str = ""               # -C DIR; "" means $MAIL_CONFIG, else default_config_dir()


def config_directory(submission: Submission, environ: dict[str, str] | None = None) -> Path:
    """-C DIR, else $MAIL_CONFIG, else $HARDENER_CONFIG, else /etc/hardener."""
    environ = dict(os.environ) if environ is None else environ
    chosen = submission.config_dir or environ.get(MAIL_CONFIG_ENV)
    return Path(chosen) if chosen else default_config_dir(environ)


@dataclass(frozen=True)
class QueueSettings:
    """What local submission needs from main.cf."""

    queue_directory: Path
    size_limit: int
    mail_owner: str


def queue_settings(config_dir: Path) -> QueueSettings:
    """queue_directory, message_size_limit and mail_owner from config_dir/main.cf (SubmitError
    78)."""
    try:
        main = load_main_cf(config_dir / "main.cf")
        return QueueSettings(Path(main.get("queue_directory")),
                             main.get_int("message_size_limit"), main.get("mail_owner"))
    except HardenerError as exc:
        raise SubmitError(exc.one_line(), EX_CONFIG) from None


def _read_message(stdin: BinaryIO, ignore_dots: bool) -> Iterator[bytes]:
    """Yield stdin in chunks; without -i a line with a single '.' ends the message."""
    if ignore_dots:
        while chunk := stdin.read(_CHUNK):
            yield chunk
        return
    while True:
        line = stdin.readline(_CHUNK)
        if not line or line in (b".\n", b".\r\n", b"."):
            return
        yield line


def _split_header(chunks: Iterator[bytes]) -> tuple[bytes, bytes]:
    """Read up to the end of the header block (bounded); returns (header block, rest read so far)."""
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        normal = buf.replace(b"\r\n", b"\n")
        end = normal.find(b"\n\n")
        if normal.startswith(b"\n"):
            end = 0
        if end >= 0:
            return bytes(normal[:end + 1]), bytes(normal[end + 1:])
        if len(buf) > MAX_HEADER:
            break
    normal = bytes(buf.replace(b"\r\n", b"\n"))
    return normal, b""


def _header_recipients(header: bytes) -> list[str]:
    """Addresses in To:, Cc: and Bcc: (for -t)."""
    msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(header + b"\n")
    fields = msg.get_all("to", []) + msg.get_all("cc", []) + msg.get_all("bcc", [])
    return [addr for _, addr in email.utils.getaddresses([str(f) for f in fields]) if addr]


def _login_name() -> str:
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _envelope_sender(submission: Submission) -> str:
    sender = _login_name() if submission.sender is None else submission.sender.strip()
    if sender == "<>":
        return ""
    return sender[1:-1] if sender.startswith("<") and sender.endswith(">") else sender


def submit(submission: Submission, stdin: BinaryIO) -> str:
    """Hand the message read from `stdin` to the daemon's pickup; returns the maildrop file name.
    Root, when the daemon is down, writes it into maildrop/ instead (see the module docstring)."""
    conf = queue_settings(config_directory(submission))
    sender = _envelope_sender(submission)
    chunks = _read_message(stdin, submission.ignore_dots)
    head, rest = _split_header(chunks)
    recipients = list(submission.recipients)
    if submission.extract:
        recipients += _header_recipients(head)
    if not recipients:
        raise SubmitError("no recipient addresses (give them as arguments or use -t)", EX_USAGE)
    if len(recipients) > MAX_RECIPIENTS:
        raise SubmitError(f"more than {MAX_RECIPIENTS} recipients", EX_DATAERR)
    try:
        for recipient in recipients:
            check_address(recipient, "recipient")
        check_address(sender, "sender")
    except MaildropError as exc:
        raise SubmitError(str(exc), EX_DATAERR) from None
    with tempfile.SpooledTemporaryFile(_SPOOL_IN_MEMORY) as message:
        size = 0
        for piece in itertools.chain((head, rest), chunks):
            size += len(piece)
            if conf.size_limit and size > conf.size_limit:
                raise SubmitError("message file too big", EX_DATAERR)
            message.write(piece)
        envelope = write_maildrop_header(sender, recipients, submission.full_name)
        try:
            return _hand_to_pickup(socket_path(conf.queue_directory), envelope, message)
        except PickupUnavailable as exc:
            if os.geteuid() != 0:
                raise SubmitError(f"the mail system is not running ({exc}); message not queued",
                                  EX_TEMPFAIL) from None
            name = _write_maildrop(conf, sender, recipients, submission.full_name, message)
            print(f"hardener sendmail: warning: the mail system is not running ({exc}); "
                  f"queued in {conf.queue_directory / 'maildrop'} for pickup at the next start",
                  file=sys.stderr)
            return name


class PickupUnavailable(Exception):
    """Nobody accepts connections on pickup's socket (the daemon is not running)."""


def _hand_to_pickup(path: Path, envelope: bytes, message: BinaryIO) -> str:
    """Send envelope and message on pickup's socket; the maildrop name from its "ok" reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(CLIENT_TIMEOUT)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise PickupUnavailable(f"cannot connect to {path}: {exc.strerror}") from None
        except OSError as exc:
            raise SubmitError(f"cannot connect to {path}: {exc.strerror or exc}",
                              EX_TEMPFAIL) from None
        try:
            sock.sendall(envelope)
            message.seek(0)
            while chunk := message.read(_CHUNK):
                sock.sendall(chunk)
            sock.shutdown(socket.SHUT_WR)
            reply = _read_reply(sock)
        except OSError as exc:
            # pickup refused early (it answers, then closes): its reply says why
            reply = _read_reply(sock, quiet=True)
            if not reply:
                raise SubmitError(f"lost the connection to pickup: {exc.strerror or exc}",
                                  EX_TEMPFAIL) from None
    word, _, text = reply.partition(" ")
    if word == "ok" and text:
        return text
    if word == "error":
        code, _, why = text.partition(" ")
        raise SubmitError(why or "refused by pickup",
                          int(code) if code in ("65", "75") else EX_TEMPFAIL)
    raise SubmitError("no answer from pickup", EX_TEMPFAIL)


def _read_reply(sock: socket.socket, quiet: bool = False) -> str:
    """pickup's one reply line (at most MAX_REPLY bytes; control characters dropped)."""
    data = b""
    try:
        while b"\n" not in data and len(data) < MAX_REPLY:
            chunk = sock.recv(MAX_REPLY)
            if not chunk:
                break
            data += chunk
    except OSError:
        if not quiet:
            raise
    line = data.split(b"\n", 1)[0].decode("ascii", "replace")
    return "".join(c for c in line if c.isprintable())


def _write_maildrop(conf: QueueSettings, sender: str, recipients: list[str],
                    full_name: str | None, message: BinaryIO) -> str:
    """Root, daemon down: write the file into maildrop/ (the mail owner's) as pickup would."""
    maildrop = conf.queue_directory / "maildrop"
    try:
        owner = pwd.getpwnam(conf.mail_owner)
    except KeyError:
        raise SubmitError(f"mail_owner: no such user {conf.mail_owner!r}", EX_CONFIG) from None
    try:
        with new_maildrop_file(maildrop) as (out, name):
            os.fchown(out.fileno(), owner.pw_uid, owner.pw_gid)
            out.write(write_maildrop_header(sender, recipients, full_name, uid=os.getuid()))
            message.seek(0)
            while chunk := message.read(_CHUNK):
                out.write(chunk)
    except MaildropWriteError as exc:
        why = exc.error.strerror
        if exc.stage == "open":
            raise SubmitError(f"cannot open {maildrop}: {why}", EX_CANTCREAT) from None
        if exc.stage == "create":
            raise SubmitError(f"cannot create a file in {maildrop}: {why}", EX_CANTCREAT) \
                from None
        raise SubmitError(f"cannot write {maildrop / exc.temp}: {why}", EX_TEMPFAIL) from None
    return name
