"""Errors a user can act on. The CLI prints their message on one line and exits with `exit_code`."""


class CharRNNError(Exception):
    """A failure with a message that names the problem and the fix.

    exit_code follows the CLI convention: 2 for bad usage or bad input, 1 for a runtime failure.
    """

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(CharRNNError):
    """Bad input or bad options (exit 2)."""

    exit_code = 2
