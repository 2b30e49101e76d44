"""What every lint check receives and the small helpers they share.

A check is a function `check(ctx: LintContext) -> list[Finding]`. It reads the configuration only
through the one parser (hardener.postfix) held by the context, never by reading main.cf itself, and
says where a value came from: the line that set it, or that it is unset and the default applies.
A check that cannot run on this input raises Skip with the reason (recorded as "skipped").
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from hardener.report.model import Finding, Location

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Check = Callable[["LintContext"], list[Finding]]


class Skip(Exception):
    """The check does not apply to this configuration (or lacks an input); the message says why."""


@dataclass
class LintContext:
    """The parsed configuration one lint run looks at, plus the user's declarations."""

    main: Any                         # hardener.postfix MainCf
    main_path: Path
    master: Any | None = None         # hardener.postfix MasterCf, None when there is no master.cf
    master_path: Path | None = None
    trusted: tuple[Network, ...] = ()  # --trusted CIDR declarations
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    # -- values ---------------------------------------------------------------------------------

    def value(self, name: str) -> str:
        """The expanded value of parameter `name` (Postfix's default when unset)."""
        value = self.main.get(name)
        return "" if value is None else str(value)

    def raw(self, name: str) -> str | None:
        """The value as written in main.cf, before expansion; None when unset."""
        raw = self.main.raw(name) if callable(getattr(self.main, "raw", None)) else None
        if raw is None and self.is_set(name):
            raw = self.main.get(name)
        return raw

    def written(self, name: str) -> str:
        """The value as written in main.cf, or Postfix's default as `postconf -d` writes it."""
        if self.is_set(name):
            return self.raw(name) or ""
        from hardener.postfix.defaults_37 import POSTCONF_D

        return POSTCONF_D.get(name, self.value(name))

    def is_set(self, name: str) -> bool:
        """True when main.cf defines `name` (even as an empty value)."""
        return bool(self.main.is_set(name))

    def words(self, name: str) -> list[str]:
        """The expanded value split like a Postfix list (whitespace and commas)."""
        return list(self.main.get_list(name))

    def flag(self, name: str) -> bool:
        """The expanded value read as a Postfix boolean (yes/no)."""
        return bool(self.main.get_bool(name))

    def location(self, name: str) -> Location:
        """Where `name` is defined: the file and line, or the file alone when it is unset."""
        where = self.main.location(name) if self.is_set(name) else None
        if where is None:
            return Location(str(self.main_path), None)
        file = getattr(where, "file", None) or str(self.main_path)
        return Location(str(file), getattr(where, "line", None))

    def describe(self, name: str) -> str:
        """`name = raw` plus what it expands to, or that it is unset and which default applies."""
        value = self.value(name)
        if not self.is_set(name):
            default = f"`{value}`" if value else "empty"
            return f"{name} is unset (default: {default})"
        raw = " ".join((self.raw(name) or "").split())
        text = f"{name} = {raw}" if raw else f"{name} = (empty)"
        if raw != " ".join(value.split()):
            text += f" (expands to `{value}`)"
        return text

    def origin(self, name: str, needle: str, _depth: int = 0) -> str:
        """The parameter whose definition put `needle` into the value of `name`.

        Follows `$other` references through parameters set in main.cf (mynetworks = $trusted_nets,
        trusted_nets = 0.0.0.0/0 gives trusted_nets); text that comes from a default (such as
        $mail_name) is owned by the parameter that references it.
        """
        from hardener.postfix.expand import references

        raw = self.raw(name) if self.is_set(name) else None
        if raw is None or _depth > 20:
            return name
        for ref in references(raw):
            if ref != name and self.is_set(ref) and needle.lower() in self.value(ref).lower():
                return self.origin(ref, needle, _depth + 1)
        return name

    def origin_text(self, name: str, owner: str) -> str:
        """'; set by OWNER = VALUE (line N)' when another parameter supplied the text, else ''."""
        if owner == name:
            return ""
        return f" (from {self.describe(owner)}{self.where_text(owner)})"

    def where_text(self, name: str) -> str:
        """' (line 12)' when `name` is set on a known line, else '' (for evidence sentences)."""
        loc = self.location(name)
        return f" (line {loc.line})" if self.is_set(name) and loc.line else ""


def finding(ctx: LintContext, slug: str, name: str | None, evidence: str, **kwargs: Any) -> Finding:
    """A finding located at the definition of parameter `name` (or at main.cf when None)."""
    location = ctx.location(name) if name else Location(str(ctx.main_path), None)
    return Finding.of(slug, evidence, location=kwargs.pop("location", location), **kwargs)
