"""How a setting is declared: `setting(...)` makes a config dataclass field that is also a command-line option and a
keyword of the Python API (cli/options.py, api/keywords.py), and the parsers of what people write for one.

Each layer keeps its settings in its own config.py (model/, text/, training/, writing/, scoring/, serve/): frozen
dataclasses, saved inside every checkpoint as plain dicts. No torch here, nor in any of them, so --help and
`import charrnn` stay instant."""

from __future__ import annotations

import re
from dataclasses import MISSING, Field, field, fields

from .errors import UsageError


def setting(default, help: str, flags: tuple[str, ...] = (), parse=None, cli_type=None, choices=None,
            shared: str | None = None):
    """A config field that the command line offers. parse: turns the option's value (of cli_type, else
    the field's type) into the field's; choices: a registry whose names the help lists; shared: the
    name of a shared option definition (cli/options.SHARED). The field's Python keyword is its option's name
    without the dashes (keyword)."""
    return field(default=default, metadata={"help": help, "flags": flags, "parse": parse, "cli_type": cli_type,
                                            "choices": choices, "shared": shared})


# What the settings several commands share say (setting(shared=NAME) names one): the options cli/options.py makes of
# them and the API keywords' documentation (api/options.py) both read it here.
SHARED_HELP = {
    "device": "auto, cpu, cuda or mps.",
    "threads": "CPU threads for the arithmetic. (default: one per core available to this process)",
    "encoding": "Text encoding of the input (utf-8, latin-1, cp1252, utf-16, ...).",
    "errors": "strict: refuse undecodable bytes; replace: read them as U+FFFD.",
    "label": "A kind of document: one of the labels the model was trained with (charrnn info lists them). (default "
             "for sample: each sample's kind drawn as the corpus has them, or as the prime suggests)",
}


def declared(cls: type) -> list[Field]:
    """The fields of a config dataclass that are settings (options and keywords), in the class's order."""
    return [f for f in fields(cls) if f.metadata.get("help") is not None and f.default is not MISSING]


def flag(f: Field) -> str:
    """A setting's option: the first of its flags (the positive half of --plot/--no-plot), else --field-name."""
    return (f.metadata["flags"] or (f"--{f.name.replace('_', '-')}",))[0].split("/")[0]


def keyword(f: Field) -> str:
    """A setting's Python keyword: its option without the dashes (--time: time, --num-samples: num_samples)."""
    return flag(f).lstrip("-").replace("-", "_")


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(h|m|s)?")


def parse_duration(text: str | None) -> float | None:
    """'90s', '10m', '2h', '1h30m' or plain seconds -> seconds (None stays None)."""
    if text is None:
        return None
    s = text.strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION.match(s, pos)
        if not m or m.end() == pos:
            break
        total += float(m.group(1)) * {"h": 3600, "m": 60, "s": 1, None: 1}[m.group(2)]
        pos = m.end()
    if not s or pos != len(s) or total <= 0:
        raise UsageError(f"--time {text!r} is not a duration; write it like 90s, 10m, 2h or 1h30m")
    return total


def unescape(text: str) -> str:
    """--stop's text with \\n, \\t and \\\\ read as a newline, a tab and a backslash (shells pass them literally)."""
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "\\": "\\"}.get(m.group(1), m.group(0)), text)


def unescape_all(texts: list[str]) -> tuple[str, ...]:
    """A repeatable option's texts, each unescaped (--stop, --ban)."""
    return tuple(unescape(t) for t in texts)


def positive_or_none(n: int) -> int | None:
    return n if n > 0 else None


def keywords_of(*configs: object) -> dict:
    """Config instances -> the API keywords that make them again: each setting's keyword and value (the command line
    hands what it parsed to the Python API so)."""
    return {keyword(f): getattr(c, f.name) for c in configs for f in declared(type(c))}
