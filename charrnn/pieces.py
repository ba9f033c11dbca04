"""Work done a piece at a time: a generator that yields after each piece and returns its result.

Reading a long prime and scoring long texts are written so (writing/sample.reading, scoring/evaluation.scoring): the
command line runs the pieces one after another (finish), and serve's engine runs one piece between two steps of the
streams it is writing, so that nobody's stream waits longer than a piece (serve/engine.py).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TypeVar

T = TypeVar("T")
Pieces = Generator[None, None, T]


def finish(work: Pieces[T]) -> T:
    """A piecewise work's result, its pieces done one after another."""
    while True:
        try:
            next(work)
        except StopIteration as done:
            return done.value
