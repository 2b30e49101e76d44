"""SMTP protocol checks: vrfy-enabled, expn-enabled, helo-not-required, pipelining-unauth,
size-unlimited and smtp-smuggling.

Each rule is the one the catalog states for the config vantage, and reaches the verdict the audit
reaches on the same server running (tests/test_vantage_agreement.py):

- vrfy-enabled: disable_vrfy_command is not yes. Postfix then answers VRFY (252 for an address it
  would accept, 550 for an unknown one), and the audit counts any answer but 500/502. Hiding the
  EHLO keyword (smtpd_discard_ehlo_keywords = vrfy) does not disable the command.
- expn-enabled: never from a main.cf. Postfix has no EXPN command at all ("500 5.5.2 Error: command
  not recognized" whatever the configuration) and hardener's MTA always answers 502; the check
  passes and says why.
- size-unlimited: message_size_limit = 0, or SIZE hidden from EHLO by smtpd_discard_ehlo_keywords
  (the audit sees no limit announced either way).
"""

from __future__ import annotations

from hardener.controls import Severity
from hardener.lint.base import LintContext, finding
from hardener.lint.relay import classes, scenario
from hardener.lint.restrictions import Outcome, evaluate
from hardener.report.model import Finding

SAFE_BARE_NEWLINE = ("yes", "normalize", "reject")


def _vrfy_on(ctx: LintContext) -> bool:
    return not ctx.flag("disable_vrfy_command")


def check_vrfy(ctx: LintContext) -> list[Finding]:
    """vrfy-enabled: disable_vrfy_command is not yes."""
    if not _vrfy_on(ctx):
        return []
    return [finding(ctx, "vrfy-enabled", "disable_vrfy_command",
                    f"{ctx.describe('disable_vrfy_command')}: smtpd answers VRFY (Postfix: 252 for "
                    f"an address it would accept, 550 for an unknown one) instead of 502")]


def check_expn(ctx: LintContext) -> list[Finding]:
    """expn-enabled: never from a main.cf (neither Postfix nor hardener's MTA implements EXPN)."""
    return []


def discarded_ehlo_keywords(ctx: LintContext) -> set[str]:
    """EHLO keywords smtpd_discard_ehlo_keywords hides from every client, upper case."""
    return {w.upper() for w in ctx.words("smtpd_discard_ehlo_keywords")}


def check_helo(ctx: LintContext) -> list[Finding]:
    """helo-not-required: smtpd_helo_required is not yes."""
    if ctx.flag("smtpd_helo_required"):
        return []
    return [finding(ctx, "helo-not-required", "smtpd_helo_required",
                    f"{ctx.describe('smtpd_helo_required')}: clients may send MAIL FROM without "
                    f"HELO/EHLO, and smtpd_helo_restrictions never see a name")]


def pipelining_refused(ctx: LintContext) -> str | None:
    """How unauthorized pipelining is refused (for the evidence), or None when it is not."""
    if ctx.flag("smtpd_forbid_unauth_pipelining"):
        return "smtpd_forbid_unauth_pipelining = yes"
    decision = evaluate(ctx.words("smtpd_data_restrictions"), classes(ctx),
                        scenario(ctx, goal="pipelining"))
    if decision.outcome is Outcome.REJECT:
        return f"smtpd_data_restrictions: {decision.token}"
    return None


def check_pipelining(ctx: LintContext) -> list[Finding]:
    """pipelining-unauth: neither smtpd_forbid_unauth_pipelining nor reject_unauth_pipelining."""
    if pipelining_refused(ctx):
        return []
    return [finding(ctx, "pipelining-unauth", "smtpd_data_restrictions",
                    f"{ctx.describe('smtpd_data_restrictions')} and "
                    f"{ctx.describe('smtpd_forbid_unauth_pipelining')}: a client may send commands "
                    f"ahead of the replies without having been offered PIPELINING")]


def check_size(ctx: LintContext) -> list[Finding]:
    """size-unlimited: message_size_limit = 0, or SIZE hidden by smtpd_discard_ehlo_keywords."""
    if ctx.main.get_int("message_size_limit") == 0:
        return [finding(ctx, "size-unlimited", "message_size_limit",
                        f"{ctx.describe('message_size_limit')}: 0 means no limit, one client can "
                        f"fill the queue file system")]
    if "SIZE" in discarded_ehlo_keywords(ctx):
        return [finding(ctx, "size-unlimited", "smtpd_discard_ehlo_keywords",
                        f"{ctx.describe('smtpd_discard_ehlo_keywords')} hides SIZE from the EHLO "
                        f"reply: clients are not told the limit and send whole messages before "
                        f"they are refused")]
    return []


def check_smuggling(ctx: LintContext) -> list[Finding]:
    """smtp-smuggling: smtpd_forbid_bare_newline is not yes (or normalize/reject on Postfix >= 3.9)."""
    value = ctx.value("smtpd_forbid_bare_newline").strip().lower()
    if value in SAFE_BARE_NEWLINE:
        return []
    evidence = (f"{ctx.describe('smtpd_forbid_bare_newline')}: smtpd accepts a bare <LF> as a line "
                f"end, so <LF>.<LF> can end DATA and smuggle a second message (CVE-2023-51764)")
    if not ctx.is_set("smtpd_forbid_bare_newline"):
        evidence += ("; the default is `no` up to Postfix 3.8 (this file is read as Postfix "
                     f"{ctx.value('mail_version') or '3.7'}); Postfix >= 3.9 defaults to `normalize`"
                     ", set it explicitly")
    mitigation = pipelining_refused(ctx)
    severity = None
    if mitigation:
        evidence += (f"; partly mitigated by {mitigation} (Postfix's short-term workaround, which "
                     f"does not stop every variant)")
        severity = Severity.MEDIUM
    return [finding(ctx, "smtp-smuggling", "smtpd_forbid_bare_newline", evidence, severity=severity)]


CHECKS = {
    "vrfy-enabled": check_vrfy,
    "expn-enabled": check_expn,
    "helo-not-required": check_helo,
    "pipelining-unauth": check_pipelining,
    "size-unlimited": check_size,
    "smtp-smuggling": check_smuggling,
}
