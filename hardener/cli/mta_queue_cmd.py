"""`hardener mta queue list|flush|delete ID|hold ID|release ID [--config DIR]`: the queue tools
(like mailq and postsuper). Joined under `hardener mta` by mta_cmd.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from hardener.cli.common import CONFIG_DEFAULT, ConfigDirOption, command_app, format_option
from hardener.mta.queue.tools import QueueTools, format_mailq, queue_directory

app = command_app("Show and manage the MTA's mail queue (like mailq/postsuper).", group=True)

QueueFormat = format_option(("table", "json"), "Output format: table (like mailq), json.")
QueueId = Annotated[str, typer.Argument(metavar="ID", help="A queue id, as `queue list` shows it.")]


def _tools(config: Path) -> QueueTools:
    return QueueTools(queue_directory(config))


@app.command("list")
def list_cmd(config: ConfigDirOption = CONFIG_DEFAULT, fmt: QueueFormat = "table") -> None:
    """List queued mail: id, size, arrival, sender, recipients, last reason."""
    entries = _tools(config).entries()
    if fmt == "json":
        typer.echo(json.dumps([e.to_dict() for e in entries], indent=2))
    else:
        typer.echo(format_mailq(entries), nl=False)


@app.command("flush")
def flush_cmd(config: ConfigDirOption = CONFIG_DEFAULT) -> None:
    """Retry every deferred message now."""
    n = _tools(config).flush()
    typer.echo(f"flushed {n} deferred message{'s' if n != 1 else ''}")


@app.command("delete")
def delete_cmd(qid: QueueId, config: ConfigDirOption = CONFIG_DEFAULT) -> None:
    """Delete message ID from the queue."""
    queue = _tools(config).delete(qid)
    typer.echo(f"{qid}: removed from {queue}")


@app.command("hold")
def hold_cmd(qid: QueueId, config: ConfigDirOption = CONFIG_DEFAULT) -> None:
    """Put message ID on hold (no delivery until released)."""
    queue = _tools(config).hold(qid)
    typer.echo(f"{qid}: placed on hold (was {queue})")


@app.command("release")
def release_cmd(qid: QueueId, config: ConfigDirOption = CONFIG_DEFAULT) -> None:
    """Release message ID from hold for delivery."""
    _tools(config).release(qid)
    typer.echo(f"{qid}: released from hold")
