"""Errors a user can act on. Each message names the problem and the fix on one line: the command line prints it and
exits with `exit_code` (cli/failures.py), the Python API raises it as it is.

The lowest layer: it imports nothing of charrnn's.
"""

from __future__ import annotations


class CharrnnError(ValueError):
    """Something a user can fix: a bad option, file, checkpoint or request, or a run that cannot go on.

    The message is the one line the command line prints after "charrnn: error:". exit_code follows the CLI's
    convention: 2 for bad usage or bad input, 1 for a failure while working. A ValueError, so that code which
    already catches bad values catches these too.
    """

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(CharrnnError):
    """Bad input or bad options (exit 2)."""

    exit_code = 2
