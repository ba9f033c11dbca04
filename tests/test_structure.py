"""The layout rules of DEVELOPERS.md, checked: short functions, a thin CLI, cells known in one place, layers that
import only downwards."""

import ast
import math
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "charrnn"
MAX_BODY = 60  # lines of a function body, its docstring not counted
MAX_CLI = 300


def function_lengths(folder: Path = PACKAGE) -> list[tuple[int, str]]:
    """(body lines, file:function) of every function in the folder's modules, longest first."""
    rows = []
    for path in sorted(folder.rglob("*.py")):  # subpackages too
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body
                if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                    body = body[1:]
                if body:
                    rows.append((node.end_lineno - body[0].lineno + 1, f"{path.name}:{node.name}"))
    return sorted(rows, reverse=True)


def test_no_function_body_over_sixty_lines():
    long = [f"{name} ({n} lines)" for n, name in function_lengths() if n > MAX_BODY]
    assert not long, f"split these into smaller functions or a class: {', '.join(long)}"


def test_the_cli_stays_thin():
    lines = len((PACKAGE / "cli" / "app.py").read_text(encoding="utf-8").splitlines())
    assert lines < MAX_CLI, f"cli/app.py has {lines} lines: parse, call the library, render elsewhere"


def test_cell_names_appear_only_in_the_cell_registry():
    # A string branch on a cell's name anywhere else means a new cell would have to be taught there too.
    pattern = re.compile(r"""(==|!=|\bin\b)\s*\(?\s*["'](lstm|gru|rnn)["']|["'](lstm|gru|rnn)["']\s*(==|!=)""")
    offenders = [f"{p.name}:{i}" for p in PACKAGE.rglob("*.py") if p.name != "cells.py"
                 for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert not offenders, f"cell names branched on outside cells.py: {offenders}"


def test_the_length_rule_sees_long_functions(tmp_path):
    # The check itself must be able to fail: a 61-line body is reported, its docstring not counted.
    body = "\n".join(f"    x{i} = {i}" for i in range(61))
    (tmp_path / "m.py").write_text(f'def long():\n    """Doc\n    string."""\n{body}\n\n\ndef short():\n    return 1\n')
    assert function_lengths(tmp_path) == [(61, "m.py:long"), (1, "m.py:short")]


def minor_version(v: str) -> tuple[int, int]:
    return tuple(int(x) for x in re.match(r"(\d+)\.(\d+)", v).groups())


def test_the_torch_floor_is_a_torch_the_suite_has_passed_on():
    # pyproject's lower bound on torch is a version the whole suite has passed on, recorded in DEVELOPERS.md (an older
    # torch lacks APIs charrnn uses: torch.amp.GradScaler came after 2.2), and no newer than the one make install pins.
    import torch

    root = PACKAGE.parent
    floor = re.search(r'"torch>=([\d.]+)', (root / "pyproject.toml").read_text()).group(1)
    pinned = re.search(r"TORCH_CPU \?= torch==([\d.]+)", (root / "Makefile").read_text()).group(1)
    tested = re.search(r"^Torch versions the whole suite has passed on: (.*)$", (root / "DEVELOPERS.md").read_text(), re.M)
    assert tested and re.search(rf"\b{re.escape(floor)}\.\d", tested.group(1)), f"DEVELOPERS.md does not record {floor}"
    assert minor_version(floor) <= minor_version(pinned) and minor_version(torch.__version__) >= minor_version(floor)


# The layers, lowest first: a module imports only from its own layer and those below it, lazily or not, type-only
# imports included. Within the core, any; model/ and text/ stand side by side and know nothing of each other.
LAYERS = [("errors", "settings", "console", "pieces", "version"), ("model",), ("text",), ("scoring",), ("writing",),
          ("training",), ("export",), ("api",), ("serve",), ("cli",)]
BESIDE = {"model": 1, "text": 1}  # the same height: neither may import the other


def imports(folder: Path = PACKAGE) -> list[tuple[str, str, int]]:
    """(module, module it imports, line) for every relative import in the package, lazy and type-only ones included."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        parts = list(path.relative_to(folder).with_suffix("").parts)
        package = parts[:-1]
        module = ".".join(package if parts[-1] == "__init__" else parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[: len(package) - (node.level - 1)]
                names = [node.module] if node.module else [a.name for a in node.names]
                found += [(module, ".".join([*base, *name.split(".")]), node.lineno) for name in names]
    return found


def height(module: str) -> float:
    top = module.split(".")[0]
    for rank, names in enumerate(LAYERS):
        if top in names:
            return BESIDE.get(top, rank)
    return math.inf  # the package's own __init__ and __main__ stand above everything


def test_lower_layers_never_import_upper_ones():
    upward = [f"{m} -> {t} (line {n})" for m, t, n in imports() if m and height(t) > height(m)
              or (m and height(t) == height(m) and m.split(".")[0] != t.split(".")[0] and height(m) > 0)]
    assert not upward, f"imports that reach up a layer or across: {upward}"


def test_cells_know_nothing_of_the_network_and_errors_nothing_at_all():
    assert [t for m, t, _ in imports() if m == "model.cells"] == []
    assert [t for m, t, _ in imports() if m == "errors"] == []


def test_the_layer_rule_sees_an_upward_import(tmp_path):
    # The check itself must be able to fail: errors reaching into the command line's rendering is caught.
    (tmp_path / "errors.py").write_text("def f():\n    from .cli.render import note\n")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "cells.py").write_text("from ..text.data import EOS\n")
    found = imports(tmp_path)
    assert ("errors", "cli.render", 2) in found and height("cli.render") > height("errors")
    assert height("text.data") == height("model.cells")
