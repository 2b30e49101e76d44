"""Profiles: find one by name or path, follow `extends:`, validate every value at load time.

A profile file is YAML:

    description: one line saying what the profile is for
    extends: null-client            # optional: a built-in name or a path relative to this file
    required: [myhostname, relayhost]
    deviations:                     # why a line departs from a benchmark, rendered next to it
      smtpd_client_restrictions: "an MX must accept connections from the whole internet"
    settings:
      inet_interfaces: loopback-only
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from hardener.errors import InputError
from hardener.profiles import keys, values
from hardener.profiles.yamlfile import YamlDoc, load_yaml
from hardener.resources import profiles_dir

DEFAULT_PROFILE = "null-client"
_TOP_LEVEL = ("description", "extends", "required", "deviations", "settings")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True)
class Source:
    """Where a value came from: a file and line, or a --set flag."""

    file: str | None
    line: int | None = None
    field_prefix: str = ""

    def error(self, key: str, reason: str) -> InputError:
        """An InputError naming this source and `key`."""
        return InputError(reason, file=self.file, line=self.line, field=f"{self.field_prefix}{key}")


@dataclass
class Profile:
    """A loaded profile with its `extends` chain already merged (base first, this file last)."""

    name: str
    path: Path
    description: str
    chain: tuple[str, ...]
    settings: dict[str, values.Value] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    required: dict[str, Source] = field(default_factory=dict)
    deviations: dict[str, str] = field(default_factory=dict)


def builtin_names() -> list[str]:
    """Names of the built-in profiles, sorted."""
    return sorted(p.stem for p in profiles_dir().glob("*.yaml"))


def _display(path: Path) -> str:
    """A short, stable name for a profile file in messages (built-ins: profiles/NAME.yaml)."""
    try:
        return f"profiles/{path.resolve().relative_to(profiles_dir().resolve())}"
    except ValueError:
        return str(path)


def find_profile(ref: str, relative_to: Path | None = None) -> Path:
    """The file of profile `ref`: a built-in name, or a path (relative to `relative_to` first)."""
    if _NAME_RE.match(ref) and (profiles_dir() / f"{ref}.yaml").is_file():
        if relative_to is None or not (relative_to / ref).is_file():
            return profiles_dir() / f"{ref}.yaml"
    candidates = [relative_to / ref] if relative_to is not None else []
    candidates.append(Path(ref))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise InputError(f"unknown profile {ref!r} (built-in: {', '.join(builtin_names())}; "
                     "or give the path of a profile YAML file)", field="PROFILE")


def parse_settings(mapping: object, doc: YamlDoc, prefix: tuple[str, ...],
                   out: dict[str, values.Value], sources: dict[str, Source]) -> None:
    """Validate a mapping of key: value from `doc` into `out` (InputError at the first bad key)."""
    if mapping is None:
        return
    if not isinstance(mapping, dict):
        raise InputError("expected a mapping of key: value", file=doc.path,
                         line=doc.line(*prefix) if prefix else None, field=".".join(prefix) or None)
    for key, raw in mapping.items():
        source = Source(doc.path, doc.line(*prefix, str(key)))
        out[str(key)] = validate(str(key), raw, source)
        sources[str(key)] = source


def validate(key: str, raw: object, source: Source) -> values.Value:
    """The parsed value of `key`; InputError naming the source, the key and the reason."""
    try:
        spec = keys.spec(key)
    except KeyError:
        raise source.error(key, "unknown key (see `hardener profiles show NAME` for the keys)") from None
    if raw is None:
        raise source.error(key, "has no value (write '' for an empty value)")
    try:
        return spec.parse(raw)
    except ValueError as err:
        raise source.error(key, str(err)) from None


def _str_list(raw: object, doc: YamlDoc, key: str) -> list[str]:
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    for item in items:
        if not isinstance(item, str):
            raise InputError("expected a list of key names", file=doc.path, line=doc.line(key), field=key)
    return items


def load_profile(ref: str) -> Profile:
    """Load profile `ref` (built-in name or path) with its whole `extends` chain merged."""
    return _load(ref, None, ())


def _load(ref: str, relative_to: Path | None, seen: tuple[Path, ...]) -> Profile:
    path = find_profile(ref, relative_to)
    real = path.resolve()
    if real in seen:
        chain = " -> ".join(_display(p) for p in (*seen, real))
        raise InputError(f"extends loop: {chain}", file=_display(path), field="extends")
    doc = load_yaml(path, _display(path))
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise InputError("a profile must be a YAML mapping (description, extends, settings, ...)",
                         file=doc.path)
    for key in data:
        if key not in _TOP_LEVEL:
            raise InputError(f"unknown profile field (allowed: {', '.join(_TOP_LEVEL)}; values go "
                             "under settings:)", file=doc.path, line=doc.line(str(key)), field=str(key))
    extends = data.get("extends")
    if extends is not None:
        if not isinstance(extends, str) or not extends:
            raise InputError("expected a profile name or path", file=doc.path,
                             line=doc.line("extends"), field="extends")
        base = _load(extends, path.parent, (*seen, real))
    else:
        base = None
    description = data.get("description", base.description if base else "")
    if not isinstance(description, str):
        raise InputError("expected one line of text", file=doc.path, line=doc.line("description"),
                         field="description")
    profile = Profile(
        name=path.stem, path=path, description=" ".join(description.split()),
        chain=(*base.chain, path.stem) if base else (path.stem,),
        settings=dict(base.settings) if base else {},
        sources=dict(base.sources) if base else {},
        required=dict(base.required) if base else {},
        deviations=dict(base.deviations) if base else {},
    )
    parse_settings(data.get("settings"), doc, ("settings",), profile.settings, profile.sources)
    for key in _str_list(data.get("required"), doc, "required"):
        if key not in keys.BY_NAME:
            raise InputError(f"unknown key {key!r}", file=doc.path, line=doc.line("required"),
                             field="required")
        profile.required[key] = Source(doc.path, doc.line("required"))
    _load_deviations(data.get("deviations"), doc, profile.deviations)
    return profile


def _load_deviations(raw: object, doc: YamlDoc, out: dict[str, str]) -> None:
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise InputError("expected a mapping of parameter: reason", file=doc.path,
                         line=doc.line("deviations"), field="deviations")
    for key, reason in raw.items():
        source = Source(doc.path, doc.line("deviations", str(key)), "deviations.")
        if not re.match(r"^[a-z_][a-z0-9_]*$", str(key)):
            raise source.error(str(key), "not a parameter name")
        if not isinstance(reason, str) or not reason:
            raise source.error(str(key), "expected one line of text saying why")
        try:
            values.check_injection(reason)
        except ValueError as err:
            raise source.error(str(key), str(err)) from None
        out[str(key)] = reason
