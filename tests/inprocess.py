"""Running a charrnn command inside the test process, as `python -m charrnn ...` would run it in a new one.

A subprocess pays for importing torch every time (two seconds or more on a slow CPU), which made most of the
suite's time; in-process the command runs the same code from the same entry point (the typer app, its
error wrapper, stdin, stdout and stderr kept apart). Tests about the process itself (signals, closed pipes,
what --help imports, torchrun, serve) still start real processes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Ran:
    """What a command did: as subprocess.CompletedProcess names it."""

    returncode: int
    stdout: str
    stderr: str


def invoke(*args, cwd: Path | str, input: str | None = None, env: dict | None = None) -> Ran:
    """Run `charrnn ARGS` in this process with `cwd` as the working directory, `input` on stdin and `env` added to
    the environment (NO_COLOR set, CHARRNN_DEBUG unset unless given). Torch's thread count and the working
    directory are restored afterwards; an exception the command did not turn into an exit code is raised."""
    import torch
    from typer.testing import CliRunner

    from charrnn.cli.app import app

    here, threads = os.getcwd(), torch.get_num_threads()
    os.chdir(cwd)
    try:
        r = CliRunner().invoke(app, list(map(str, args)), input=input, env={"NO_COLOR": "1", "COLUMNS": "200",
                                                                            "CHARRNN_DEBUG": None, **(env or {})},
                               prog_name="charrnn")
    finally:
        os.chdir(here)
        torch.set_num_threads(threads)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return Ran(r.exit_code, r.stdout, r.stderr)
