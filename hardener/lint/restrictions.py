"""Evaluating a Postfix restriction list the way smtpd would, for one untrusted client.

The client lint reasons about is the attacker: not in mynetworks (how wide mynetworks is gets its own
check), not authenticated, no client certificate, free to choose its HELO name and sender address,
sending to a domain this host has no business with. Each list is read left to right: the first
restriction that applies to that client decides (permit or reject); reaching the end lets the request
through, as in Postfix ("implicit permit"). Restrictions whose outcome depends on facts lint cannot
know (DNS lists, policy servers, unreadable tables) do not decide; they are listed as notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from hardener.lint.tables import is_permit_action, is_reject_action, read_table

# Restrictions that refuse everything the attacker sends (for a foreign recipient domain).
_ALWAYS_REJECT = {"reject", "defer", "defer_if_permit", "reject_unauth_destination",
                  "defer_unauth_destination", "check_relay_domains"}
# The ones that refuse only because the recipient domain is foreign.
_DESTINATION_GUARDS = {"reject_unauth_destination", "defer_unauth_destination", "check_relay_domains"}
# What Postfix's smtpd insists on finding in the relay or recipient restrictions (smtpd_check.c).
REQUIRED_FOR_RELAY = ("reject_unauth_destination", "defer_unauth_destination", "reject", "defer",
                      "defer_if_permit", "check_relay_domains")
# Restrictions taking one argument (the next list element).
_WITH_ARGUMENT_PREFIXES = ("check_", "reject_rbl_", "reject_rhsbl_", "permit_dnswl_", "permit_rhswl_",
                           "reject_dnsbl_")
_WITH_ARGUMENT = {"sleep", "reject_rbl_client", "reject_maps_rbl"}
# Access tables keyed on something the client chooses freely (its HELO name, its sender address).
_FORGEABLE_ACCESS = ("check_helo_", "check_sender_")
_MAX_DEPTH = 6


class Outcome(str, Enum):
    """How one restriction list ends for the untrusted client."""

    PERMIT = "permit"
    REJECT = "reject"
    END = "end of list"   # nothing applied: Postfix lets the request through


@dataclass
class Decision:
    """The outcome of a list, the restriction that decided it and what lint could not judge."""

    outcome: Outcome
    token: str | None = None
    reason: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def lets_through(self) -> bool:
        return self.outcome is not Outcome.REJECT


@dataclass(frozen=True)
class Scenario:
    """Assumptions about the request being judged."""

    foreign_domain_is_relay_domain: bool = False  # relay_domains matches any domain
    goal: str = "relay"                           # "relay" or "pipelining"
    table_dir: Path | None = None                 # where to look for tables missing at their path


def evaluate(tokens: list[str], classes: dict[str, list[str]], scenario: Scenario = Scenario(),
             _depth: int = 0) -> Decision:
    """Walk restriction list `tokens`; `classes` maps smtpd_restriction_classes names to their lists."""
    notes: list[str] = []
    index = 0
    skip_next_reject = False
    while index < len(tokens):
        token = tokens[index]
        name = token.lower()
        argument, index = _argument(tokens, index, name)
        warn_only, skip_next_reject = skip_next_reject, name == "warn_if_reject"
        decision = _judge(name, token, argument, classes, scenario, notes, _depth)
        if decision is not None and not (warn_only and decision.outcome is Outcome.REJECT):
            decision.notes = notes + decision.notes
            return decision
    return Decision(Outcome.END, None, "no restriction applies, so Postfix lets the request through",
                    notes)


def has_required(tokens: list[str], classes: dict[str, list[str]], _depth: int = 0) -> bool:
    """True when the list holds a working relay guard, as smtpd_check.c's has_required() decides.

    A guard after `permit` does not count (Postfix: "restriction `X' after `permit' is ignored"),
    nor one behind warn_if_reject; restriction classes are searched too.
    """
    index = 0
    while index < len(tokens):
        name = tokens[index].lower()
        if name == "warn_if_reject" and index + 1 < len(tokens):
            index += 2
            continue
        if name == "permit":
            return False
        if name in REQUIRED_FOR_RELAY:
            return True
        if name in classes and _depth < _MAX_DEPTH and has_required(classes[name], classes, _depth + 1):
            return True
        index += 1
    return False


def ignored_after_permit(tokens: list[str]) -> list[str]:
    """Relay guards that follow a bare `permit` (which Postfix ignores, with a warning)."""
    lowered = [t.lower() for t in tokens]
    if "permit" not in lowered:
        return []
    return [t for t in tokens[lowered.index("permit") + 1:] if t.lower() in REQUIRED_FOR_RELAY]


def _argument(tokens: list[str], index: int, name: str) -> tuple[str | None, int]:
    """The argument of tokens[index] (brace groups joined) and the index after it."""
    takes = name in _WITH_ARGUMENT or name.startswith(_WITH_ARGUMENT_PREFIXES)
    if not takes or index + 1 >= len(tokens):
        return None, index + 1
    start = index + 1
    if not tokens[start].startswith("{"):
        return tokens[start], start + 1
    end = start
    while end < len(tokens) and not tokens[end].endswith("}"):
        end += 1
    return " ".join(tokens[start:end + 1]), end + 1


def _judge(name: str, token: str, argument: str | None, classes: dict[str, list[str]],
           scenario: Scenario, notes: list[str], depth: int) -> Decision | None:
    """The decision `token` makes for the attacker, or None when it does not apply to them."""
    if name == "permit":
        return Decision(Outcome.PERMIT, token, "`permit` accepts every client")
    if scenario.goal == "pipelining":
        if name == "reject_unauth_pipelining" or name in ("reject", "defer"):
            return Decision(Outcome.REJECT, token, f"`{token}` refuses the client")
    elif name in _ALWAYS_REJECT:
        if name in _DESTINATION_GUARDS and scenario.foreign_domain_is_relay_domain:
            notes.append(f"`{token}` does not refuse: relay_domains matches every domain")
            return None
        return Decision(Outcome.REJECT, token, f"`{token}` refuses mail for foreign domains")
    if name == "permit_auth_destination" and scenario.foreign_domain_is_relay_domain:
        return Decision(Outcome.PERMIT, token,
                        "`permit_auth_destination` accepts it: relay_domains matches every domain")
    if name == "permit_naked_ip_address":
        return Decision(Outcome.PERMIT, token,
                        "`permit_naked_ip_address` accepts any client that says HELO [1.2.3.4]")
    if name == "permit_mx_backup":
        notes.append("`permit_mx_backup` relays for any domain whose MX records name this host, "
                     "which the owner of that domain controls")
        return None
    if name in classes and depth < _MAX_DEPTH:
        inner = evaluate(classes[name], classes, scenario, depth + 1)
        notes.extend(inner.notes)
        if inner.outcome is Outcome.END:
            return None
        inner.reason = f"restriction class `{token}`: {inner.reason}"
        inner.notes = []
        return inner
    if name.startswith("check_") and name.endswith("_access") and argument:
        return _judge_table(name, token, argument, classes, scenario, notes, depth)
    if name == "check_policy_service" and argument:
        notes.append(f"policy service {argument} decides at run time; lint cannot judge it")
    return None


def _judge_table(name: str, token: str, ref: str, classes: dict[str, list[str]], scenario: Scenario,
                 notes: list[str], depth: int) -> Decision | None:
    """Decision of an access table for the attacker: catch-all entries, or keys it may forge."""
    table = read_table(ref, scenario.table_dir)
    if not table.readable:
        notes.append(f"`{token} {ref}` not judged: {table.why_unreadable}")
        return None
    forgeable = name.startswith(_FORGEABLE_ACCESS)
    for entry in table.entries:
        if not (entry.catch_all or forgeable):
            continue
        value = entry.value
        where = f"{table.source or ref}" + (f" line {entry.line}" if entry.line else "")
        if is_permit_action(value):
            if entry.catch_all:
                return Decision(Outcome.PERMIT, token,
                                f"`{token} {ref}` answers {value} for every client ({where})")
            what = "HELO name" if name.startswith("check_helo_") else "sender address"
            return Decision(Outcome.PERMIT, token,
                            f"`{token} {ref}` answers {value} for {what} {entry.key!r} ({where}), "
                            f"which any client can claim")
        if entry.catch_all and is_reject_action(value) and scenario.goal == "relay":
            return Decision(Outcome.REJECT, token, f"`{token} {ref}` refuses every client ({where})")
        if entry.catch_all and value.strip().lower() in classes and depth < _MAX_DEPTH:
            inner = evaluate(classes[value.strip().lower()], classes, scenario, depth + 1)
            notes.extend(inner.notes)
            if inner.outcome is not Outcome.END:
                inner.notes = []
                return inner
    return None


def restriction_classes(ctx_words, class_names: list[str]) -> dict[str, list[str]]:
    """Map each smtpd_restriction_classes name (lowercase) to its list, read through `ctx_words`."""
    return {name.lower(): ctx_words(name) for name in class_names}
