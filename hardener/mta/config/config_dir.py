"""Where the hardener MTA's configuration lives when a command is not told: $HARDENER_CONFIG, else
/etc/hardener (the directory holding main.cf and master.cf). `hardener mta ...` and `hardener mta
queue ...` take --config DIR with this default; `hardener sendmail` looks at -C DIR and
$MAIL_CONFIG first, as sendmail(1) and Postfix's sendmail do.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

CONFIG_ENV = "HARDENER_CONFIG"
DEFAULT_CONFIG_DIR = Path("/etc/hardener")


def default_config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """$HARDENER_CONFIG when set and not empty, else /etc/hardener."""
    environ = os.environ if environ is None else environ
    return Path(environ.get(CONFIG_ENV) or DEFAULT_CONFIG_DIR)
