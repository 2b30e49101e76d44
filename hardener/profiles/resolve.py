"""Merge profile < --vars FILE < --set KEY=VALUE into the settings the templates render.

Each layer is validated when it is read, so an error names its own file or flag; checks that need
several keys (required keys, relay_domains vs mydestination, ...) run on the merged result and name
the source of the value they complain about.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hardener.errors import InputError
from hardener.profiles import keys
from hardener.profiles.loader import Profile, Source, parse_settings, validate
from hardener.profiles.values import Value
from hardener.profiles.yamlfile import load_yaml


@dataclass
class Settings:
    """Every key with its effective value (None: unset), plus the profile it came from."""

    profile: Profile
    values: dict[str, Value | None]
    sources: dict[str, Source]

    def __getitem__(self, key: str) -> Value | None:
        return self.values[key]


def read_vars_file(path: Path) -> tuple[dict[str, Value], dict[str, Source]]:
    """A --vars FILE: a flat YAML mapping of key: value, every value validated."""
    doc = load_yaml(path)
    out: dict[str, Value] = {}
    sources: dict[str, Source] = {}
    if doc.data is not None and not isinstance(doc.data, dict):
        raise InputError("a vars file must be a YAML mapping of key: value", file=doc.path)
    parse_settings(doc.data, doc, (), out, sources)
    return out, sources


def parse_set(assignments: Iterable[str]) -> tuple[dict[str, Value], dict[str, Source]]:
    """--set KEY=VALUE flags (later ones win); errors name `--set KEY`."""
    out: dict[str, Value] = {}
    sources: dict[str, Source] = {}
    for text in assignments:
        key, sep, raw = text.partition("=")
        key = key.strip()
        source = Source(None, None, "--set ")
        if not sep or not key:
            raise InputError("expected KEY=VALUE", field=f"--set {text.splitlines()[0] if text else ''}")
        out[key] = validate(key, raw, source)
        sources[key] = source
    return out, sources


def _default_domain(hostname: str) -> str:
    labels = hostname.rstrip(".").split(".")
    return ".".join(labels[1:]) if len(labels) > 2 else ".".join(labels)


def resolve(profile: Profile, vars_file: Path | None = None, assignments: Iterable[str] = (),
            *, overrides: Mapping[str, object] | None = None, overrides_label: str = "vars") -> Settings:
    """The effective settings: key defaults < profile chain < vars file < overrides < --set.

    `overrides` is for callers that hold values already parsed from elsewhere (an inventory's
    host vars); errors name `overrides_label` as their file.
    """
    merged: dict[str, Value] = dict(profile.settings)
    sources: dict[str, Source] = dict(profile.sources)
    if vars_file is not None:
        file_values, file_sources = read_vars_file(vars_file)
        merged.update(file_values)
        sources.update(file_sources)
    for key, raw in (overrides or {}).items():
        source = Source(overrides_label)
        merged[str(key)] = validate(str(key), raw, source)
        sources[str(key)] = source
    set_values, set_sources = parse_set(assignments)
    merged.update(set_values)
    sources.update(set_sources)

    for key, source in profile.required.items():
        if merged.get(key) in (None, "", ()):
            raise InputError(f"required by profile {profile.name}; give it with --set {key}=VALUE "
                             "or in a --vars file", file=source.file, line=source.line, field=key)

    effective: dict[str, Value | None] = {k.name: k.default for k in keys.KEYS}
    effective.update(merged)
    if effective["admin_address"] is None and effective["myhostname"]:
        domain = effective["mydomain"] or _default_domain(str(effective["myhostname"]))
        effective["admin_address"] = f"postmaster@{domain}"
    _cross_check(effective, sources)
    return Settings(profile, effective, sources)


def _cross_check(values: dict[str, Value | None], sources: dict[str, Source]) -> None:
    def fail(key: str, reason: str) -> InputError:
        return sources.get(key, Source(None)).error(key, reason)

    if values["internal_nexthop"] and not values["relay_domains"]:
        raise fail("internal_nexthop", "needs relay_domains (the domains whose mail goes there)")
    if values["relay_domains"] and not values["internal_nexthop"]:
        raise fail("relay_domains", "needs internal_nexthop (where mail for these domains goes)")
    if any("$" in d for d in values["relay_domains"] or ()):
        raise fail("relay_domains", "write the domains out ($name is not expanded in the transport table)")
    overlap = set(values["relay_domains"] or ()) & set(values["mydestination"] or ())
    if overlap:
        raise fail("relay_domains", f"{', '.join(sorted(overlap))} also in mydestination")
    if values["smtp_tls_security_level"] in ("verify", "secure") and not values["smtp_tls_CAfile"]:
        raise fail("smtp_tls_security_level", "verify/secure needs smtp_tls_CAfile")
    if values["smtpd_tls_security_level"] != "none":
        if not values["smtpd_tls_cert_file"] or not values["smtpd_tls_key_file"]:
            raise fail("smtpd_tls_cert_file", "TLS needs smtpd_tls_cert_file and smtpd_tls_key_file "
                       "(or smtpd_tls_security_level=none)")
    if values["smtpd_sasl_auth_enable"] == "yes" and values["smtpd_tls_security_level"] == "none":
        raise fail("smtpd_sasl_auth_enable", "AUTH needs TLS (smtpd_tls_auth_only = yes); "
                   "set smtpd_tls_security_level to may or encrypt")
    listen = str(values["smtpd_listen"])
    if values["inet_interfaces"] == ("loopback-only",) and (":" in listen and not _is_loopback_listen(listen)):
        raise fail("smtpd_listen", "listens beyond loopback while inet_interfaces = loopback-only")


def _is_loopback_listen(listen: str) -> bool:
    import ipaddress

    host = listen.rsplit(":", 1)[0].strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
