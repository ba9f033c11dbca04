"""The terminal for people: every line charrnn writes for a person (progress, notes, errors) goes to stderr through
one rich console made here, so stdout carries only the product."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


def stderr_console() -> Console:
    """A console on stderr: no syntax highlighting of numbers and paths, long lines left whole."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)
