"""The layout rules of DEVELOPERS.md, checked: short functions, a thin CLI, cells known in one place."""

import ast
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
    lines = len((PACKAGE / "cli.py").read_text(encoding="utf-8").splitlines())
    assert lines < MAX_CLI, f"cli.py has {lines} lines: parse, call the library, render elsewhere"


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
