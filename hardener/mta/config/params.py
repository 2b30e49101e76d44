"""Reading one main.cf parameter for the MTA: bounded numbers and the error that names it.

Postfix reads every number through get_mail_conf_int(name, default, min, max) and
get_mail_conf_time(...), which refuse a value out of range naming the parameter; every MTA
settings loader (config/settings.py, config/sasl.py, qmgr/settings.py) reads its numbers through
conf_int and conf_time here, and raises param_error for any other value it cannot honour, so each
error names file, line and parameter the same way.

SECURITY: reads root-owned configuration through the project's parser; no I/O of its own.
"""

from __future__ import annotations

from hardener.errors import ConfigError
from hardener.postfix.maincf import MainCf


def param_error(main: MainCf, name: str, message: str) -> ConfigError:
    """A ConfigError for parameter `name`: its file and line (main.cf, or the override)."""
    loc = main.location(name)
    return ConfigError(message, file=loc.file if loc else main.filename,
                       line=loc.line if loc else None, field=name)


def _bounded(main: MainCf, name: str, value: int, minimum: int, maximum: int | None,
             unit: str) -> int:
    if value < minimum:
        raise param_error(main, name, f"must be at least {minimum}{unit}, not {value}{unit}")
    if maximum is not None and value > maximum:
        raise param_error(main, name, f"must be at most {maximum}{unit}, not {value}{unit}")
    return value


def conf_int(main: MainCf, name: str, minimum: int = 0, maximum: int | None = None) -> int:
    """An integer parameter within [minimum, maximum] (Postfix's get_mail_conf_int(name, default,
    min, max): the default comes from the parser); ConfigError naming file, line and value."""
    return _bounded(main, name, main.get_int(name), minimum, maximum, "")


def conf_time(main: MainCf, name: str, minimum: int = 0, maximum: int | None = None) -> int:
    """A time parameter in seconds within [minimum, maximum] (get_mail_conf_time)."""
    return _bounded(main, name, main.get_time(name), minimum, maximum, "s")
