"""`hardener mta passwd USER [--config DIR] [--delete] [--password-stdin]`: manage the SASL users
of hardener's smtpd (the credentials file, hardener_sasl_passwd_file). Joined under `hardener mta`
by mta_cmd.py.

The password is asked for twice on the terminal, or read as one line from standard input with
--password-stdin (for scripts); never from the command line, where other users could read it in
/proc, and never printed. Runs as root: the file is root's, group the mail owner's, mode 0640.
"""

from __future__ import annotations

import getpass
import os
import pwd
import sys
from typing import Annotated

import typer

from hardener.cli.common import CONFIG_DEFAULT, ConfigDirOption, command_app
from hardener.errors import InputError
from hardener.mta.config.sasl import passwd_file
from hardener.mta.sasl_passwd import (MAX_PASSWORD_BYTES, PasswordError, check_name, delete_user,
                                      write_user)
from hardener.postfix.maincf import load_main_cf

app = command_app()

UserArgument = Annotated[str, typer.Argument(metavar="USER", help="The SASL user name.")]
DeleteOption = Annotated[bool, typer.Option("--delete", help="Remove USER.")]
StdinOption = Annotated[bool, typer.Option(
    "--password-stdin", help="Read the password as one line from standard input.")]


def _password_from_stdin() -> bytes:
    data = sys.stdin.buffer.readline(MAX_PASSWORD_BYTES + 3)
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    if len(data) > MAX_PASSWORD_BYTES:
        raise InputError(f"the password is longer than {MAX_PASSWORD_BYTES} bytes",
                         field="--password-stdin")
    return data


def _password_from_terminal(user: str) -> bytes:
    if not sys.stdin.isatty():
        raise InputError("no terminal to ask for the password: use --password-stdin",
                         field="USER")
    first = getpass.getpass(f"New password for {user}: ")
    if getpass.getpass("Retype it: ") != first:
        raise InputError("the passwords differ; nothing changed", field="USER")
    return first.encode("utf-8", "surrogateescape")


@app.command("passwd")
def passwd(user: UserArgument, config: ConfigDirOption = CONFIG_DEFAULT,
           delete: DeleteOption = False, password_stdin: StdinOption = False) -> None:
    """Set (or with --delete remove) the password of SASL user USER."""
    if os.geteuid() != 0:
        raise InputError("must run as root (the credentials file is root's)")
    main = load_main_cf(config / "main.cf")
    path = passwd_file(main)
    owner = main.get("mail_owner")
    try:
        gid = pwd.getpwnam(owner).pw_gid
    except KeyError:
        raise InputError(f"no such user {owner!r}", file=main.filename, field="mail_owner") \
            from None
    try:
        check_name(user)
        if delete:
            if not delete_user(path, user, gid):
                raise InputError(f"no user {user!r} in {path}", field="USER")
            typer.echo(f"{user}: removed from {path}")
            return
        password = _password_from_stdin() if password_stdin else _password_from_terminal(user)
        write_user(path, user, password, gid)
    except PasswordError as exc:
        raise InputError(str(exc), field="USER") from None
    typer.echo(f"{user}: password set in {path} (running daemons read it on reload)")
