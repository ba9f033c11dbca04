"""Command-line options, each declared once: the shared ones several commands take, and those derived
from the config dataclasses' fields (settings.setting), so a new setting is one field.

No torch here: --help must stay instant.
"""

from __future__ import annotations

import functools
import inspect
import typing
from dataclasses import Field

import typer

from ..errors import UsageError
from ..settings import SHARED_HELP, declared, flag


def checkpoint_option():
    return typer.Option(None, "--checkpoint", "-c", help="A .pt file or run directory. (default: newest run under checkpoints/)")


def device_option(default: str = "auto"):
    return typer.Option(default, help=SHARED_HELP["device"])


def threads_option(default: int | None = None):
    return typer.Option(default, help=SHARED_HELP["threads"])


def encoding_option(default: str = "utf-8"):
    return typer.Option(default, help=SHARED_HELP["encoding"])


def errors_option(default: str = "strict"):
    return typer.Option(default, help=SHARED_HELP["errors"])


def json_option(help: str):
    return typer.Option(False, "--json", help=help)


def quiet_option(help: str = "Nothing on stderr but errors."):
    return typer.Option(False, "--quiet", "-q", help=help)


def dynamic_option(more: str = ""):
    return typer.Option(False, "--dynamic", help="Also score by dynamic evaluation: the model keeps learning from the "
                        "text as it reads it (a copy; the checkpoint is unchanged), reported beside the static figure." + more)


def label_option(default=None):
    return typer.Option(default, "--label", help=SHARED_HELP["label"])


# Config fields that use a shared definition (settings.setting(shared=...)).
SHARED = {"device": device_option, "label": label_option, "encoding": encoding_option, "errors": errors_option,
          "threads": threads_option}


def _option(f: Field, given_only: bool):
    """The typer option of one config field. given_only: default None, so the command sees only the flags given."""
    m = f.metadata
    default = None if given_only else f.default
    if m["shared"]:
        return SHARED[m["shared"]](default)
    help = m["help"]
    if m["choices"] is not None:
        help += f" One of: {', '.join(m['choices'])}."
    if given_only:
        help += f" (default: {f.default})"
    # A switch without flags of its own gets typer's pair (--resume/--no-resume).
    decls = m["flags"] or (() if isinstance(f.default, bool) else (flag(f),))
    return typer.Option(default, *decls, help=help, show_default=not given_only)


@functools.cache
def _type_hints(cls: type) -> dict:
    return typing.get_type_hints(cls)  # once per class: resolving every annotation is a noticeable part of --help


def _cli_type(cls: type, f: Field, given_only: bool):
    """What the option parses: the field's type, or its cli_type (a duration is written as text);
    optional where only the flags given count."""
    t = f.metadata["cli_type"] or _type_hints(cls)[f.name]
    if f.metadata["cli_type"] and f.default is None:
        t = t | None
    return t | None if given_only and t is not bool else t


def from_config(cls: type, into: str, given_only: bool = False):
    """Give a command one option per CLI field of `cls` and hand it the result as the argument `into`:
    a `cls` instance, or with given_only a dict of the flags given (the rest left to the caller).

    The command's own parameters come first; the config's follow in field order.
    """
    cli_fields = declared(cls)

    def decorate(fn):
        sig = inspect.signature(fn, eval_str=True)
        params = [p for p in sig.parameters.values() if p.name != into]
        params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=_option(f, given_only),
                                     annotation=_cli_type(cls, f, given_only)) for f in cli_fields]

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            values = {f.name: kwargs.pop(f.name) for f in cli_fields}
            for f in cli_fields:
                if f.metadata["parse"] is not None and values[f.name] is not None:
                    values[f.name] = f.metadata["parse"](values[f.name])
            for f in cli_fields:
                choices = f.metadata["choices"]
                if choices is not None and values[f.name] is not None and values[f.name] not in choices:
                    raise UsageError(f"{flag(f)} {values[f.name]!r} is not known; use {', '.join(choices)}")
            given = {k: v for k, v in values.items() if v is not None}
            kwargs[into] = given if given_only else cls(**values)
            return fn(*args, **kwargs)

        wrapper.__signature__ = sig.replace(parameters=params)
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper

    return decorate
