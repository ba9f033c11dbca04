"""The manual's build hooks (mkdocs.yml `hooks:`), so that what the site says comes from the code:

- each command's reference (docs/reference/COMMAND.md's `<!-- cli: COMMAND -->`) is made from the command line's own
  declarations (the typer app: every option, its default and help, as `charrnn COMMAND --help` shows them);
- a public name of the Python API without a docstring stops the build (mkdocstrings would show an empty entry);
- the benchmarks' reports, the bundled model's record and the examples are part of the site, where the pages link to
  them.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import click
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
MARK = re.compile(r"<!-- cli: (\w+) -->")
OUTSIDE = ["benchmarks/*.md", "models/README.md", "examples/api_tour.py", "examples/quickstart.ipynb"]


def on_files(files, config):
    """Pages and files from outside docs/ that the pages link to."""
    for pattern in OUTSIDE:
        for path in sorted(ROOT.glob(pattern)):
            files.append(File.generated(config, path.relative_to(ROOT).as_posix(), abs_src_path=str(path)))
    return files


def on_pre_build(config):
    missing = undocumented()
    if missing:
        raise PluginError(f"public names of the Python API without a docstring: {', '.join(missing)}")


def undocumented() -> list[str]:
    """charrnn's public names, and their public methods and properties, that have no docstring."""
    import charrnn

    missing = []
    for name in charrnn.__all__:
        obj = getattr(charrnn, name)
        if name.startswith("__"):
            continue
        if not inspect.getdoc(obj):
            missing.append(f"charrnn.{name}")
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_") or not (callable(member) or isinstance(member, property)):
                    continue
                if not (member.__doc__ or "").strip() and not getattr(member, "__wrapped__", None):
                    missing.append(f"charrnn.{name}.{attr}")
    return missing


def on_page_markdown(markdown: str, page, config, files) -> str:
    return MARK.sub(lambda m: reference(m.group(1)), markdown)


def reference(name: str) -> str:
    """A command's reference in Markdown, from its declaration: what it does, how it is called, each option."""
    import typer

    from charrnn.cli.app import app

    group = typer.main.get_command(app)
    command = group.commands[name]
    ctx = click.Context(command, info_name=name, parent=click.Context(group, info_name="charrnn"))
    usage = re.sub(r"\{(\w+)\}", lambda m: m.group(1).upper(), command.get_usage(ctx).removeprefix("Usage: "))
    lines = [command.help.strip(), "", "```text", usage, "```", "", "| option | default | what it does |",
             "| --- | --- | --- |"]
    for param in command.params:
        lines.append(row(param, ctx))
    return "\n".join(lines) + "\n"


def row(param: click.Parameter, ctx: click.Context) -> str:
    names = " / ".join(f"`{n}`" for n in [*param.opts, *param.secondary_opts])
    if isinstance(param, click.Argument):
        names = f"`{param.name.upper()}`"
    default = param.default if not callable(param.default) else None
    shown = "" if default in (None, (), [], False) or getattr(param, "show_default", True) is False else f"`{default}`"
    help_text = (getattr(param, "help", None) or "").replace("|", "\\|").replace("\n", " ")
    return f"| {names} | {shown} | {help_text} |"
