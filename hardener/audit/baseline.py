"""--baseline FILE: accepted findings, suppressed by control (or check slug) and target.

The file is YAML, a list of entries (or a mapping with the list under `suppressions`):

    - control: HRD-BANNER-001        # or  check: banner-leak
      target: 127.0.0.2:2525         # host:port, host, or "*" (default: every target); an --mx
                                     # target matches by MX name or address
      reason: legacy appliance, replaced in Q3
      expires: 2026-12-31            # optional; after this date the finding is reported again

A matching finding moves from TargetResult.findings to TargetResult.suppressed (with the reason).
An expired entry suppresses nothing: the findings it covered are reported again, each with a detail
saying the suppression expired, and the run gets a note (Report.notes: shown by every report
format, and on stderr unless the report itself is a table or Markdown on stdout), so nobody forgets
it. A file that is not such a list is an InputError naming the file, the entry and the field.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hardener.controls import get as get_control
from hardener.errors import InputError
from hardener.report.model import Finding, Report, TargetResult

_KEYS = {"control", "check", "target", "reason", "expires"}


@dataclass(frozen=True)
class Suppression:
    """One baseline entry."""

    control_id: str
    target: str            # "*" for every target
    reason: str
    expires: dt.date | None
    line: int | None = None

    def matches(self, finding: Finding, target: TargetResult) -> bool:
        return finding.control.id == self.control_id and target_matches(self.target, target.target)

    def expired(self, today: dt.date) -> bool:
        return self.expires is not None and self.expires < today

    def describe(self) -> str:
        return f"{self.control_id} on {self.target}"


def target_matches(pattern: str, target: str) -> bool:
    """'*' matches everything; 'host' matches host on any port; else exact (case-insensitive).

    A target found by --mx ('mx1.example.com[192.0.2.5]:25') matches by its name or its address,
    with or without the port.
    """
    pattern, target = pattern.strip().lower(), target.lower()
    if pattern in ("*", ""):
        return True
    if pattern == target:
        return True
    host, _, port = target.rpartition(":")
    names = {host, host.strip("[]")}
    if "[" in host and not host.startswith("["):  # name[address]
        name, _, address = host.rstrip("]").partition("[")
        bracketed = f"[{address}]" if ":" in address else address
        names |= {name, address, f"{name}:{port}", f"{bracketed}:{port}"}
    return pattern in names


class _LineLoader(yaml.SafeLoader):
    """A SafeLoader that remembers the line of each mapping (for error messages)."""


def _mapping_with_line(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)


def load_baseline(path: Path) -> list[Suppression]:
    """Parse a baseline file (InputError 'FILE:LINE: FIELD: problem' on anything wrong)."""
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read baseline: {getattr(err, 'strerror', None) or err}",
                         file=where, field="--baseline") from None
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise InputError(f"invalid YAML: {problem}", file=where,
                         line=mark.line + 1 if mark else None) from None
    if data is None:
        return []
    if isinstance(data, dict) and "suppressions" in data:
        data = data["suppressions"]
    if not isinstance(data, list):
        raise InputError("expected a list of suppressions", file=where, line=1)
    return [_entry(item, where, index) for index, item in enumerate(data, start=1)]


def _entry(item: Any, where: str, index: int) -> Suppression:
    if not isinstance(item, dict):
        raise InputError(f"entry {index} is not a mapping", file=where)
    line = item.pop("__line__", None)
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise InputError(f"unknown key (allowed: {', '.join(sorted(_KEYS))})", file=where, line=line,
                         field=unknown[0])
    key = item.get("control") or item.get("check")
    field = "control" if item.get("control") else "check"
    if not key or not isinstance(key, str):
        raise InputError("each entry needs a control id or a check slug", file=where, line=line,
                         field="control")
    try:
        control = get_control(key.strip())
    except KeyError:
        raise InputError(f"unknown control or check {key!r}", file=where, line=line, field=field) from None
    target = item.get("target", "*")
    if not isinstance(target, (str, int)) or not str(target).strip():
        raise InputError("target must be host, host:port or '*'", file=where, line=line, field="target")
    reason = item.get("reason", "")
    if not isinstance(reason, str):
        raise InputError("reason must be text", file=where, line=line, field="reason")
    expires = item.get("expires")
    if expires is not None:
        if isinstance(expires, dt.datetime):
            expires = expires.date()
        elif isinstance(expires, str):
            try:
                expires = dt.date.fromisoformat(expires.strip())
            except ValueError:
                raise InputError(f"{expires!r} is not a date (YYYY-MM-DD)", file=where, line=line,
                                 field="expires") from None
        elif not isinstance(expires, dt.date):
            raise InputError(f"{expires!r} is not a date (YYYY-MM-DD)", file=where, line=line,
                             field="expires")
    return Suppression(control.id, str(target).strip(), reason.strip(), expires, line)


def apply_baseline(report: Report, suppressions: list[Suppression], *, source: str = "baseline",
                   today: dt.date | None = None) -> list[str]:
    """Move matching findings to `suppressed`; return notes about expired entries (also added to
    report.notes)."""
    today = today or dt.date.today()
    active = [s for s in suppressions if not s.expired(today)]
    notes = []
    for s in suppressions:
        if s.expired(today):
            where = f"{source}:{s.line}" if s.line else source
            notes.append(f"{where}: suppression of {s.describe()} expired on {s.expires.isoformat()}"
                         f" (reason was: {s.reason or 'none given'}); its findings are reported again")
    expired = [s for s in suppressions if s.expired(today)]
    for target in report.targets:
        kept = []
        for finding in target.findings:
            match = next((s for s in active if s.matches(finding, target)), None)
            if match is None:
                lapsed = next((s for s in expired if s.matches(finding, target)), None)
                if lapsed is not None:  # say so on the finding itself, visible in every format
                    note = (f"baseline suppression expired on {lapsed.expires.isoformat()}"
                            f" (reason was: {lapsed.reason or 'none given'})")
                    finding.detail = f"{finding.detail}; {note}" if finding.detail else note
                kept.append(finding)
                continue
            entry = finding.to_dict()
            entry["reason"] = match.reason
            if match.expires:
                entry["expires"] = match.expires.isoformat()
            target.suppressed.append(entry)
        target.findings = kept
    report.notes.extend(notes)
    return notes
