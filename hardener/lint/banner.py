"""banner-leak: the software name, its version or the OS in the SMTP greeting.

The greeting is smtpd_banner after expansion, so `$mail_name` becomes "Postfix" and `$mail_version`
"3.7.11". The host name ($myhostname) is left out of the search: a host may be called debian.example.
"""

from __future__ import annotations

import re

from hardener.lint.base import LintContext, finding
from hardener.report.model import Finding

# Names that identify software or an operating system (matched as whole words, case-insensitive).
LEAK_WORDS = ("postfix", "hardener", "exim", "sendmail", "qmail", "opensmtpd", "haraka", "zimbra",
              "exchange", "aiosmtpd", "python", "debian", "ubuntu", "centos", "red hat", "redhat",
              "rhel", "fedora", "suse", "opensuse", "alpine", "freebsd", "openbsd", "netbsd",
              "gnu", "linux", "windows", "raspbian", "almalinux", "rocky")
_WORDS_RE = re.compile(r"(?<![\w-])(" + "|".join(re.escape(w) for w in LEAK_WORDS) + r")(?![\w-])",
                       re.IGNORECASE)
_VERSION_RE = re.compile(r"(?<![\w.])v?\d+\.\d+(?:\.\d+)*(?![\w.])")
_LEAKY_MACROS = re.compile(r"\$(?:\{|\()?(mail_name|mail_version|mail_release_date)\b")


def leaks(text: str) -> list[str]:
    """The software, version and OS words found in `text`, in order, without repeats."""
    found = [m.group(0) for m in _WORDS_RE.finditer(text)]
    found += [m.group(0) for m in _VERSION_RE.finditer(text)]
    return list(dict.fromkeys(found))


def check_banner_leak(ctx: LintContext) -> list[Finding]:
    """banner-leak: smtpd_banner (expanded) names the software, its version or the OS."""
    banner = ctx.value("smtpd_banner")
    hostname = ctx.value("myhostname").strip()
    searched = banner.replace(hostname, " ") if hostname else banner
    words = leaks(searched)
    raw = ctx.written("smtpd_banner")
    macros = list(dict.fromkeys(f"${m.group(1)}" for m in _LEAKY_MACROS.finditer(raw)))
    if not words and not macros:
        return []
    what = ", ".join(f"`{w}`" for w in words) or ", ".join(macros)
    written = f"smtpd_banner = {' '.join(raw.split())}" if ctx.is_set("smtpd_banner") else (
        f"smtpd_banner is unset: the default `{raw}`")
    owner = ctx.origin("smtpd_banner", words[0]) if words else "smtpd_banner"
    return [finding(ctx, "banner-leak", owner,
                    f"{written} expands to `220 {banner}`, disclosing {what}"
                    f"{ctx.origin_text('smtpd_banner', owner)}")]


CHECKS = {"banner-leak": check_banner_leak}
