"""User-facing errors: one clear line on stderr and a non-zero exit, never a traceback.

Anything a user can get wrong (a config value, a missing dataset, a bad checkpoint path) raises
`UserError`; the command-line layer prints `error: <message>` and exits with code 2.
A traceback is reserved for bugs in this program.
"""

from __future__ import annotations

import argparse
import sys

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A mistake in the user's input, reported as one line without a traceback."""


class ConfigError(UserError):
    """A config value that is the wrong type, out of range or inconsistent with another."""


class DataError(UserError):
    """Missing, partial or corrupted data files."""


def one_line(text: str) -> str:
    """Collapse a message to a single line (tabs and newlines become single spaces)."""
    return " ".join(str(text).split())


def report_and_exit(message: str, code: int = EXIT_USER_ERROR) -> None:
    sys.stderr.write(f"error: {one_line(message)}\n")
    sys.stderr.flush()
    raise SystemExit(code)


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit 2, as every other user error."""

    def error(self, message: str) -> None:
        report_and_exit(f"{self.prog}: {message}")
