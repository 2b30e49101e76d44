"""`hardener mta queue list|flush|delete ID|hold ID|release ID`: the queue tools' command line.

Mounted under `hardener mta` by hardener/cli/mta_cmd.py (`app.add_typer(queue_app, name="queue")`).
"""

from __future__ import annotations

import json

import typer

from hardener.errors import InputError
from hardener.mta.queue_tools import QueueTools, format_mailq, queue_directory

queue_app = typer.Typer(help="Show and manage the MTA's mail queue (like mailq/postsuper).",
                        no_args_is_help=True, add_completion=False)

_CONFIG = typer.Option("/etc/hardener", "--config", help="Directory holding main.cf.")


def _tools(config: str) -> QueueTools:
    return QueueTools(queue_directory(config))


@queue_app.command("list")
def list_cmd(config: str = _CONFIG,
             format: str = typer.Option("table", "--format", help="table or json.")) -> None:
    """List queued mail: id, size, arrival, sender, recipients, last reason."""
    if format not in ("table", "json"):
        raise InputError(f"unknown format {format!r} (use table or json)", field="--format")
    entries = _tools(config).entries()
    if format == "json":
        typer.echo(json.dumps([e.to_dict() for e in entries], indent=2))
    else:
        typer.echo(format_mailq(entries), nl=False)


@queue_app.command("flush")
def flush_cmd(config: str = _CONFIG) -> None:
    """Retry every deferred message now."""
    n = _tools(config).flush()
    typer.echo(f"flushed {n} deferred message{'s' if n != 1 else ''}")


@queue_app.command("delete")
def delete_cmd(qid: str = typer.Argument(..., metavar="ID"), config: str = _CONFIG) -> None:
    """Delete message ID from the queue."""
    queue = _tools(config).delete(qid)
    typer.echo(f"{qid}: removed from {queue}")


@queue_app.command("hold")
def hold_cmd(qid: str = typer.Argument(..., metavar="ID"), config: str = _CONFIG) -> None:
    """Put message ID on hold (no delivery until released)."""
    queue = _tools(config).hold(qid)
    typer.echo(f"{qid}: placed on hold (was {queue})")


@queue_app.command("release")
def release_cmd(qid: str = typer.Argument(..., metavar="ID"), config: str = _CONFIG) -> None:
    """Release message ID from hold for delivery."""
    _tools(config).release(qid)
    typer.echo(f"{qid}: released from hold")
