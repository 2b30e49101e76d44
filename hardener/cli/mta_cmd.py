"""`hardener mta serve|start|stop|reload|status [--config DIR]` and, joined from mta_queue_cmd,
`hardener mta queue ...`: run and control the hardener MTA daemon."""

from __future__ import annotations

import os
import sys

import typer

from hardener.cli import mta_passwd_cmd, mta_queue_cmd
from hardener.cli.common import CONFIG_DEFAULT, ConfigDirOption, command_app

app = command_app("Run and control the hardener MTA daemon.", group=True)
app.add_typer(mta_queue_cmd.app, name="queue")
app.add_typer(mta_passwd_cmd.app)


@app.command("serve")
def serve(config: ConfigDirOption = CONFIG_DEFAULT) -> None:
    """Run the daemon in the foreground until SIGTERM."""
    # Same pid, lean process: the daemon does not need the rest of the CLI in memory.
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "hardener.mta.master.daemon", "--config", str(config)])


@app.command("start")
def start(config: ConfigDirOption = CONFIG_DEFAULT) -> None:
    """Start the daemon in the background (pid file in the queue directory)."""
    from hardener.mta.master import control  # here: the daemon's modules take ~100 ms to import

    raise typer.Exit(control.start(config))


@app.command("stop")
def stop(config: ConfigDirOption = CONFIG_DEFAULT) -> None:
    """Stop the background daemon (SIGTERM, then wait)."""
    from hardener.mta.master import control

    raise typer.Exit(control.stop(config))


@app.command("reload")
def reload(config: ConfigDirOption = CONFIG_DEFAULT) -> None:
    """Make the daemon re-read main.cf (SIGHUP)."""
    from hardener.mta.master import control

    raise typer.Exit(control.reload(config))


@app.command("status")
def status(config: ConfigDirOption = CONFIG_DEFAULT) -> None:
    """Say whether the daemon runs (exit 0) or not (exit 1)."""
    from hardener.mta.master import control

    raise typer.Exit(control.status(config))
