"""Run every check against every target and build the Report.

Targets are audited --concurrency at a time (asyncio.Semaphore); inside one target the checks run in
order and open one connection at a time (politeness). Before any check, one session establishes that
the target speaks SMTP: an unreachable, filtered, early-disconnecting or garbage-speaking server gets
TargetResult.error, every check recorded as not run, and no finding. A check that fails half way
(timeout, disconnect) is recorded as `error` with the reason; the others still run. A per-target
deadline bounds the whole audit of one server.

The checks are registered explicitly in CHECKS, each with the slugs it records. A check that cannot
even be loaded (its module or a library it needs fails to import, e.g. a broken `cryptography`)
still counts: each of its slugs is `error` with the reason on every target, which makes every target
incomplete (exit 3) and adds a note to the report. Nothing is silently left out.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hardener.audit.context import AuditContext, AuditOptions, AuditTarget
from hardener.audit.probe import ProbeError
from hardener.audit.targets import Unresolved
from hardener.report.model import CheckStatus, Report, TargetResult

Progress = Callable[[AuditTarget, TargetResult], None]
RunCheck = Callable[[AuditContext], Awaitable[None]]


@dataclass(frozen=True)
class Check:
    """One registered check: its name (AuditOptions.checks), its module and the slugs it records."""

    name: str
    module: str
    slugs: tuple[str, ...]


# Every network check, in the order they run; tests/audit/test_runner.py checks each module's SLUGS.
CHECKS: tuple[Check, ...] = (
    Check("banner", "hardener.audit.checks.banner", ("banner-leak",)),
    Check("protocol", "hardener.audit.checks.protocol",
          ("helo-not-required", "pipelining-unauth", "size-unlimited")),
    Check("enumeration", "hardener.audit.checks.enumeration",
          ("vrfy-enabled", "expn-enabled", "user-enumeration")),
    Check("tls", "hardener.audit.checks.tls",
          ("starttls-missing", "auth-plaintext", "tls-weak-protocol", "tls-cert-invalid")),
    Check("relay", "hardener.audit.checks.relay", ("open-relay",)),
    Check("mynetworks", "hardener.audit.checks.mynetworks", ("mynetworks-too-broad",)),
    Check("smuggling", "hardener.audit.checks.smuggling", ("smtp-smuggling",)),
)


@dataclass(frozen=True)
class LoadedCheck:
    """A registered check with its run() function, or why it cannot run."""

    check: Check
    run: RunCheck | None
    problem: str = ""


def load_checks(names: tuple[str, ...] | None = None) -> list[LoadedCheck]:
    """The registered checks to run (all, or those named), each loaded or with the reason it
    cannot run: an import failure is recorded, never skipped."""
    out = []
    for check in CHECKS:
        if names is not None and check.name not in names:
            continue
        try:
            module = importlib.import_module(check.module)
        except Exception as exc:  # ImportError, or whatever a broken dependency raises
            problem = f"cannot run: {exc.__class__.__name__}: {exc}"
            out.append(LoadedCheck(check, None, " ".join(problem.split())))
            continue
        out.append(LoadedCheck(check, module.run))
    return out


def load_problems(checks: Sequence[LoadedCheck]) -> list[str]:
    """One report note per check that cannot run."""
    return [f"check {c.check.name} {c.problem} (its controls are reported as not checked: "
            f"{', '.join(c.check.slugs)})" for c in checks if c.run is None]


def default_deadline(options: AuditOptions) -> float:
    """Seconds one target may take in all: generous, but finite even against a tarpit."""
    per_reply = options.timeout
    sessions = 12 + 2 * len(options.source_addresses) + len(options.xclient_addrs)
    if options.intrusive:
        sessions += 12
    return max(60.0, per_reply * sessions * 3)


async def audit_target(target: AuditTarget, options: AuditOptions,
                       checks: Sequence[LoadedCheck] | None = None,
                       ) -> tuple[TargetResult, AuditContext]:
    """Audit one target completely; never raises for anything the network does."""
    ctx = AuditContext.for_target(target, options)
    checks = load_checks(options.checks) if checks is None else checks
    for loaded in checks:
        if loaded.run is None:
            _mark_unfinished(ctx.result, [loaded], loaded.problem)
    deadline = options.target_deadline or default_deadline(options)
    try:
        await asyncio.wait_for(_run_checks(ctx, checks), deadline)
    except asyncio.TimeoutError:
        ctx.result.error = ctx.result.error or f"audit did not finish within {deadline:g}s"
    _mark_unfinished(ctx.result, checks, ctx.result.error or "not run")
    return ctx.result, ctx


async def _run_checks(ctx: AuditContext, checks: Sequence[LoadedCheck]) -> None:
    try:
        async with ctx.session():
            pass  # greeting + EHLO: is this an SMTP server at all?
    except ProbeError as err:
        ctx.result.error = str(err)
        return
    for loaded in checks:
        if loaded.run is None:
            continue
        try:
            await loaded.run(ctx)
        except ProbeError as err:
            _mark_unfinished(ctx.result, [loaded], f"{err}")
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a bug in a check must not hide the other checks' results
            _mark_unfinished(ctx.result, [loaded],
                             f"internal error: {err.__class__.__name__}: {err}")


def _mark_unfinished(result: TargetResult, checks: Sequence[LoadedCheck], reason: str) -> None:
    """Record ERROR for every slug of these checks that has no status yet."""
    done = {c.check for c in result.checks}
    for loaded in checks:
        for slug in loaded.check.slugs:
            if slug not in done:
                result.record(slug, CheckStatus.ERROR, reason)


def unresolved_result(entry: Unresolved, checks: Sequence[LoadedCheck]) -> TargetResult:
    """The report entry of a target that could not be resolved: incomplete, nothing checked."""
    result = TargetResult(target=entry.label, vantage="network", error=entry.reason)
    _mark_unfinished(result, checks, entry.reason)
    return result


async def audit_all(targets: Sequence[AuditTarget | Unresolved], options: AuditOptions,
                    progress: Progress | None = None) -> Report:
    """Audit every target (--concurrency at a time); results in the order targets were given.

    Unresolved entries are reported as incomplete without any connection."""
    checks = load_checks(options.checks)
    semaphore = asyncio.Semaphore(max(1, options.concurrency))
    results: list[TargetResult | None] = [None] * len(targets)

    async def one(index: int, target: AuditTarget) -> None:
        async with semaphore:
            result, ctx = await audit_target(target, options, checks)
        results[index] = result
        if options.transcript_dir is not None:
            write_transcript(options.transcript_dir, ctx)
        if progress is not None:
            progress(target, result)

    for index, entry in enumerate(targets):
        if isinstance(entry, Unresolved):
            results[index] = unresolved_result(entry, checks)
    await asyncio.gather(*(one(i, t) for i, t in enumerate(targets)
                           if isinstance(t, AuditTarget)))
    return Report(targets=[r for r in results if r is not None], command="audit",
                  notes=load_problems(checks))


def transcript_path(directory: Path, target: AuditTarget) -> Path:
    """DIR/HOST_PORT.txt with characters unsafe in file names replaced."""
    safe = "".join(c if c.isalnum() or c in ".-" else "_" for c in target.host)
    return directory / f"{safe}_{target.port}.txt"


def write_transcript(directory: Path, ctx: AuditContext) -> None:
    """Write one target's session transcripts (best effort: a full disk must not lose the report)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        transcript_path(directory, ctx.target).write_text(ctx.transcript_text(), encoding="utf-8")
    except OSError as err:
        print(f"hardener: warning: cannot write transcript for {ctx.target.display}: {err}",
              file=sys.stderr)


def show_progress(fmt: str, stream: object = None) -> bool:
    """A progress bar only on a terminal, never in CI or with --format json."""
    stream = stream if stream is not None else sys.stderr
    if fmt == "json" or os.environ.get("CI"):
        return False
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return False


def run_audit(targets: Sequence[AuditTarget | Unresolved], options: AuditOptions, *,
              progress_bar: bool = False) -> Report:
    """Audit synchronously (for the CLI), with a rich progress bar on stderr when asked."""
    if not progress_bar:
        return asyncio.run(audit_all(targets, options))
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn

    console = Console(stderr=True)
    with RichProgress(TextColumn("auditing"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.description}"), console=console, transient=True) as bar:
        task = bar.add_task("", total=sum(isinstance(t, AuditTarget) for t in targets))

        def advance(target: AuditTarget, result: TargetResult) -> None:
            bar.update(task, advance=1, description=f"{target.display} {result.status}")

        return asyncio.run(audit_all(targets, options, advance))
