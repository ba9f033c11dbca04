"""The quickstart notebook, run in a real Jupyter kernel (nbclient), as a newcomer runs it: every cell runs, and its
outputs are what the cells promise. And a notebook's stop button (the kernel interrupted) ends charrnn.train cleanly,
its Run marked interrupted, resumable."""

import re
import time
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, SHAKESPEARE
from nbclient import NotebookClient

pytestmark = pytest.mark.slow
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"


def text_of(cell) -> str:
    """Everything a cell printed (its streams) and showed as plain text."""
    parts = [o.get("text", "") for o in cell.outputs if o.output_type == "stream"]
    parts += [o.data.get("text/plain", "") for o in cell.outputs if o.output_type in ("display_data", "execute_result")]
    return "".join(parts)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook run in a kernel in a fresh folder, trained for seconds instead of a minute."""
    folder = tmp_path_factory.mktemp("notebook")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = (f'from pathlib import Path\n\nTIME = "8s"\nFINETUNE_STEPS = 20\nCORPUS = Path({str(SHAKESPEARE)!r})\n'
                     'RUNS = Path("runs")')
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    return [c for c in nb.cells if c.cell_type == "code"], folder


def test_every_cell_runs_without_an_error(executed):
    cells, folder = executed
    assert all(o.output_type != "error" for c in cells for o in c.outputs)
    assert (folder / "runs" / "shakespeare" / "best.pt").is_file() and (folder / "runs" / "sonnets" / "best.pt").is_file()


def test_the_bundled_model_writes_what_the_command_line_writes(executed, tmp_path):
    from inprocess import invoke

    cells, _ = executed
    cli = invoke("sample", "-c", "base", "--prime", "ROMEO.", "--length", "300", "--seed", "1", "-t", "0.8", "-q",
                 cwd=tmp_path)
    assert cli.stdout in text_of(cells[1])


def test_the_loss_curve_is_drawn_in_place_and_training_reports_its_end(executed):
    cells, _ = executed
    images = [o for o in cells[2].outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1  # one figure, redrawn at each evaluation through its display handle
    ended = re.search(r"(budget|patience): (\d+) steps, best validation ([\d.]+) bits", text_of(cells[2]))
    assert ended and int(ended.group(2)) > 0 and 1 < float(ended.group(3)) < 6


def test_the_new_model_writes_whole_and_streamed(executed):
    cells, _ = executed
    assert text_of(cells[3]).startswith("ROMEO.") and len(text_of(cells[3])) > 100
    assert len(text_of(cells[4])) > 20


def test_a_typical_text_scores_lower_than_noise(executed):
    cells, _ = executed
    scores = [float(x) for x in re.findall(r"([\d.]+) nats/char", text_of(cells[5]))]
    assert len(scores) == 2 and scores[0] < scores[1]


def test_fine_tuning_on_documents_in_a_list(executed):
    cells, _ = executed
    out = text_of(cells[6])
    assert out.startswith("budget") and "Shall I" in out


def test_the_stop_button_ends_training_cleanly_and_it_resumes(tmp_path):
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        code = ("import charrnn\nrun = charrnn.train(['the cat sat on the mat. ' * 20, 'a dog ran in the fog. ' * 20], "
                "out='run', steps=100000, eval_every=20, hidden=32, embed=8, progress=False, "
                "on_eval=lambda e: print('evaluated', e.step, flush=True))\nprint('ended', run.ended, run.steps)")
        msg_id = kc.execute(code)
        printed = read_until(kc, msg_id, "evaluated", km=km)
        assert re.search(r"ended interrupted (\d+)", printed), printed
        steps = int(re.search(r"ended interrupted (\d+)", printed).group(1))
        msg_id = kc.execute(f"run = charrnn.train(['the cat sat on the mat. ' * 20, 'a dog ran in the fog. ' * 20], "
                            f"out='run', steps={steps + 20}, eval_every=20, resume=True, progress=False)\n"
                            "print('ended', run.ended, run.steps)")
        assert f"ended budget {steps + 20}" in read_until(kc, msg_id)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def read_until(kc, msg_id: str, interrupt_at: str | None = None, km=None, timeout: float = 240) -> str:
    """What the cell printed until it finished; with interrupt_at, the kernel is interrupted (the stop button) once
    that text has been printed."""
    printed, deadline, interrupted = "", time.time() + timeout, False
    while time.time() < deadline:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            printed += content["text"]
        elif kind == "error":
            printed += "\n".join(content["traceback"])
        elif kind == "status" and content["execution_state"] == "idle":
            return printed
        if interrupt_at and not interrupted and interrupt_at in printed:
            km.interrupt_kernel()
            interrupted = True
    raise AssertionError(f"the cell did not finish: {printed[-500:]}")


def test_the_committed_notebook_has_its_outputs():
    # What a newcomer sees before running anything: the notebook as `make notebook` ran it, outputs included.
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs for c in code[1:]) and any("image/png" in o.get("data", {}) for o in code[2].outputs)
    assert not Path(NOTEBOOK.parent / "runs").exists()
