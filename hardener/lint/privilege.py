"""chroot-disabled: network-facing services in master.cf that do not run chrooted.

The services judged are the ones that talk to the network or parse what arrives from it: smtpd,
postscreen, tlsproxy, dnsblog, smtp, lmtp and cleanup (hardener's MTA listener too). local,
virtual, pipe, proxymap and the like cannot be chrooted and are left alone, as Postfix's own
master.cf does. A `-` in the chroot column means Postfix's default, `n` since Postfix 3.0.
"""

from __future__ import annotations

from typing import Any

from hardener.lint.base import LintContext, Skip
from hardener.report.model import Finding, Location

NETWORK_FACING = ("smtpd", "postscreen", "tlsproxy", "dnsblog", "smtp", "lmtp", "cleanup")


def command_name(service: Any) -> str:
    """The program a master.cf service runs ('smtpd' for 'smtpd -v', 'hardener' for a path)."""
    command = str(getattr(service, "command", "") or "").split()
    return command[0].rsplit("/", 1)[-1] if command else ""


def is_chrooted(service: Any) -> bool:
    """The chroot column as a boolean ('-' is Postfix's default: no)."""
    value = getattr(service, "chroot", None)
    if isinstance(value, bool):
        return value
    return str(value or "-").strip().lower() in ("y", "yes")


def _chroot_text(service: Any) -> str:
    """The chroot column as written (4th of the 7 columns after the name)."""
    columns = getattr(service, "columns", ()) or ()
    if len(columns) >= 4:
        return str(columns[3])
    return "y" if is_chrooted(service) else "n"


def check_chroot(ctx: LintContext) -> list[Finding]:
    """chroot-disabled: one finding per network-facing service whose chroot column is not y."""
    if ctx.master is None:
        raise Skip("no master.cf beside main.cf")
    found = []
    for service in ctx.master.services:
        program = command_name(service)
        if program not in NETWORK_FACING and "hardener" not in program:
            continue
        if is_chrooted(service):
            continue
        name = getattr(service, "name", "?")
        kind = getattr(service, "type", "?")
        column = _chroot_text(service)
        meaning = " (Postfix's default: n)" if column == "-" else ""
        found.append(Finding.of(
            "chroot-disabled",
            f"master.cf service `{name} {kind}` runs {program} with chroot column "
            f"`{column}`{meaning}: a compromise reaches the whole file system",
            location=Location(str(ctx.master_path), getattr(service, "line", None))))
    return found


CHECKS = {"chroot-disabled": check_chroot}
