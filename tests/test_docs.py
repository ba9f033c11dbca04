"""The manual (README.md and docs/): the site builds with --strict (make docs); every option `charrnn COMMAND --help`
shows is in that command's generated reference; and every shell, console and Python example is marked, the runnable
ones run against tiny models in a sandbox, with their output checked where it is shown.

An example is a fenced block (sh, console or python) preceded by one of:
    <!-- run -->                       run it; a console block's output lines, or the text block after a Python
                                       block, must match what it prints ("..." stands for any text)
    <!-- run: output not compared: WHY -->   run it, and it must succeed
    <!-- run with a server -->         run it against `charrnn serve -c base`, the bundled model the pages promise it
                                       works with (its port for the example's 8000); it must succeed, no error answer
    <!-- not run: WHY -->              not run here, for the reason given (a GPU, a long budget, a server)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, Server

pytestmark = pytest.mark.slow
LANGUAGES = {"sh", "console", "python"}
MARK = re.compile(r"<!-- (run|run: output not compared: [^>]+|run with a server|not run: [^>]+) -->")
SERVED = re.compile(r"(localhost|127\.0\.0\.1):8000")
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BIN = Path(sys.executable).parent


@dataclass
class Example:
    where: str
    language: str
    body: list[str]
    mark: str | None
    shown: list[str] | None  # a Python block's expected output: the text block right after it

    def shows_output(self) -> bool:
        """Whether the page shows what the example prints: lines after a console block's commands, or a text block."""
        if self.language == "console":
            return any(shown for _, shown in console(self.body))
        return bool(self.shown)


def examples() -> list[Example]:
    found = []
    for path in PAGES:
        lines = path.read_text(encoding="utf-8").split("\n")
        i = 0
        while i < len(lines):
            if not lines[i].startswith("```"):
                i += 1
                continue
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            language = lines[i][3:].strip()
            if language in LANGUAGES:
                mark = MARK.fullmatch(lines[i - 1].strip()) if i else None
                after = next((k for k in range(end + 1, len(lines)) if lines[k].strip()), None)
                shown = None
                if language == "python" and after is not None and lines[after] == "```text":
                    shown = lines[after + 1 : next(j for j in range(after + 1, len(lines)) if lines[j].startswith("```"))]
                found.append(Example(f"{path.relative_to(ROOT)}:{i + 1}", language, lines[i + 1 : end],
                                     mark.group(1) if mark else None, shown))
            i = end + 1
    return found


EXAMPLES = examples()


def test_every_example_is_marked_run_or_not_run():
    unmarked = [e.where for e in EXAMPLES if e.mark is None]
    assert not unmarked, f"mark these <!-- run --> or <!-- not run: why -->: {unmarked}"
    ran = sum(e.mark.startswith("run") for e in EXAMPLES)
    checked = sum(e.mark == "run" and e.shows_output() for e in EXAMPLES)
    print(f"{len(EXAMPLES)} examples: {ran} run ({checked} with their output checked), {len(EXAMPLES) - ran} not run")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, trained_run, names_run, corpus_text):
    """A folder where the examples find what they name: runs under checkpoints/ (tiny models), texts, docs/."""
    root = tmp_path_factory.mktemp("examples")
    shutil.copytree(names_run / "names", root / "checkpoints" / "names", ignore=shutil.ignore_patterns("corpus"))
    for name in ("a", "b", "tinyshakespeare", "notes", "shakespeare"):  # the last is the newest run: -c's default
        shutil.copytree(trained_run, root / "checkpoints" / name, ignore=shutil.ignore_patterns("corpus"),
                        copy_function=shutil.copy)
    text = corpus_text[:20_000]
    for name in ("book.txt", "some.txt", "other.txt", "valid.txt", "scene.txt", "tempest.txt", "poems.txt",
                 "my-letters.txt"):
        (root / name).write_text(text[: 4000 if name != "book.txt" else 20_000], encoding="utf-8")
    (root / "names.txt").write_text((ROOT / "corpora" / "names.txt").read_text(encoding="utf-8"), encoding="utf-8")
    (root / "docs").mkdir()
    shutil.copy(ROOT / "docs" / "held-out.txt", root / "docs")
    (root / "corpora").symlink_to(ROOT / "corpora")
    return root


@pytest.fixture(scope="module")
def base_server():
    served = Server("base", "--threads", "1")
    yield served
    served.stop()


def run(command: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", NO_COLOR="1", COLUMNS="200")
    env.pop("CHARRNN_DEBUG", None)
    return subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def matches(shown: list[str], printed: str) -> bool:
    """Whether the printed lines are the shown ones, "..." standing for any text (within a line or for lines)."""
    pattern = "\n".join(".*" if line.strip() == "..." else ".*".join(map(re.escape, line.split("...")))
                        for line in shown)
    return re.fullmatch(pattern, printed.rstrip("\n"), re.S) is not None


def console(body: list[str]) -> list[tuple[str, list[str]]]:
    """A console block's commands ($ lines), each with the lines shown after it."""
    steps: list[tuple[str, list[str]]] = []
    for line in body:
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
    return steps


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.where for e in EXAMPLES])
def test_the_example_runs(example: Example, sandbox, request):
    if example.mark is None or example.mark.startswith("not run"):
        pytest.skip(example.mark or "unmarked")
    compare = example.mark == "run"
    if example.mark == "run with a server":
        served = request.getfixturevalue("base_server")
        example.body = [SERVED.sub(f"{served.host}:{served.port}", line) for line in example.body]
    if example.language == "sh":
        ran = run("\n".join(example.body), sandbox)
        assert ran.returncode == 0, ran.stderr[-3000:]
        assert '"error"' not in ran.stdout, ran.stdout
    elif example.language == "console":
        for command, shown in console(example.body):
            ran = run(command, sandbox)
            assert ran.returncode == 0, f"$ {command}\n{ran.stderr[-3000:]}"
            if compare and shown:
                assert matches(shown, ran.stdout + ran.stderr), f"$ {command}\n{ran.stdout}{ran.stderr}"
    else:
        (sandbox / "example.py").write_text("\n".join(example.body), encoding="utf-8")
        ran = run(f"{sys.executable} example.py", sandbox)
        assert ran.returncode == 0, ran.stderr[-3000:]
        if compare and example.shown:
            assert matches(example.shown, ran.stdout), ran.stdout


def test_the_site_builds_strictly(tmp_path):
    ran = subprocess.run([str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                         capture_output=True, text=True, timeout=600, env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))
    assert ran.returncode == 0, ran.stderr[-5000:]
    assert "WARNING" not in ran.stderr, ran.stderr
    site = tmp_path / "site"
    for command in ("train", "sample", "eval", "score", "inspect", "plot", "info", "serve", "export"):
        page = (site / "reference" / command / "index.html").read_text(encoding="utf-8")
        helped = subprocess.run([sys.executable, "-m", "charrnn", command, "--help"], capture_output=True, text=True,
                                env=dict(os.environ, COLUMNS="300"))
        columns = [re.split(r"\s{2,}", line.strip())[0] for line in helped.stdout.splitlines() if re.match(r"  -", line)]
        options = {o for column in columns for o in re.findall(r"--[a-z][a-z0-9-]*", column)} - {"--help"}
        missing = sorted(o for o in options if f"<code>{o}</code>" not in page)
        assert options and not missing, f"charrnn {command}: --help's {missing} are not in its reference"
    api = (site / "reference" / "python" / "index.html").read_text(encoding="utf-8")
    assert all(f'id="charrnn.{name}"' in api for name in ("load", "Model", "train", "Run", "Sample"))


def test_the_readme_is_short_and_starts_with_the_two_commands():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines: the manual (docs/) holds the rest"
    top = "\n".join(lines[:30])
    assert "make demo" in top and "make test" in top
