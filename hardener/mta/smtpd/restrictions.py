"""smtpd's restriction lists that depend on the session (client, HELO, sender, pipelining).

relay_policy.py decides the relay question as a pure function; this module evaluates the names
that need session state, with Postfix's smtpd_delay_reject = yes behaviour: client, HELO and sender
restrictions are evaluated at RCPT time, data restrictions at DATA.

SECURITY: reads session state that came from the network (HELO name, sender); no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from hardener.mta.smtpd.relay_policy import Decision, in_networks
from hardener.mta.smtpd.address import quote_for_reply

if TYPE_CHECKING:
    from hardener.mta.smtpd.server import HardenedSMTP

EARLY_LISTS = ("smtpd_client_restrictions", "smtpd_helo_restrictions", "smtpd_sender_restrictions")


def valid_helo(helo: str) -> bool:
    """Postfix reject_invalid_helo_hostname: an address literal or a syntactically valid name."""
    if helo.startswith("[") and helo.endswith("]"):
        return True
    labels = helo.rstrip(".").split(".")
    return all(lbl and len(lbl) <= 63 and all(c.isalnum() or c in "-_" for c in lbl)
               for lbl in labels)


def session_restriction(sess: "HardenedSMTP", name: str, shown: str, where: str) -> Decision | None:
    """Evaluate one restriction name that needs the session; None when it has no objection."""
    if name == "reject_unauth_pipelining":
        # Postfix: once the session pipelined improperly (the command loop sets the flag:
        # input pending after a group-ending command such as HELO/EHLO/DATA, or after any
        # command from a client that did not say EHLO), every later check of this name rejects
        if sess.ill_pipelining:
            what = "Data command" if where == "DATA" else "Recipient address"
            return Decision("reject", f"503 5.5.0 <{shown}>: {what} rejected: "
                                      "Improper use of SMTP command pipelining")
        return None
    if name == "reject_non_fqdn_sender":
        if sess.sender and "." not in sess.sender.rpartition("@")[2]:
            return Decision("reject", f"504 5.5.2 <{quote_for_reply(sess.sender)}>: "
                                      "Sender address rejected: "
                                      "need fully-qualified address")
        return None
    if name in ("reject_invalid_helo_hostname", "reject_non_fqdn_helo_hostname"):
        helo = quote_for_reply(sess.helo or "")
        if not helo:
            return None
        if name == "reject_invalid_helo_hostname" and not valid_helo(helo):
            return Decision("reject", f"501 5.5.2 <{helo}>: Helo command rejected: Invalid name")
        if name == "reject_non_fqdn_helo_hostname" and "." not in helo \
                and not helo.startswith("["):
            return Decision("reject", f"504 5.5.2 <{helo}>: Helo command rejected: "
                                      "need fully-qualified hostname")
        return None
    # reject_unlisted_recipient: smtpd runs that check after the lists (settings turn it on when
    # the name appears in a list); the others have nothing to check at this stage.
    return None


def _run_list(sess: "HardenedSMTP", names: list[str],
              evaluate: Callable[[str], Decision | None], what: str) -> Decision | None:
    """`what` is Postfix's reply prefix, e.g. '<unknown[192.0.2.1]>: Client host rejected'."""
    for name in names:
        if name == "permit":
            return None
        if name == "permit_mynetworks" and in_networks(sess.client_addr, sess.s.mynetworks):
            return None
        # Postfix permit_sasl_authenticated: a client that passed AUTH in this session
        if name == "permit_sasl_authenticated" and sess.sasl_username is not None:
            return None
        if name == "reject":
            return Decision("reject", f"554 5.7.1 {what}: Access denied")
        if name == "defer":
            return Decision("defer", f"450 4.7.1 {what}: Access denied")
        decision = evaluate(name)
        if decision is not None and decision.action in ("reject", "defer"):
            return decision
    return None


def check_early_lists(sess: "HardenedSMTP",
                      evaluate: Callable[[str], Decision | None]) -> Decision | None:
    """Client, HELO and sender restrictions (evaluated at RCPT); the first objection or None."""
    labels = {"smtpd_client_restrictions": f"<{sess.client}>: Client host rejected",
              "smtpd_helo_restrictions": f"<{quote_for_reply(sess.helo or '')}>: "
                                         "Helo command rejected",
              "smtpd_sender_restrictions": f"<{quote_for_reply(sess.sender or '')}>: "
                                           "Sender address rejected"}
    for list_name in EARLY_LISTS:
        decision = _run_list(sess, sess.s.restrictions[list_name], evaluate, labels[list_name])
        if decision is not None:
            return decision
    return None


def check_data_list(sess: "HardenedSMTP") -> Decision | None:
    """smtpd_data_restrictions at DATA; the first objection or None."""
    return _run_list(sess, sess.s.restrictions["smtpd_data_restrictions"],
                     lambda name: session_restriction(sess, name, "DATA", "DATA"),
                     "<DATA>: Data command rejected")
