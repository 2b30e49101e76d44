"""Network checks of `hardener audit`, one module per topic, each `async def run(ctx)`.

CHECK_MODULES is the order the runner runs them in; every module names the slugs it records in
SLUGS, so the runner can mark them as not finished when a module stops early.
"""

from __future__ import annotations

CHECK_MODULES: tuple[str, ...] = (
    "banner", "protocol", "enumeration", "tls", "relay", "mynetworks", "smuggling",
)
