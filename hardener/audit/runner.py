"""Run every check against every target and build the Report.

Targets are audited --concurrency at a time (asyncio.Semaphore); inside one target the checks run in
order and open one connection at a time (politeness). Before any check, one session establishes that
the target speaks SMTP: an unreachable, filtered, early-disconnecting or garbage-speaking server gets
TargetResult.error, every check recorded as not run, and no finding. A check that fails half way
(timeout, disconnect) is recorded as `error` with the reason; the others still run. A per-target
deadline bounds the whole audit of one server.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from hardener.audit.checks import CHECK_MODULES
from hardener.audit.context import AuditContext, AuditOptions, AuditTarget
from hardener.audit.probe import ProbeError
from hardener.report.model import CheckStatus, Report, TargetResult

Progress = Callable[[AuditTarget, TargetResult], None]


def load_checks(names: tuple[str, ...] | None = None) -> list[tuple[str, ModuleType]]:
    """The check modules to run, in CHECK_MODULES order (a module that cannot load is skipped)."""
    out = []
    for name in CHECK_MODULES:
        if names is not None and name not in names:
            continue
        try:
            out.append((name, importlib.import_module(f"hardener.audit.checks.{name}")))
        except ImportError:  # a check module still being written must not break the others
            continue
    return out


def default_deadline(options: AuditOptions) -> float:
    """Seconds one target may take in all: generous, but finite even against a tarpit."""
    per_reply = options.timeout
    sessions = 12 + 2 * len(options.source_addresses) + len(options.xclient_addrs)
    if options.intrusive:
        sessions += 12
    return max(60.0, per_reply * sessions * 3)


async def audit_target(target: AuditTarget, options: AuditOptions) -> tuple[TargetResult, AuditContext]:
    """Audit one target completely; never raises for anything the network does."""
    ctx = AuditContext.for_target(target, options)
    checks = load_checks(options.checks)
    deadline = options.target_deadline or default_deadline(options)
    try:
        await asyncio.wait_for(_run_checks(ctx, checks), deadline)
    except asyncio.TimeoutError:
        ctx.result.error = ctx.result.error or f"audit did not finish within {deadline:g}s"
    _mark_unfinished(ctx, checks, ctx.result.error or "not run")
    return ctx.result, ctx


async def _run_checks(ctx: AuditContext, checks: list[tuple[str, ModuleType]]) -> None:
    try:
        async with ctx.session():
            pass  # greeting + EHLO: is this an SMTP server at all?
    except ProbeError as err:
        ctx.result.error = str(err)
        return
    for name, module in checks:
        try:
            await module.run(ctx)
        except ProbeError as err:
            _mark_unfinished(ctx, [(name, module)], f"{err}")
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a bug in a check must not hide the other checks' results
            _mark_unfinished(ctx, [(name, module)], f"internal error: {err.__class__.__name__}: {err}")


def _mark_unfinished(ctx: AuditContext, checks: list[tuple[str, ModuleType]], reason: str) -> None:
    """Record ERROR for every slug of these modules that has no status yet."""
    done = {c.check for c in ctx.result.checks}
    for _name, module in checks:
        for slug in getattr(module, "SLUGS", ()):
            if slug not in done:
                ctx.result.record(slug, CheckStatus.ERROR, reason)


async def audit_all(targets: list[AuditTarget], options: AuditOptions,
                    progress: Progress | None = None) -> Report:
    """Audit every target (--concurrency at a time); results in the order targets were given."""
    semaphore = asyncio.Semaphore(max(1, options.concurrency))
    results: list[TargetResult | None] = [None] * len(targets)

    async def one(index: int, target: AuditTarget) -> None:
        async with semaphore:
            result, ctx = await audit_target(target, options)
        results[index] = result
        if options.transcript_dir is not None:
            write_transcript(options.transcript_dir, ctx)
        if progress is not None:
            progress(target, result)

    await asyncio.gather(*(one(i, t) for i, t in enumerate(targets)))
    return Report(targets=[r for r in results if r is not None], command="audit")


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


def run_audit(targets: list[AuditTarget], options: AuditOptions, *, progress_bar: bool = False) -> Report:
    """Audit synchronously (for the CLI), with a rich progress bar on stderr when asked."""
    if not progress_bar:
        return asyncio.run(audit_all(targets, options))
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn

    console = Console(stderr=True)
    with RichProgress(TextColumn("auditing"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.description}"), console=console, transient=True) as bar:
        task = bar.add_task("", total=len(targets))

        def advance(target: AuditTarget, result: TargetResult) -> None:
            bar.update(task, advance=1, description=f"{target.display} {result.status}")

        return asyncio.run(audit_all(targets, options, advance))
