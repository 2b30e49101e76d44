"""Local submission: one message and its envelope written into queue_directory/maildrop/, where the
daemon's pickup finds it (what `hardener sendmail` does; Postfix's postdrop).

SECURITY: runs with the invoking user's privileges and trusts nothing it is given; pickup
re-validates the file anyway. The file is created under a temporary name with O_EXCL|O_NOFOLLOW,
mode 0600, fsynced, and renamed to its final name only when complete, so pickup never sees half a
message; on any failure the temporary file is removed. Bounds: the header block read for -t
(MAX_HEADER), the recipient count (pickup's MAX_RECIPIENTS) and message_size_limit.

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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from hardener.errors import HardenerError
from hardener.mta.config.config_dir import default_config_dir
from hardener.mta.pickup import (MAX_HEADER, MAX_RECIPIENTS, MaildropError, check_address,
                                 new_maildrop_name, write_maildrop_header)
from hardener.postfix.maincf import load_main_cf

EX_OK, EX_USAGE, EX_DATAERR, EX_CANTCREAT, EX_TEMPFAIL, EX_CONFIG = 0, 64, 65, 73, 75, 78
MAIL_CONFIG_ENV = "MAIL_CONFIG"
_CHUNK = 65536


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


def maildrop_settings(config_dir: Path) -> tuple[Path, int]:
    """(maildrop directory, message_size_limit) from config_dir/main.cf (SubmitError 78)."""
    try:
        main = load_main_cf(config_dir / "main.cf")
        queue_dir = Path(main.get("queue_directory"))
        limit = main.get_int("message_size_limit")
    except HardenerError as exc:
        raise SubmitError(exc.one_line(), EX_CONFIG) from None
    return queue_dir / "maildrop", limit


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
    """Write the message read from `stdin` into maildrop/; returns the maildrop file name."""
    maildrop, size_limit = maildrop_settings(config_directory(submission))
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
    name = new_maildrop_name()
    tmp = maildrop / f"t{name}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise SubmitError(f"cannot create a file in {maildrop}: {exc.strerror}",
                          EX_CANTCREAT) from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(write_maildrop_header(sender, recipients, submission.full_name))
            size = 0
            for piece in itertools.chain((head, rest), chunks):
                size += len(piece)
                if size_limit and size > size_limit:
                    raise SubmitError("message file too big", EX_DATAERR)
                out.write(piece)
            out.flush()
            os.fsync(out.fileno())
        os.rename(tmp, maildrop / name)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise SubmitError(f"cannot write {tmp}: {exc.strerror}", EX_TEMPFAIL) from None
        raise
    return name
