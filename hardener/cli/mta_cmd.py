"""`hardener mta serve|start|stop|reload|status|check [--config DIR]` and, joined from
mta_queue_cmd, `hardener mta queue ...`: run, control and check the hardener MTA daemon."""

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
    """Check the new main.cf and master.cf, then make the daemon re-read them (SIGHUP); a broken
    configuration is refused (exit 2) and the daemon keeps the running one."""
    from hardener.mta.master import control

    raise typer.Exit(control.reload(config))


@app.command("status")
def status(config: ConfigDirOption = CONFIG_DEFAULT) -> None:
    """Say whether the daemon runs (exit 0) or not (exit 3), as an LSB init script."""
    from hardener.mta.master import control

    raise typer.Exit(control.status(config))


@app.command("check")
def check(config: ConfigDirOption = CONFIG_DEFAULT) -> None:
    """Create missing queue directories; refuse (exit 2, one line each) unsafe owners and modes
    of configuration, key and queue files, and an unsafe mail_owner (as `postfix check`)."""
    from hardener.mta.master import check as mta_check

    raise typer.Exit(mta_check.run(config))
