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

from hardener.errors import ConfigError


def read_alias_like(path: Path) -> set[str]:
    """Keys of an aliases(5) file or a postmap source file ('key: value' or 'key value')."""
    keys: set[str] = set()
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise ConfigError(f"cannot read table: {exc.strerror}", file=str(path)) from None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#") or line[0] in " \t":
            continue
        key = line.split(None, 1)[0]
        if ":" in line.split(None, 1)[0] or (":" in line and '"' not in line.split(":", 1)[0]):
            key = line.split(":", 1)[0].strip()
        if key.startswith('"') and key.endswith('"') and len(key) >= 2:
            key = key[1:-1]
        keys.add(key.lower())
    return keys


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
            kind, _, name = spec.partition(":")
            if spec in ("proxy:unix:passwd.byname", "unix:passwd.byname"):
                self.use_passwd = True
            elif kind in ("hash", "texthash", "btree", "lmdb", "cdb", "dbm") and name:
                self.keys |= read_alias_like(Path(name))
            elif kind == "nis" or kind == "proxy" and "passwd" not in name:
                continue  # no NIS here; Postfix skips an unavailable nis: map the same way
            else:
                raise ConfigError(f"unsupported table type in local_recipient_maps: {spec}",
                                  field="local_recipient_maps")

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
