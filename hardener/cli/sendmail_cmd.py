"""`hardener sendmail`: sendmail-compatible local submission (the command line of
hardener.mta.maildrop, which hands the message to the daemon's pickup over QUEUE/public/pickup;
any user may run it, pickup records the user's uid as the kernel reports it).

    hardener sendmail [-C DIR] [-f SENDER] [-F NAME] [-t] [-i|-oi] [-oX...] [--] RCPT...

Its flags are sendmail(1)'s, not hardener's conventions: -C DIR (else $MAIL_CONFIG, else
$HARDENER_CONFIG, else /etc/hardener), and its exit codes are sendmail's (sysexits.h): 0 ok,
64 usage, 65 data error, 73 cannot create, 75 temporary failure, 78 configuration error, with one
line on stderr.
"""

from __future__ import annotations

import sys
from typing import BinaryIO

import typer

from hardener.cli.common import command_app
from hardener.mta.maildrop import EX_OK, EX_USAGE, Submission, SubmitError, submit

app = command_app()

SENDMAIL_EPILOG = (
    "Reads the message on standard input. Flags (sendmail's): -f SENDER envelope sender (-f '<>' "
    "for none); -F NAME full name; -t add the recipients of To:, Cc: and Bcc:; -i or -oi a line "
    "with a single '.' does not end the message; -C DIR the directory holding main.cf (else "
    "$MAIL_CONFIG, else $HARDENER_CONFIG, else /etc/hardener). Exit status (sysexits.h): 0 "
    "queued; 64 usage; 65 bad data; 73 cannot create the file; 75 temporary failure (the mail "
    "system is not running: only root's message is then queued, in maildrop/); 78 "
    "configuration error.")


def parse_args(argv: list[str]) -> Submission:
    """Parse sendmail's option syntax (-fSENDER and -f SENDER both work); SubmitError 64 for a
    bad option."""
    args = Submission()
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
                raise SubmitError(f"option -{opt} requires an argument", EX_USAGE)
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
                raise SubmitError(f"-b{rest} is not supported (only delivery mode -bm)",
                                    EX_USAGE)
        elif opt in ("N", "R", "V", "X", "B", "h", "L", "O", "p", "q"):
            if opt == "q" or opt == "p":
                raise SubmitError(f"-{opt} is not supported; use `hardener mta queue`",
                                    EX_USAGE)
            if not rest:
                value()
        elif opt in ("v", "n", "m", "U", "G", "d", "s", "e", "A"):
            pass
        else:
            raise SubmitError(f"unknown option {arg!r}", EX_USAGE)
        i += 1
    return args


def run(argv: list[str], stdin: BinaryIO | None = None) -> int:
    """Run sendmail with `argv` (without the program name); returns the exit code."""
    try:
        submit(parse_args(argv), stdin or sys.stdin.buffer)
    except SubmitError as exc:
        print(f"hardener sendmail: error: {exc}", file=sys.stderr)
        return exc.code
    return EX_OK


@app.command("sendmail", epilog=SENDMAIL_EPILOG,
             context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                               "allow_interspersed_args": False, "help_option_names": ["--help"]})
def sendmail(ctx: typer.Context) -> None:
    """Submit a message read from stdin (sendmail-compatible: -f, -F, -t, -i/-oi, -C DIR)."""
    raise typer.Exit(run(list(ctx.args)))
