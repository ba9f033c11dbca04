"""How to write (SampleConfig): the draw, its length and number, stop strings, labels and beam search."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import UsageError
from ..settings import setting, unescape_all
from .constraint import syntax_problems


@dataclass(frozen=True)
class SampleConfig:
    """How to sample; validate() raises UsageError for values that make no sense."""

    length: int = setting(500, "New characters per sample (the prime not counted).", flags=("--length", "-l"))
    temperature: float = setting(1.0, "Softmax temperature (> 0): lower is safer, higher wilder.",
                                 flags=("--temperature", "-t"))
    top_k: int | None = setting(None, "Draw only among the K likeliest characters.")
    top_p: float | None = setting(None, "Draw only among the likeliest characters whose mass reaches P.")
    greedy: bool = setting(False, "Always take the most likely character.", flags=("--greedy",))
    num_samples: int = setting(1, "Samples to generate, as one batch.", flags=("--num-samples", "-n"))
    stop: tuple[str, ...] = setting((), "End a sample as soon as its new text contains TEXT (repeatable); the output "
                                    "ends just before it (--keep-stop keeps it). Escapes: \\n, \\t.", flags=("--stop",),
                                    cli_type=list[str], parse=unescape_all)
    keep_stop: bool = setting(False, "With --stop: end the output with the stop text instead of just before it.",
                              flags=("--keep-stop",))
    regex: str | None = setting(None, "Write only text that matches this regular expression in full (the prime not "
                                "included): characters that cannot lead to a match are never drawn, and a sample ends "
                                "only where it matches, within --length. Python's syntax, without backreferences, "
                                "lookaround or \\b.", flags=("--regex",))
    allow: str | None = setting(None, "Write only these characters: a class such as a-z or '[a-z ]'.",
                                flags=("--allow",))
    ban: tuple[str, ...] = setting((), "Never write TEXT (repeatable), counting across the prime's end. Escapes: \\n, "
                                   "\\t.", flags=("--ban",), cli_type=list[str], parse=unescape_all)
    seed: int | None = setting(None, "Random seed (reported on stderr when not given).")
    label: str | None = setting(None, "", shared="label")
    beam: int | None = setting(None, "Beam search with K beams: the likeliest continuation they find (never less likely "
                               "than greedy's), not a random one; with -n the n likeliest, distinct (n <= K). "
                               "--json adds each one's log-probability.", flags=("--beam",))

    def problems(self) -> list[tuple[str, str]]:
        """(field, what is wrong with its value) for each setting out of range: the CLI names the
        flag (validate), serve names the JSON field."""
        found = []
        if self.length < 1:
            found.append(("length", f"must be at least 1, got {self.length}"))
        if self.num_samples < 1:
            found.append(("num_samples", f"must be at least 1, got {self.num_samples}"))
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            found.append(("temperature", f"must be a number > 0, got {self.temperature}; for argmax ask for greedy"))
        if self.top_k is not None and self.top_k < 1:
            found.append(("top_k", f"must be at least 1, got {self.top_k}"))
        if self.top_p is not None and not (0 < self.top_p <= 1):
            found.append(("top_p", f"must be in (0, 1], got {self.top_p}"))
        if any(not s for s in self.stop):
            found.append(("stop", "must not be empty: give the text that ends a sample (a blank line is \\n\\n)"))
        if self.beam is not None:
            found += self._beam_problems()
        return found + syntax_problems(self.regex, self.allow, self.ban)

    def _beam_problems(self) -> list[tuple[str, str]]:
        if self.beam < 1:
            return [("beam", f"must be at least 1, got {self.beam}")]
        if self.greedy or self.top_k is not None or self.top_p is not None or self.temperature != 1.0:
            return [("beam", "finds the likeliest continuations: temperature, top-k, top-p and greedy do not apply; "
                             "leave them out")]
        if self.num_samples > self.beam:
            return [("num_samples", f"must be at most the beam width ({self.beam}) with beam search: {self.beam} beams "
                                    f"keep {self.beam} continuations")]
        return []

    def validate(self) -> None:
        for name, problem in self.problems():
            flags = SampleConfig.__dataclass_fields__[name].metadata["flags"]
            raise UsageError(f"{flags[0] if flags else '--' + name.replace('_', '-')} {problem}")


@dataclass(frozen=True)
class SampleExtras:
    """`sample`'s options beyond the draw: what becomes of a prime's unknown characters, learning from the prime
    first, and which whole samples are kept."""

    skip_unknown: bool = setting(False, "Drop prime characters the model does not know instead of failing.")
    adapt: bool = setting(False, "First let the model learn from the prime (dynamic evaluation over a long "
                          "--prime-file), so the samples follow its style. The checkpoint is unchanged.",
                          flags=("--adapt",))
    unique: bool = setting(False, "Drop samples that repeat an earlier one (more are drawn to make up -n).")
    novel: bool = setting(False, "Drop samples that are a document of the training corpus (e.g. a known name).")
