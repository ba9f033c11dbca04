"""How a command ends when something goes wrong: a library error becomes one line on stderr and its exit code, a
closed stdout ends quietly, Ctrl-C exits 130, anything else is an "internal error" line (a traceback only with
CHARRNN_DEBUG=1)."""

from __future__ import annotations

import functools
import os
import sys

from ..errors import CharrnnError


def _fail(message: str, code: int):
    import typer

    from ..console import stderr_console

    stderr_console().print(f"[red]charrnn: error:[/] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


def command(fn):
    """Wrap a CLI command: library errors become one-line messages and exit codes; a closed stdout ends quietly."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import typer
        from rich.markup import escape

        from ..console import stderr_console

        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except CharrnnError as e:
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
