"""mynetworks-too-broad: a relay accepted from some vantage points outside --trusted, refused from others.

Reads the relay battery of checks/relay.py (run once per target, from every --source-address and
--xclient-addr). The server clearly distinguishes clients (it refuses some vantage points), and it
lets through at least one that the user did not declare trusted: its trusted networks are wider than
declared. When every vantage point relays, the finding is open-relay instead (checks/relay.py); a
vantage inside --trusted that relays is expected.

Needs two usable vantage points; with one the check is skipped (nothing to compare).
"""

from __future__ import annotations

from hardener.audit.checks.relay import battery, describe, who
from hardener.audit.context import AuditContext
from hardener.report.model import Finding

SLUGS = ("mynetworks-too-broad",)


async def run(ctx: AuditContext) -> None:
    """mynetworks-too-broad verdict from the shared relay battery results."""
    results = await battery(ctx)
    usable = [r for r in results if r.usable]
    errors = [r for r in results if r.error]
    relaying_untrusted = [r for r in usable if r.relays and not r.trusted]
    refused = [r for r in usable if not r.relays]
    if relaying_untrusted and refused:
        witness = relaying_untrusted[0]
        other = refused[0]
        refused_how = (f"refused at connect: {other.refused_at_connect}" if other.refused_at_connect
                       else "no form accepted")
        names = ", ".join(who(r) for r in relaying_untrusted)
        declared = ", ".join(str(n) for n in ctx.options.trusted) or "none declared"
        ctx.add(Finding.of("mynetworks-too-broad", evidence=(
            f"relay accepted from {names}, outside --trusted ({declared}): "
            f"{witness.relayed[0].evidence}; refused from {other.vantage.label} ({other.address}): "
            f"{refused_how}"), detail=describe(results)))
        ctx.failed("mynetworks-too-broad", describe(results))
    elif errors:
        ctx.error("mynetworks-too-broad", describe(results))
    elif len(usable) < 2:
        ctx.skipped("mynetworks-too-broad",
                    "needs two or more vantage points (--source-address, --xclient-addr)")
    else:
        ctx.passed("mynetworks-too-broad", describe(results))

