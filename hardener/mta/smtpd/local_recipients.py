"""Which local recipients exist: alias_maps and local_recipient_maps (passwd + tables).

smtpd asks `LocalRecipients.exists(localpart)` for an address that resolved to a local domain, so an
unknown user is refused at RCPT (550 5.1.1) instead of bounced later (no backscatter).

SECURITY: reads root-owned table source files at start (before the privilege drop) and the passwd
database; the localpart comes from the network and is only used as a lookup key.
"""

from __future__ import annotations

import pwd
from collections.abc import Iterable
from pathlib import Path

from hardener.postfix.tables import read_aliases, read_table


class LocalRecipients:
    """The set of local parts that may receive mail, from main.cf maps."""

    def __init__(self, local_recipient_maps: Iterable[str], alias_maps: Iterable[str],
                 recipient_delimiter: str = "") -> None:
        self.maps = [m.strip() for m in local_recipient_maps if m.strip()]
        self.alias_maps = [m.strip() for m in alias_maps if m.strip()]
        self.delimiter = recipient_delimiter
        self.check = bool(self.maps)
        self.use_passwd = False
        self.keys: set[str] = set()

        for spec in self.maps:
            if spec.startswith("proxy:"):
                spec = spec[len("proxy:"):]
            kind, _, name = spec.partition(":")
            if spec == "unix:passwd.byname":
                self.use_passwd = True
            elif kind in ("nis", "nisplus", "netinfo"):
                continue  # no NIS here; Postfix skips an unavailable nis: map the same way
            elif spec in self.alias_maps or "proxy:" + spec in self.alias_maps:
                if Path(name).exists():   # aliases(5) format, as postalias reads it
                    self.keys |= set(read_aliases(name, strict=False))
            else:
                self.keys |= set(read_table(spec))

    def exists(self, localpart: str) -> bool:
        """True when mail to `localpart` (at a local domain) has somewhere to go."""
        if not self.check:
            return True
        candidates = [localpart.lower()]
        if self.delimiter:
            for d in self.delimiter:
                if d in localpart:
                    candidates.append(localpart.split(d, 1)[0].lower())
        for key in candidates:
            if key in self.keys:
                return True
            if self.use_passwd:
                try:
                    pwd.getpwnam(key)
                    return True
                except KeyError:
                    pass
        return False
