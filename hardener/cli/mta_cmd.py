"""`hardener mta`: command-line layer (parses arguments, calls the library)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the mta command group (serve, start, stop, reload, status, queue) to the main app."""
    mta = typer.Typer(help="Run and control the hardener MTA daemon.", no_args_is_help=True)

    config_opt = typer.Option(..., "--config", help="Directory holding main.cf and master.cf.")

    @mta.command("serve")
    def serve(config: Path = config_opt) -> None:
        """Run the daemon in the foreground until SIGTERM."""
        import os
        import sys

        # Same pid, lean process: the daemon does not need the rest of the CLI in memory.
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, "-m", "hardener.mta.daemon",
                                  "--config", str(config)])

    @mta.command("start")
    def start(config: Path = config_opt) -> None:
        """Start the daemon in the background (pid file in the queue directory)."""
        from hardener.mta.control import start as run

        raise typer.Exit(run(config))

    @mta.command("stop")
    def stop(config: Path = config_opt) -> None:
        """Stop the background daemon (SIGTERM, then wait)."""
        from hardener.mta.control import stop as run

        raise typer.Exit(run(config))

    @mta.command("reload")
    def reload(config: Path = config_opt) -> None:
        """Make the daemon re-read main.cf (SIGHUP)."""
        from hardener.mta.control import reload as run

        raise typer.Exit(run(config))

    @mta.command("status")
    def status(config: Path = config_opt) -> None:
        """Say whether the daemon runs (exit 0) or not (exit 1)."""
        from hardener.mta.control import status as run

        raise typer.Exit(run(config))

    try:
        from hardener.cli.mta_queue_cmd import queue_app
    except ImportError:
        queue_app = None
    if queue_app is not None:
        mta.add_typer(queue_app, name="queue")
    app.add_typer(mta, name="mta")
