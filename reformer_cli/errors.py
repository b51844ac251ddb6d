"""User-facing errors: one clear line on stderr and a non-zero exit, never a traceback.

Anything a user can get wrong or meet (a config value, a missing dataset, a bad checkpoint path,
a full disk, a folder in use) raises `UserError`; the command-line layer prints `error: <message>`
and exits with its `exit_code` (2 unless a subclass says otherwise). A traceback is reserved for
bugs in this program (and for HYDRA_FULL_ERROR=1).
"""

from __future__ import annotations

import argparse
import sys

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A mistake in the user's input, reported as one line without a traceback."""

    exit_code = EXIT_USER_ERROR


class ConfigError(UserError):
    """A config value that is the wrong type, out of range or inconsistent with another."""


class DataError(UserError):
    """Missing, partial or corrupted data files."""


class Interrupted(UserError):
    """Stopped at once by the user (a second Ctrl-C): exit 130 like any SIGINT."""

    exit_code = 130


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
