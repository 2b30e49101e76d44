"""Error types and the exit codes shared by every command (DESIGN.md, "Exit codes").

0 success; 1 findings at or above --fail-on; 2 usage or input error; 3 a target could not be checked
completely. Library code raises these; only hardener.cli turns them into exit codes and one-line messages.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3


class HardenerError(Exception):
    """Base of every error hardener reports to a user as one line."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.field = field

    def one_line(self) -> str:
        """The message as one line: 'FILE:LINE: FIELD: message', with the parts that are known."""
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        what = f"{self.field}: " if self.field else ""
        text = f"{where}{what}{self.message}"
        return " ".join(text.split("\n"))


class InputError(HardenerError):
    """Bad input: a file, profile, flag or value hardener cannot use (exit 2)."""

    exit_code = EXIT_USAGE


class ConfigError(InputError):
    """A main.cf / master.cf / profile value that cannot be honoured (exit 2)."""


class TargetError(HardenerError):
    """A target could not be checked completely: unreachable, timeout, SSH failure (exit 3)."""

    exit_code = EXIT_INCOMPLETE
