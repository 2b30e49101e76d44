"""`hardener sendmail`: sendmail-compatible local submission into maildrop/.

    hardener sendmail [-C DIR] [-f SENDER] [-F NAME] [-t] [-i|-oi] [-oX...] [--] RCPT...

Reads the message on stdin and writes it, with its envelope, into queue_directory/maildrop/ as the
invoking user; the daemon's pickup moves it into the queue. Exit codes are sendmail's (sysexits.h):
0 ok, 64 usage, 65 data error, 73 cannot create, 75 temporary failure, 78 configuration error, with
one line on stderr. The config directory is -C DIR, else $MAIL_CONFIG, else /etc/hardener.

SECURITY: runs with the invoking user's privileges and trusts nothing: pickup re-validates the file.
The file is written under a temporary name (mode 0600) and renamed to its final name only when
complete, so pickup never sees half a message.
"""

from __future__ import annotations

import itertools
import os
import pwd
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import typer

EX_OK, EX_USAGE, EX_DATAERR, EX_CANTCREAT, EX_TEMPFAIL, EX_CONFIG = 0, 64, 65, 73, 75, 78
DEFAULT_CONFIG = "/etc/hardener"
_MAX_HEADER = 1 << 20
_CHUNK = 65536


class SendmailError(Exception):
    """One-line error with a sysexits code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class SendmailArgs:
    """The parsed command line."""

    config_dir: str = ""
    sender: str | None = None
    full_name: str | None = None
    extract: bool = False
    ignore_dots: bool = False
    recipients: list[str] = field(default_factory=list)


def parse_args(argv: list[str]) -> SendmailArgs:
    """Parse sendmail's option syntax (-fSENDER and -f SENDER both work)."""
    args = SendmailArgs()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            args.recipients += argv[i + 1:]
            break
        if not arg.startswith("-") or arg == "-":
            args.recipients.append(arg)
            i += 1
            continue
        opt = arg[1:2]
        rest = arg[2:]

        def value() -> str:
            nonlocal i
            if rest:
                return rest
            i += 1
            if i >= len(argv):
                raise SendmailError(f"option -{opt} requires an argument", EX_USAGE)
            return argv[i]

        if opt in ("f", "r"):
            args.sender = value()
        elif opt == "F":
            args.full_name = value()
        elif opt == "C":
            args.config_dir = value()
        elif opt == "t" and not rest:
            args.extract = True
        elif opt == "i" and not rest:
            args.ignore_dots = True
        elif opt == "o":
            if rest == "i":
                args.ignore_dots = True
            elif not rest:
                value()  # -o X: an option letter we ignore, as Postfix's sendmail does
        elif opt == "b":
            if rest not in ("m", ""):
                raise SendmailError(f"-b{rest} is not supported (only delivery mode -bm)",
                                    EX_USAGE)
        elif opt in ("N", "R", "V", "X", "B", "h", "L", "O", "p", "q"):
            if opt == "q" or opt == "p":
                raise SendmailError(f"-{opt} is not supported; use `hardener mta queue`",
                                    EX_USAGE)
            if not rest:
                value()
        elif opt in ("v", "n", "m", "U", "G", "d", "s", "e", "A"):
            pass
        else:
            raise SendmailError(f"unknown option {arg!r}", EX_USAGE)
        i += 1
    return args


def _config(args: SendmailArgs) -> tuple[Path, int]:
    """(maildrop directory, message_size_limit) from main.cf."""
    from hardener.errors import HardenerError
    from hardener.postfix.maincf import load_main_cf

    config_dir = args.config_dir or os.environ.get("MAIL_CONFIG") or DEFAULT_CONFIG
    try:
        main = load_main_cf(Path(config_dir) / "main.cf")
        queue_dir = Path(main.get("queue_directory"))
        limit = main.get_int("message_size_limit")
    except HardenerError as exc:
        raise SendmailError(exc.one_line(), EX_CONFIG) from None
    return queue_dir / "maildrop", limit


def _read_message(stdin: BinaryIO, ignore_dots: bool):
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


def _split_header(chunks) -> tuple[bytes, bytes]:
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
        if len(buf) > _MAX_HEADER:
            break
    normal = bytes(buf.replace(b"\r\n", b"\n"))
    return normal, b""


def _header_recipients(header: bytes) -> list[str]:
    """Addresses in To:, Cc: and Bcc: (for -t)."""
    import email.parser
    import email.policy

    msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(header + b"\n")
    fields = msg.get_all("to", []) + msg.get_all("cc", []) + msg.get_all("bcc", [])
    import email.utils

    return [addr for _, addr in email.utils.getaddresses([str(f) for f in fields]) if addr]


def submit(args: SendmailArgs, stdin: BinaryIO) -> str:
    """Write the message into maildrop/; returns the maildrop file name."""
    from hardener.mta.pickup import (MaildropError, check_address, new_maildrop_name,
                                     write_maildrop_header)

    maildrop, size_limit = _config(args)
    login = pwd.getpwuid(os.getuid()).pw_name if _has_pw(os.getuid()) else str(os.getuid())
    sender = login if args.sender is None else args.sender.strip()
    if sender == "<>":
        sender = ""
    sender = sender[1:-1] if sender.startswith("<") and sender.endswith(">") else sender
    chunks = _read_message(stdin, args.ignore_dots)
    head, rest = _split_header(chunks)
    recipients = list(args.recipients)
    if args.extract:
        recipients += _header_recipients(head)
    if not recipients:
        raise SendmailError("no recipient addresses (give them as arguments or use -t)", EX_USAGE)
    try:
        for r in recipients:
            check_address(r, "recipient")
        check_address(sender, "sender")
    except MaildropError as exc:
        raise SendmailError(str(exc), EX_DATAERR) from None
    name = new_maildrop_name()
    tmp = maildrop / f"t{name}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise SendmailError(f"cannot create a file in {maildrop}: {exc.strerror}",
                            EX_CANTCREAT) from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(write_maildrop_header(sender, recipients, args.full_name))
            size = 0
            for piece in itertools.chain((head, rest), chunks):
                size += len(piece)
                if size_limit and size > size_limit:
                    raise SendmailError("message file too big", EX_DATAERR)
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
            raise SendmailError(f"cannot write {tmp}: {exc.strerror}", EX_TEMPFAIL) from None
        raise
    return name


def _has_pw(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False


def run(argv: list[str], stdin: BinaryIO | None = None) -> int:
    """Run sendmail with `argv` (without the program name); returns the exit code."""
    try:
        args = parse_args(argv)
        submit(args, stdin or sys.stdin.buffer)
    except SendmailError as exc:
        print(f"hardener sendmail: error: {exc}", file=sys.stderr)
        return exc.code
    return EX_OK


def register(app: typer.Typer) -> None:
    """Add the sendmail command to the main app."""

    @app.command("sendmail", context_settings={"allow_extra_args": True,
                                               "ignore_unknown_options": True,
                                               "allow_interspersed_args": False,
                                               "help_option_names": ["--help"]})
    def sendmail(ctx: typer.Context) -> None:
        """Submit a message read from stdin (sendmail-compatible: -f, -F, -t, -i/-oi, -C DIR)."""
        raise typer.Exit(run(list(ctx.args)))
