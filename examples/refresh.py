"""Run quickstart.ipynb in a Jupyter kernel from this folder and save it with its outputs (`make notebook`): what a
newcomer sees before running anything. Streamed text is saved as one output per cell, as Jupyter saves it."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE / "quickstart.ipynb"


def coalesced(outputs: list) -> list:
    """Consecutive stream outputs of one stream joined into one."""
    out: list = []
    for o in outputs:
        if out and o.output_type == "stream" and out[-1].output_type == "stream" and out[-1].name == o.name:
            out[-1].text += o.text
        else:
            out.append(o)
    return out


def main() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = coalesced(cell.outputs)
    nbformat.write(nb, NOTEBOOK)
    shutil.rmtree(HERE / "runs", ignore_errors=True)


if __name__ == "__main__":
    main()
