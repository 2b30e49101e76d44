"""Relay checks: open-relay (the effective decision) and relay-restrictions (the lists themselves).

relay-restrictions asks whether smtpd_relay_restrictions or smtpd_recipient_restrictions refuse a
foreign recipient domain for an untrusted client before anything lets that client through.
open-relay asks the whole question Postfix answers at RCPT time: client, HELO, sender, relay and
recipient restrictions together, with relay_domains as it really matches (a catch-all table or a
top-level domain makes every domain, or every domain under it, a relay domain). mynetworks is
judged by the networks checks; here the client is outside it.
"""

from __future__ import annotations

from hardener.lint.base import LintContext, finding
from hardener.lint.restrictions import (Decision, Outcome, Scenario, evaluate, has_required,
                                        ignored_after_permit)
from hardener.lint.tables import read_table
from hardener.postfix.maincf import split_list
from hardener.postfix.tables import parse_spec
from hardener.report.model import Finding

RELAY_LISTS = ("smtpd_relay_restrictions", "smtpd_recipient_restrictions")
# smtpd applies all of these at RCPT time (smtpd_delay_reject = yes, the default).
ALL_LISTS = ("smtpd_client_restrictions", "smtpd_helo_restrictions", "smtpd_sender_restrictions",
             *RELAY_LISTS)


def classes(ctx: LintContext) -> dict[str, list[str]]:
    """smtpd_restriction_classes: lowercase class name -> its restriction list."""
    return {name.lower(): ctx.words(name) for name in ctx.words("smtpd_restriction_classes")}


def scenario(ctx: LintContext, *, open_domains: bool = False, goal: str = "relay") -> Scenario:
    """The untrusted client's request, with tables missing at their path looked up beside main.cf."""
    return Scenario(foreign_domain_is_relay_domain=open_domains, goal=goal,
                    table_dir=ctx.main_path.parent)


def decisions(ctx: LintContext, lists: tuple[str, ...], sc: Scenario) -> dict[str, Decision]:
    """Each named restriction list evaluated for the untrusted client."""
    known = classes(ctx)
    return {name: evaluate(ctx.words(name), known, sc) for name in lists}


def wide_relay_domains(ctx: LintContext) -> list[str]:
    """relay_domains entries that match every domain, or every domain under a top-level domain."""
    subdomains_match = "relay_domains" in ctx.words("parent_domain_matches_subdomains")
    # Single labels count only when written in relay_domains itself: the default at compatibility
    # level < 2 ($mydestination) holds the machine's short name, which matches no real domain.
    written = {w.lower() for w in split_list(ctx.raw("relay_domains") or "")}
    wide = []
    for entry in ctx.words("relay_domains"):
        spec = parse_spec(entry)
        kind, name = spec.type, spec.name
        if kind:
            table = read_table(entry, ctx.main_path.parent)
            catch = [e for e in table.entries if e.catch_all]
            if catch:
                wide.append(f"{entry} (matches every domain)")
            continue
        label = name.lstrip(".")
        if label and "." not in label and name.lower() in written and label.lower() not in (
                "localhost", "localdomain") and (subdomains_match or name.startswith(".")):
            wide.append(f"{entry} (matches every domain under .{label})")
    return wide


def _list_text(ctx: LintContext, name: str, decision: Decision) -> str:
    return f"{ctx.describe(name)}{ctx.where_text(name)}: {decision.reason}"


def _responsible(ctx: LintContext, found: dict[str, Decision]) -> str:
    """The parameter to point at: the list whose permit let the client through, else the first set."""
    for name, decision in found.items():
        if decision.outcome is Outcome.PERMIT:
            return name
    for name in found:
        if ctx.is_set(name):
            return name
    return next(iter(found))


def check_relay_restrictions(ctx: LintContext) -> list[Finding]:
    """relay-restrictions: neither relay list refuses a foreign domain before letting anyone through."""
    known = classes(ctx)
    relay, rcpt = (ctx.words(name) for name in RELAY_LISTS)
    compat_note = ""
    if not ctx.is_set("smtpd_relay_restrictions") and not relay:
        compat_note = (f" (compatibility_level {ctx.value('compatibility_level') or '0'}: "
                       f"smtpd_relay_restrictions defaults to empty, so relay control rests on "
                       f"smtpd_recipient_restrictions alone)")
    if not has_required(relay, known) and not has_required(rcpt, known):
        name = next((n for n in RELAY_LISTS if ctx.is_set(n)), RELAY_LISTS[0])
        ignored = [f"`{guard}` after `permit` in {n} is ignored"
                   for n, tokens in zip(RELAY_LISTS, (relay, rcpt)) for guard in ignored_after_permit(tokens)]
        why = f" ({'; '.join(ignored)})" if ignored else ""
        return [finding(ctx, "relay-restrictions", name,
                        f"neither smtpd_relay_restrictions nor smtpd_recipient_restrictions has a "
                        f"working reject_unauth_destination (or defer_unauth_destination, reject, "
                        f"defer){why}: {ctx.describe('smtpd_relay_restrictions')}; "
                        f"{ctx.describe('smtpd_recipient_restrictions')}{compat_note}. Postfix's smtpd "
                        f"refuses every session with this (fatal: specify at least one working "
                        f"instance of reject_unauth_destination ...), so no mail is received at "
                        f"all")]
    found = decisions(ctx, RELAY_LISTS, scenario(ctx))
    if all(d.lets_through for d in found.values()):
        parts = "; ".join(_list_text(ctx, n, d) for n, d in found.items())
        return [finding(ctx, "relay-restrictions", _responsible(ctx, found),
                        f"an unauthenticated client outside mynetworks gets past both relay lists: "
                        f"{parts}{compat_note}")]
    return []


def check_open_relay(ctx: LintContext) -> list[Finding]:
    """open-relay: the effective RCPT decision accepts a foreign domain from an untrusted client."""
    known = classes(ctx)
    relay, rcpt = (ctx.words(name) for name in RELAY_LISTS)
    if not has_required(relay, known) and not has_required(rcpt, known):
        return []  # Postfix refuses to run at all; relay-restrictions reports it
    wide = wide_relay_domains(ctx)
    found = decisions(ctx, ALL_LISTS, scenario(ctx, open_domains=bool(wide)))
    if not all(d.lets_through for d in found.values()):
        return []
    relay_found = {n: found[n] for n in RELAY_LISTS}
    parts = [_list_text(ctx, n, d) for n, d in relay_found.items()]
    if wide:
        parts.insert(0, f"{ctx.describe('relay_domains')}{ctx.where_text('relay_domains')} "
                        f"makes foreign domains relay domains: {', '.join(wide)}")
    decided_by_permit = any(d.outcome is Outcome.PERMIT for d in relay_found.values())
    name = _responsible(ctx, relay_found) if decided_by_permit or not wide else "relay_domains"
    notes = sorted({note for d in found.values() for note in d.notes})
    detail = ("Not judged: " + "; ".join(notes)) if notes else ""
    return [finding(ctx, "open-relay", name,
                    "an unauthenticated client outside mynetworks may relay to any domain: "
                    + "; ".join(parts), detail=detail)]


CHECKS = {
    "open-relay": check_open_relay,
    "relay-restrictions": check_relay_restrictions,
}
