"""The error, retry and discard delivery agents (Postfix's error(8) and discard(8)).

SECURITY: touches nothing; the next hop is the reason text from main.cf or the transport table.
`error:reason` bounces every recipient (a disabled transport, e.g. the null client's
`local_transport = error:local delivery is disabled`); `retry:reason` defers them; `discard:reason`
reports them delivered without sending anything.
"""

from __future__ import annotations

from hardener.mta.delivery.result import (BOUNCED, DEFERRED, SENT, AttemptReport, DeliveryRequest,
                                          Destination, RecipientResult)


class ErrorAgent:
    """Fails (error), defers (retry) or swallows (discard) every recipient with the given reason."""

    async def deliver(self, dest: Destination, req: DeliveryRequest) -> AttemptReport:
        """One result per recipient, all alike."""
        reason = dest.nexthop or "mail transport unavailable"
        if dest.transport == "retry":
            status, dsn = DEFERRED, "4.3.0"
        elif dest.transport == "discard":
            status, dsn = SENT, "2.0.0"
        else:
            status, dsn = BOUNCED, "5.0.0"
        relay = "none" if dest.transport != "discard" else "none"
        return AttemptReport([RecipientResult(r, status, dsn, reason, relay,
                                              diagnostic=f"X-Postfix; {reason}")
                              for r in req.recipients])
