"""surprising-setting: plain-words explanations of settings whose effect is easy to miss.

Each rule looks at the expanded configuration and, when it applies, says what the setting does in
words an admin who did not write it would understand. These are informational findings: the
setting may well be intended; the report makes the choice visible.
"""

from __future__ import annotations

from collections.abc import Callable

from hardener.lint.base import LintContext, finding
from hardener.lint.networks import send_only_reasons
from hardener.report.model import Finding

Explanation = tuple[str, str]          # (parameter, what it does)
Rule = Callable[[LintContext], list[Explanation]]

_RELAY_GUARDS = ("reject_unauth_destination", "defer_unauth_destination")
_HARMLESS_BEFORE_GUARD = ("permit_mynetworks", "permit_sasl_authenticated", "reject", "defer")


def _transport_off(ctx: LintContext, name: str, what: str) -> list[Explanation]:
    value = ctx.value(name).strip().lower()
    if value.startswith("error"):
        return [(name, f"{what} is bounced back to the sender: this host cannot "
                       f"{'send mail out' if name != 'local_transport' else 'deliver mail locally'}")]
    if value.startswith("discard"):
        return [(name, f"{what} is silently thrown away (discard), with no bounce")]
    return []


def default_transport(ctx: LintContext) -> list[Explanation]:
    return _transport_off(ctx, "default_transport", "every message for a remote domain")


def relay_transport(ctx: LintContext) -> list[Explanation]:
    if not ctx.words("relay_domains"):
        return []
    return _transport_off(ctx, "relay_transport", "mail for the relay_domains")


def local_transport(ctx: LintContext) -> list[Explanation]:
    if not ctx.words("mydestination"):
        return []
    return _transport_off(ctx, "local_transport", "mail for the mydestination domains")


def relayhost_mx(ctx: LintContext) -> list[Explanation]:
    hosts = [h for h in ctx.words("relayhost") if h and not h.startswith("[")]
    if not hosts:
        return []
    host = hosts[0].split(":")[0]
    return [("relayhost", f"without [brackets] Postfix looks up the MX records of {host} and "
                          f"delivers to the hosts they name, not to {host} itself; write "
                          f"[{host}]:PORT to send to that host directly")]


def mydestination_domain(ctx: LintContext) -> list[Explanation]:
    domain = ctx.value("mydomain").strip().lower()
    entries = [e.lower() for e in ctx.words("mydestination")]
    if not domain or domain not in entries:
        return []
    return [("mydestination", f"the whole domain {domain} is listed: this host is the "
                              f"final destination for every address @{domain} and delivers it to "
                              f"local mailboxes here instead of passing it to the domain's mail "
                              f"servers; unknown users bounce")]


def mynetworks_style(ctx: LintContext) -> list[Explanation]:
    if ctx.is_set("mynetworks"):
        return []
    style = ctx.value("mynetworks_style").strip().lower()
    if style == "host":
        return []
    why = "" if ctx.is_set("mynetworks_style") else (
        f" (the default at compatibility_level {ctx.main.compatibility_level}, below 2)")
    scope = "every host on the same IP subnets as this machine (the whole LAN)" if style == "subnet" \
        else "every host in the same class A/B/C network as this machine"
    return [("mynetworks_style", f"mynetworks is unset, so this style{why} trusts {scope} to "
                                 f"relay mail anywhere")]


def recipient_ordering(ctx: LintContext) -> list[Explanation]:
    out = []
    for name in ("smtpd_relay_restrictions", "smtpd_recipient_restrictions"):
        tokens = [t.lower() for t in ctx.words(name)]
        guard = next((i for i, t in enumerate(tokens) if t in _RELAY_GUARDS), None)
        if guard is None:
            continue
        if "permit" in tokens[:guard]:
            out.append((name, f"Postfix ignores {tokens[guard]} after a bare `permit` (it logs "
                              f"'restriction ... after permit is ignored'), so this list protects "
                              f"nothing"))
            continue
        before = [t for t in tokens[:guard] if t not in _HARMLESS_BEFORE_GUARD
                  and (t.startswith(("permit", "check_")) or t in ctx.words("smtpd_restriction_classes"))]
        if before:
            out.append((name, f"Postfix stops at the first restriction that decides: "
                              f"{', '.join(dict.fromkeys(before))} before {tokens[guard]} can accept "
                              f"mail for any domain (an OK from that table or check relays it)"))
    if not ctx.words("smtpd_relay_restrictions") and ctx.words("smtpd_recipient_restrictions"):
        out.append(("smtpd_recipient_restrictions",
                    "smtpd_relay_restrictions is empty, so smtpd_recipient_restrictions alone decides "
                    "relaying: any permit placed before reject_unauth_destination there opens the relay"))
    return out


def null_client_inet(ctx: LintContext) -> list[Explanation]:
    # inet-interfaces-exposed reports the exposure; this says what the pair of settings means.
    if send_only_reasons(ctx) is None or ctx.value("inet_interfaces").strip().lower() != "all":
        return []
    return [("inet_interfaces", "this host receives mail for no domain, yet runs an SMTP server on "
                                "every interface that only ever refuses mail")]


def compatibility(ctx: LintContext) -> list[Explanation]:
    if ctx.is_set("compatibility_level"):
        return []
    return [("compatibility_level", "Postfix keeps its pre-3.0 defaults: smtpd_relay_restrictions "
                                    "empty, mynetworks_style = "
                                    "subnet, relay_domains = $mydestination, append_dot_mydomain = "
                                    "yes (and logs 'using backwards-compatible default setting')")]


def soft_bounce(ctx: LintContext) -> list[Explanation]:
    if not ctx.flag("soft_bounce"):
        return []
    return [("soft_bounce", "every permanent failure (5xx) becomes temporary (4xx): undeliverable "
                            "mail stays queued for maximal_queue_lifetime and senders learn days late")]


def always_bcc(ctx: LintContext) -> list[Explanation]:
    target = ctx.value("always_bcc").strip()
    if not target:
        return []
    return [("always_bcc", f"a copy of every message this host handles goes to {target}")]


def luser_relay(ctx: LintContext) -> list[Explanation]:
    target = ctx.value("luser_relay").strip()
    if not target:
        return []
    return [("luser_relay", f"mail for unknown local users is delivered to {target} instead of "
                            f"being refused (only when local_recipient_maps is empty)")]


def local_recipients(ctx: LintContext) -> list[Explanation]:
    if not ctx.is_set("local_recipient_maps") or ctx.words("local_recipient_maps"):
        return []
    if not ctx.words("mydestination"):
        return []
    return [("local_recipient_maps", "smtpd accepts mail for any user "
                                     "name at the mydestination domains and bounces unknown ones "
                                     "later, sending backscatter to forged senders")]


def tls_encrypt(ctx: LintContext) -> list[Explanation]:
    if ctx.value("smtpd_tls_security_level").strip().lower() != "encrypt":
        return []
    return [("smtpd_tls_security_level", "encrypt makes STARTTLS mandatory for every client: servers "
                                         "that cannot do TLS cannot deliver here, which RFC 3207 "
                                         "forbids on a publicly-referenced MX (use may on port 25)")]


def outbound_cleartext(ctx: LintContext) -> list[Explanation]:
    if not ctx.value("relayhost").strip():
        return []
    level = ctx.value("smtp_tls_security_level").strip().lower()
    if level not in ("", "none") or ctx.flag("smtp_use_tls") or ctx.flag("smtp_enforce_tls"):
        return []
    return [("smtp_tls_security_level", f"mail to the relayhost {ctx.value('relayhost').strip()} is "
                                        f"sent without TLS, and so are any SMTP AUTH passwords")]


def client_reject(ctx: LintContext) -> list[Explanation]:
    tokens = [t.lower() for t in ctx.words("smtpd_client_restrictions")]
    receives = ctx.words("mydestination") or ctx.words("relay_domains")
    if not receives or not tokens or tokens[-1] != "reject" or "permit" in tokens:
        return []
    return [("smtpd_client_restrictions", "ends in reject: every client not permitted earlier "
                                          "(everyone outside mynetworks) is refused, so this host "
                                          "receives no mail from the internet")]


def mx_backup(ctx: LintContext) -> list[Explanation]:
    lists = ("smtpd_relay_restrictions", "smtpd_recipient_restrictions")
    for name in lists:
        if "permit_mx_backup" in (t.lower() for t in ctx.words(name)):
            return [(name, "permit_mx_backup relays for any domain whose MX records name this "
                           "host; the owner of a domain decides that, not you (restrict it with "
                           "permit_mx_backup_networks)")]
    return []


RULES: tuple[Rule, ...] = (
    default_transport, relay_transport, local_transport, relayhost_mx, mydestination_domain,
    mynetworks_style, recipient_ordering, null_client_inet, compatibility, soft_bounce, always_bcc,
    luser_relay, local_recipients, tls_encrypt, outbound_cleartext, client_reject, mx_backup,
)


def explanations(ctx: LintContext) -> list[Explanation]:
    """Every (parameter, plain-words explanation) that applies to this configuration."""
    return [item for rule in RULES for item in rule(ctx)]


def check_surprising(ctx: LintContext) -> list[Finding]:
    """surprising-setting: one informational finding per explanation."""
    return [finding(ctx, "surprising-setting", name, f"{ctx.describe(name)}: {text}", detail=text)
            for name, text in explanations(ctx)]


CHECKS = {"surprising-setting": check_surprising}
