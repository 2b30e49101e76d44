"""root-alias-missing: mail to root must reach a person.

Applies only when this host delivers mail locally (mydestination not empty and local_transport not
error/discard); on a null client root's mail is qualified with $myorigin and relayed away. The
aliases file is the source text of the first file-backed table in alias_maps (hash:/etc/aliases
reads /etc/aliases, as newaliases does); when that path does not exist, a file of the same name
beside main.cf is read instead (a rendered configuration directory). Aliases are followed until
they end: root -> admin -> ops@example.com is fine, root -> root or /dev/null is not.
"""

from __future__ import annotations

from pathlib import Path

from hardener.lint.base import LintContext, Skip, finding
from hardener.lint.tables import FILE_TYPES
from hardener.postfix.tables import parse_spec, read_alias_lines, split_alias_values
from hardener.report.model import Finding, Location

_MAX_HOPS = 20


def local_delivery(ctx: LintContext) -> bool:
    """True when this host delivers mail for some domain to local mailboxes."""
    transport = ctx.value("local_transport").strip().lower()
    return bool(ctx.words("mydestination")) and not transport.startswith(("error", "discard"))


def aliases_file(ctx: LintContext) -> tuple[Path | None, list[str]]:
    """The aliases source file to read, and why the others in alias_maps were not read."""
    skipped = []
    for ref in ctx.words("alias_maps"):
        spec = parse_spec(ref)
        kind, name = spec.type, spec.name
        if kind not in FILE_TYPES:
            skipped.append(f"{ref} ({kind or 'untyped'} table, not read)")
            continue
        path = Path(name)
        if path.is_file():
            return path, skipped
        beside = ctx.main_path.parent / path.name
        if beside.is_file():
            return beside, skipped
        skipped.append(f"{ref} ({name}: no such file)")
    return None, skipped


def _entries(path: Path) -> dict[str, tuple[list[str], int | None]]:
    """alias name (lowercase) -> (targets, line of the entry); the first of duplicates wins, as
    postalias keeps it."""
    aliases: dict[str, tuple[list[str], int | None]] = {}
    for entry in read_alias_lines(path, strict=False):
        aliases.setdefault(entry.key, (split_alias_values(entry.value), entry.line))
    return aliases


def _final_targets(aliases: dict[str, tuple[list[str], int | None]], name: str) -> list[str]:
    """Where mail to `name` ends up after following aliases (bounded, loops stop at the repeat)."""
    final: list[str] = []
    seen: set[str] = set()
    pending = [name]
    hops = 0
    while pending and hops < _MAX_HOPS:
        hops += 1
        current = pending.pop(0)
        key = current.lower()
        if key in seen:
            final.append(current)
            continue
        seen.add(key)
        if key in aliases and "@" not in key:
            pending.extend(aliases[key][0])
        else:
            final.append(current)
    return final


def _reaches_person(target: str) -> bool:
    text = target.strip().strip('"').lower()
    if text in ("root", "/dev/null") or text.startswith(("/", "|", ":include:")):
        return False
    return bool(text)


def check_root_alias(ctx: LintContext) -> list[Finding]:
    """root-alias-missing: no alias for root, or one that never leaves root or /dev/null."""
    if not local_delivery(ctx):
        raise Skip("no local delivery (mydestination empty or local_transport = error): "
                   "mail to root is relayed with the rest")
    path, skipped = aliases_file(ctx)
    if path is None:
        if not ctx.words("alias_maps"):
            return [finding(ctx, "root-alias-missing", "alias_maps",
                            f"{ctx.describe('alias_maps')}: there are no aliases, mail to root "
                            f"stays in root's mailbox on this host")]
        raise Skip("cannot read alias_maps: " + "; ".join(skipped))
    aliases = _entries(path)
    if "root" not in aliases:
        return [Finding.of("root-alias-missing",
                           f"{path}, the aliases file of alias_maps `{ctx.value('alias_maps')}`, has "
                           f"no alias for root: mail to root stays in root's mailbox on this host",
                           location=Location(str(path), None))]
    targets, line = aliases["root"]
    final = _final_targets(aliases, "root")
    if any(_reaches_person(t) for t in final):
        return []
    return [Finding.of("root-alias-missing",
                       f"root: {', '.join(targets)} in {path} ends at {', '.join(final)}, "
                       f"not at a person's address",
                       location=Location(str(path), line))]


CHECKS = {"root-alias-missing": check_root_alias}
