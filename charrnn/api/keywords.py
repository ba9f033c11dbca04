"""The Python API's keywords, made from the settings' one declaration (settings.setting).

Every setting is a keyword of the call that uses it, named as its command-line option is without the dashes
(--time: time, --num-samples: num_samples), with the option's default. A keyword takes the option's Python type, or
what the option takes as text where the two differ (time="10m" or time=600.0); a keyword that no setting declares,
or a value of the wrong type, is refused in one line naming the fix, as the command line refuses a bad flag.

The same declaration gives the typed keywords editors and type checkers read (api/options.py, written by
`make api-options`; tests/test_api.py checks that it is current).
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import Field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..settings import SHARED_HELP, declared, keyword


class Keywords:
    """The keywords of API calls that take the settings of `classes`, by keyword.

    `leave` names settings the calls take another way (samples' n for --num-samples) or not at all."""

    def __init__(self, classes: tuple[type, ...], leave: tuple[str, ...] = ()):
        self.classes = classes
        self.fields: dict[str, tuple[type, Field]] = {keyword(f): (cls, f) for cls in classes for f in declared(cls)
                                                      if keyword(f) not in leave}

    def split(self, call: str, given: Mapping[str, Any]) -> dict[type, dict[str, Any]]:
        """The keywords given to `call` -> {class: {field name: value}} for the settings given (their values made the
        fields'), after refusing unknown keywords and values of a wrong type."""
        unknown = [k for k in given if k not in self.fields]
        if unknown:
            raise UsageError(f"{call}() got an unknown keyword {unknown[0]!r}; help(charrnn.{call}) lists its keywords")
        out: dict[type, dict[str, Any]] = {cls: {} for cls in self.classes}
        for name, value in given.items():
            cls, f = self.fields[name]
            out[cls][f.name] = self.value(call, name, f, cls, value)
        return out

    def value(self, call: str, name: str, f: Field, cls: type, value: Any) -> Any:
        """A keyword's value as the field holds it: a sequence for a tuple as a tuple (one string as a tuple of it), a
        value in the option's text form parsed as the option parses it, a choice checked against its registry."""
        hint = _hints(cls)[f.name]
        if "tuple[" in _source(hint):
            if isinstance(value, str):
                value = (value,)
            elif isinstance(value, list):
                value = tuple(value)
        if not _accepts(hint, value):
            cli = f.metadata["cli_type"]
            if cli is None or not _accepts(cli, value):
                raise UsageError(f"{call}(): {name}={value!r} is not {_describe(hint)}; give {_describe(hint)}")
            value = f.metadata["parse"](value) if f.metadata["parse"] else value
        choices = f.metadata["choices"]
        if choices is not None and value is not None and value not in choices:
            raise UsageError(f"{call}(): {name}={value!r} is not known; use {', '.join(choices)}")
        return value

    def defaults(self) -> dict[str, Any]:
        """Each keyword's default, as the option's."""
        return {name: f.default for name, (_, f) in self.fields.items()}

    def annotation(self, name: str) -> str:
        """The keyword's type as source text: the field's, widened to what the option takes as text."""
        cls, f = self.fields[name]
        hint = _source(_hints(cls)[f.name])
        if "tuple[str, ...]" in hint:  # one string, or several in any sequence
            return "str | Sequence[str]"
        cli = f.metadata["cli_type"]
        text = hint if cli is None or _source(cli) in hint else f"{_source(cli)} | {hint}"
        return text if "None" not in text else text.replace(" | None", "") + " | None"


_UNIONS = (typing.Union, types.UnionType)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """A config class's field types, resolved once (every keyword's check and annotation reads them)."""
    module = sys.modules[cls.__module__]
    return typing.get_type_hints(cls, vars(module) | {"Path": Path})


def _accepts(hint: Any, value: Any) -> bool:
    """Whether a Python value is of the type `hint` (int for float too; a str or path for a Path)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None) or hint is None:
        return value is None
    if origin in _UNIONS:
        return any(_accepts(a, value) for a in args)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is Path:
        return isinstance(value, str | os.PathLike)
    if origin in (tuple, list):
        return isinstance(value, origin) and all(_accepts(args[0], v) for v in value)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _describe(hint: Any) -> str:
    """'an int', 'a number or None', ... for messages."""
    words = {bool: "True or False", int: "a whole number", float: "a number", str: "a string", Path: "a path",
             type(None): "None"}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in _UNIONS:
        return " or ".join(_describe(a) for a in args)
    if origin is tuple:
        return "a string or a list of strings"
    return words.get(hint, getattr(hint, "__name__", str(hint)))


def _source(hint: Any) -> str:
    """A type as it is written in source (int | None, tuple[str, ...])."""
    if hint is type(None):
        return "None"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in _UNIONS:
        return " | ".join(_source(a) for a in args)
    if origin is tuple:
        return "tuple[str, ...]"
    if origin is list:
        return f"list[{_source(args[0])}]"
    if hint is Path:
        return "str | Path"
    return hint.__name__


def signature(fn: Callable[..., Any], *groups: Keywords) -> inspect.Signature:
    """fn's signature with its **options spelled out as the keywords of `groups` and their defaults, for help() and a
    notebook's completion (type checkers read api/options.py's TypedDicts)."""
    sig = inspect.signature(fn)
    own = [p for p in sig.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
    names = {p.name for p in own}
    spelled = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                 annotation=group.annotation(name))
               for group in groups for name, default in group.defaults().items() if name not in names]
    return sig.replace(parameters=[*own, *spelled])


def typed_dict(name: str, group: Keywords, doc: str, base: str = "TypedDict", leave: tuple[str, ...] = ()) -> str:
    """The source of a TypedDict (total=False) with one key per keyword of `group`, each with its option's help."""
    lines = [f"class {name}({base}, total=False):", f'    """{doc}"""', ""]
    for key, (_, f) in group.fields.items():
        if key in leave:
            continue
        text = f.metadata["help"] or SHARED_HELP[f.metadata["shared"]]
        if f.metadata["choices"] is not None:
            text += f" One of: {', '.join(f.metadata['choices'])}."
        if "(default:" not in text:
            text += f" (default: {f.default!r})"
        wrapped = textwrap.wrap(text.replace("\\", "\\\\"), 112)
        lines += [f"    {key}: {group.annotation(key)}", f'    """{wrapped[0]}'
                  + "".join(f"\n    {more}" for more in wrapped[1:]) + '"""']
    return "\n".join(lines) + "\n"


def options_source() -> str:
    """api/options.py: the typed keywords of every API call that takes settings."""
    from .model import DYNAMIC, SAMPLES, SAMPLING
    from .training import TRAINING

    head = ('"""The keywords of the Python API\'s calls, typed for editors and type checkers.\n\nWritten by `make '
            'api-options` from the settings\' one declaration; do not edit (tests/test_api.py checks it is\n'
            'current). At run time the calls check their keywords themselves (api/keywords.py)."""\n\n'
            "from __future__ import annotations\n\nfrom collections.abc import Sequence\nfrom pathlib import Path\n"
            "from typing import TypedDict\n\n\n")
    parts = [typed_dict("TrainOptions", TRAINING, "charrnn.train's keywords: every option of `charrnn train`."),
             typed_dict("SampleOptions", SAMPLING, "Model.generate's and Model.stream's keywords: `charrnn sample`'s "
                        "options for the draw."),
             typed_dict("SamplesOptions", SAMPLES, "Model.samples' keywords: SampleOptions and the filters on whole "
                        "samples.", base="SampleOptions", leave=tuple(SAMPLING.fields)),
             typed_dict("DynamicOptions", DYNAMIC, "Model.adapt's, Model.scores' and Model.evaluate's keywords: "
                        "dynamic evaluation's settings.")]
    return head + "\n\n".join(parts)


OPTIONS = Path(__file__).with_name("options.py")


def write_options() -> None:
    """Write api/options.py anew (make api-options), after a setting was added or changed."""
    OPTIONS.write_text(options_source(), encoding="utf-8")
    print(f"wrote {OPTIONS}", file=sys.stderr)
