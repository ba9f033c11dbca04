"""Errors a user can act on, and how they reach the user: `command` prints their message on one
line and exits with `exit_code` (a traceback only with CHARRNN_DEBUG=1)."""

import functools
import os
import sys


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


def _fail(message: str, code: int):
    import typer

    from .render import stderr_console

    stderr_console().print(f"[red]charrnn: error:[/] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


def command(fn):
    """Wrap a CLI command: library errors become one-line messages and exit codes; a closed stdout ends quietly."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import typer
        from rich.markup import escape

        from .render import stderr_console

        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except CharRNNError as e:
            if os.environ.get("CHARRNN_DEBUG"):
                raise
            _fail(escape(str(e)), e.exit_code)
        except BrokenPipeError:
            # The reader went away (| head): stop quietly; point stdout at /dev/null so the exit flush is silent.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None
        except KeyboardInterrupt:
            stderr_console().print("interrupted")
            raise typer.Exit(130) from None
        except Exception as e:
            if isinstance(e.__cause__, KeyboardInterrupt):  # a Ctrl-C that landed in, say, a class being made by an import
                stderr_console().print("interrupted")
                raise typer.Exit(130) from None
            if os.environ.get("CHARRNN_DEBUG"):
                raise
            _fail(escape(f"internal error: {type(e).__name__}: {e} (set CHARRNN_DEBUG=1 for a traceback)"), 1)

    return wrapper
