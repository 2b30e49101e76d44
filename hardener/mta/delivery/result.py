"""The outcome of a delivery attempt, shared by every delivery agent.

SECURITY: plain data. Every result says whether it is permanent or transient (Postfix's rule):
"sent" (2xx, done), "deferred" (4xx or no connection: retry later) or "bounced" (5xx: return to sender).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

SENT = "sent"
DEFERRED = "deferred"
BOUNCED = "bounced"


@dataclass(frozen=True)
class RecipientResult:
    """What happened to one recipient in one attempt.

    `relay` is Postfix's log form `host[addr]:port` (or `local`, `none`); `reply` the server's reply
    text or our own reason; `dsn` the enhanced status code (2.0.0, 4.4.1, 5.1.1...).
    """

    recipient: str
    status: str
    dsn: str
    reply: str
    relay: str = "none"
    diagnostic: str = ""

    @property
    def permanent(self) -> bool:
        """True when retrying cannot help (sent or bounced); False for a transient failure."""
        return self.status != DEFERRED


@dataclass(frozen=True)
class Destination:
    """Where a group of recipients goes: a transport and its next hop.

    transport: "smtp", "local", "error", "retry" or "discard"; nexthop: for smtp a list of
    `host`/`[host]` with optional `:port` (brackets: no MX lookup); for error/retry the reason text;
    for local the empty string.
    """

    transport: str
    nexthop: str

    @property
    def key(self) -> str:
        """The queue name used for concurrency limits and the dead-destination cache."""
        return f"{self.transport}:{self.nexthop}"


def dsn_from_reply(code: int, text: str) -> str:
    """The enhanced status code in an SMTP reply, or one derived from the basic code."""
    first = text.split(" ", 1)[0] if text else ""
    parts = first.split(".")
    if len(parts) == 3 and all(p.isdigit() for p in parts) and parts[0] == str(code)[0]:
        return first
    return f"{str(code)[0]}.0.0"


def status_from_code(code: int) -> str:
    """sent for 2xx, deferred for 4xx (and anything odd), bounced for 5xx."""
    if 200 <= code < 300:
        return SENT
    if 500 <= code < 600:
        return BOUNCED
    return DEFERRED


@dataclass
class DeliveryRequest:
    """One message handed to a delivery agent, for the recipients of one destination.

    `open_content` returns a binary file positioned at the start of the message content (the queue
    file after its envelope); the agent closes it. `orcpt` maps recipients to their ORCPT.
    """

    qid: str
    sender: str
    recipients: list[str]
    open_content: Callable[[], BinaryIO]
    size: int
    arrival: float
    is_bounce: bool = False


@dataclass
class AttemptReport:
    """The results of one attempt plus Postfix's delay parts c (connection setup) and d (transmission)."""

    results: list[RecipientResult]
    conn_setup: float = 0.0
    transmission: float = 0.0
    hop_dead: bool = False
