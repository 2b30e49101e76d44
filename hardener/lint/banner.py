"""banner-leak: the software name, its version or the OS in what smtpd says to every client.

Two texts come from main.cf: the greeting is `220 ` + smtpd_banner after expansion (`$mail_name`
becomes "Postfix", `$mail_version` "3.7.11"), and smtpd_reject_footer is appended to every 4xx and
5xx reply. Postfix expands only session attributes in the footer ($client_address, $server_name,
...), not main.cf parameters, so it is read as written with its `$names` left out and `\\n` as a
line break. The greeting's first word and myhostname are the host's name and are not searched (a
host may be called debian.example). What counts as a leak is hardener.controls.disclosure, the
same list the audit applies to the replies it receives.
"""

from __future__ import annotations

import re

from hardener.controls.disclosure import leaks as disclosures
from hardener.controls.disclosure import scrub
from hardener.lint.base import LintContext, finding
from hardener.report.model import Finding

_LEAKY_MACROS = re.compile(r"\$(?:\{|\()?(mail_name|mail_version|mail_release_date)\b")
_FOOTER_ATTRIBUTE = re.compile(r"\$(?:\{[^}]*\}|\([^)]*\)|\w+)")


def leaks(text: str) -> list[str]:
    """The software, OS and version texts found in `text`, in catalog order, without repeats."""
    return list(dict.fromkeys(matched for _label, matched in disclosures(text)))


def footer_text(raw: str) -> str:
    """smtpd_reject_footer as clients see it, minus session attributes (which leak no product)."""
    text = raw[2:] if raw.startswith("\\c") else raw
    return _FOOTER_ATTRIBUTE.sub(" ", text.replace("\\n", "\n"))


def check_banner_leak(ctx: LintContext) -> list[Finding]:
    """banner-leak: smtpd_banner (expanded, after the host name) or smtpd_reject_footer leaks."""
    hostname = ctx.value("myhostname").strip()
    found: list[Finding] = []
    banner = ctx.value("smtpd_banner")
    words = leaks(scrub(" ".join(banner.split()[1:]), (hostname,)))
    if words:
        raw = ctx.written("smtpd_banner")
        macros = list(dict.fromkeys(f"${m.group(1)}" for m in _LEAKY_MACROS.finditer(raw)))
        via = f" (through {', '.join(macros)})" if macros else ""
        written = f"smtpd_banner = {' '.join(raw.split())}" if ctx.is_set("smtpd_banner") else (
            f"smtpd_banner is unset: the default `{raw}`")
        owner = ctx.origin("smtpd_banner", words[0].split()[0])
        found.append(finding(ctx, "banner-leak", owner,
                             f"{written} expands to `220 {banner}`, disclosing "
                             f"{', '.join(f'`{w}`' for w in words)}{via}"
                             f"{ctx.origin_text('smtpd_banner', owner)}"))
    footer = ctx.raw("smtpd_reject_footer") if ctx.is_set("smtpd_reject_footer") else None
    if footer:
        words = leaks(scrub(footer_text(footer), (hostname,)))
        if words:
            found.append(finding(ctx, "banner-leak", "smtpd_reject_footer",
                                 f"smtpd_reject_footer = {' '.join(footer.split())} is appended to "
                                 f"every 4xx and 5xx reply, disclosing "
                                 f"{', '.join(f'`{w}`' for w in words)}"))
    return found


CHECKS = {"banner-leak": check_banner_leak}
