"""Run every config-vantage check over a main.cf (and the master.cf beside it).

The checks of what the SMTP server does (relay, banner, protocol, TLS) run once per smtpd service in
master.cf with that service's `-o` overrides applied, since port 25 and port 587 often differ; a
finding that only an override produces names the service and points at its master.cf line. The
other checks (networks, chroot, aliases, explanations) run once on main.cf. Every check is recorded
as passed, failed or skipped (with the reason), so the report says what was checked.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from hardener import postfix
from hardener.controls import CATALOG, Vantage
from hardener.errors import InputError
from hardener.lint import aliases, banner, certs, explain, networks, privilege, protocol, relay, tls
from hardener.lint.base import Check, LintContext, Network, Skip
from hardener.lint.privilege import command_name
from hardener.postfix.maincf import OVERRIDE_FILE
from hardener.report.model import CheckStatus, Finding, Location, TargetResult

# Checks of the SMTP server's behaviour: evaluated per smtpd service (with its -o overrides).
# mynetworks belongs here too: smtpd reads it (permit_mynetworks), so `-o mynetworks=` counts.
SERVICE_CHECKS: dict[str, Check] = {**relay.CHECKS, **banner.CHECKS, **protocol.CHECKS,
                                    **tls.CHECKS, **certs.CHECKS, **networks.MYNETWORKS_CHECKS}
# Checks of the host as a whole: evaluated once on main.cf / master.cf.
HOST_CHECKS: dict[str, Check] = {**networks.HOST_CHECKS, **privilege.CHECKS, **aliases.CHECKS,
                                 **explain.CHECKS}

PASS_NOTES = {
    "expn-enabled": "Postfix has no EXPN command (500 whatever the configuration) and hardener's MTA "
                    "always answers 502: a main.cf cannot enable it",
}


def config_slugs() -> list[str]:
    """Every catalog slug with the config vantage, in catalog order (what lint checks)."""
    return [c.slug for c in CATALOG if Vantage.CONFIG in c.vantages]


def find_files(path: str | Path) -> tuple[Path, Path | None]:
    """main.cf and master.cf (None when absent) for PATH: a main.cf, or a directory holding it."""
    target = Path(path)
    main = target / "main.cf" if target.is_dir() else target
    if not main.exists():
        what = "no main.cf in this directory" if target.is_dir() else "no such file"
        raise InputError(what, file=str(main if target.is_dir() else target))
    if not main.is_file():
        raise InputError("not a regular file", file=str(main))
    master = main.parent / "master.cf"
    return main, master if master.exists() else None


def load_context(path: str | Path, *, trusted: tuple[Network, ...] = (),
                 now: datetime | None = None) -> LintContext:
    """Parse the files at PATH into a LintContext (ConfigError/InputError for unusable input)."""
    main_path, master_path = find_files(path)
    main = postfix.load_main_cf(main_path)
    master = postfix.load_master_cf(master_path, main) if master_path else None
    ctx = LintContext(main=main, main_path=main_path, master=master, master_path=master_path,
                      trusted=trusted)
    if now is not None:
        ctx.now = now
    return ctx


# Address classes come from trivial-rewrite, not smtpd: an smtpd `-o relay_domains=...` does not
# change which domains smtpd relays for (checked against real Postfix in tests/lint).
RESOLVER_PARAMETERS = frozenset({"relay_domains", "mydestination", "virtual_alias_domains",
                                 "virtual_mailbox_domains", "inet_interfaces", "proxy_interfaces"})


def _overrides(service: Any) -> dict[str, str]:
    """A service's -o name=value options, without those smtpd does not act on itself."""
    options = getattr(service, "options", None) or {}
    pairs = options.items() if isinstance(options, dict) else options
    return {str(k): str(v) for k, v in pairs if str(k) not in RESOLVER_PARAMETERS}


def smtpd_services(ctx: LintContext) -> list[Any]:
    """master.cf services that run smtpd for network clients (inet, or pass behind postscreen)."""
    if ctx.master is None:
        return []
    return [s for s in ctx.master.services
            if command_name(s) == "smtpd" and getattr(s, "type", "") in ("inet", "pass")]


def service_contexts(ctx: LintContext) -> list[tuple[Any | None, LintContext]]:
    """(service, context) pairs for the smtpd checks: main.cf alone, plus one per -o service."""
    services = smtpd_services(ctx)
    plain = [s for s in services if not _overrides(s)]
    pairs: list[tuple[Any | None, LintContext]] = []
    if not services or plain:
        pairs.append((None, ctx))
    for service in services:
        options = _overrides(service)
        if options:
            pairs.append((service, replace(ctx, main=ctx.main.with_overrides(options))))
    return pairs


def _relocate(found: Finding, ctx: LintContext, service: Any) -> Finding:
    """Name the service in the evidence; point -o values at the service's master.cf line."""
    label = f"master.cf service `{getattr(service, 'name', '?')} {getattr(service, 'type', '')}`"
    found.evidence = f"{label}: {found.evidence}"
    if found.location is None or found.location.file == OVERRIDE_FILE:
        found.location = Location(str(ctx.master_path), getattr(service, "line", None))
    return found


def _run(check: Check, ctx: LintContext) -> tuple[list[Finding], str | None]:
    try:
        return check(ctx), None
    except Skip as skip:
        return [], str(skip)


def run_checks(ctx: LintContext) -> TargetResult:
    """Run every config-vantage check on `ctx`; a TargetResult with vantage 'config'."""
    result = TargetResult(target=str(ctx.main_path), vantage="config")
    pairs = service_contexts(ctx)
    for slug in config_slugs():
        findings: list[Finding] = []
        skips: list[str] = []
        if slug in SERVICE_CHECKS:
            seen: set[str] = set()
            for service, sctx in pairs:
                found, skipped = _run(SERVICE_CHECKS[slug], sctx)
                if skipped:
                    skips.append(skipped)
                for item in found:
                    if item.evidence in seen:
                        continue
                    seen.add(item.evidence)
                    findings.append(_relocate(item, ctx, service) if service is not None else item)
        elif slug in HOST_CHECKS:
            found, skipped = _run(HOST_CHECKS[slug], ctx)
            findings.extend(found)
            if skipped:
                skips.append(skipped)
        else:
            continue
        for item in findings:
            result.add(item)
        if findings:
            result.record(slug, CheckStatus.FAILED)
        elif skips and len(skips) == len(pairs if slug in SERVICE_CHECKS else [ctx]):
            result.record(slug, CheckStatus.SKIPPED, "; ".join(dict.fromkeys(skips)))
        else:
            result.record(slug, CheckStatus.PASSED, PASS_NOTES.get(slug, ""))
    return result


def lint_path(path: str | Path, *, trusted: tuple[Network, ...] = (),
              now: datetime | None = None) -> TargetResult:
    """Lint the main.cf at PATH (or PATH/main.cf) and the master.cf beside it."""
    return run_checks(load_context(path, trusted=trusted, now=now))
