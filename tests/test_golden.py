"""Behaviour kept across restructuring: every command's output equals the goldens recorded before it.

The goldens (tests/golden/outputs.json) were recorded by the code before issue 11's restructuring (outputs
re-recorded, old checkpoints kept, when issue 15 made EOS undrawable as a primeless sample's first character);
the old code's checkpoints in tests/golden/ must still load, sample and resume. Exact float
results depend on the CPU's instruction set and torch's version, hence the platform check.
"""

import json
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"
sys.path.insert(0, str(GOLDEN))
import scenario  # noqa: E402


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    recorded = json.loads((GOLDEN / "platform.json").read_text())
    if scenario.platform() != recorded:
        pytest.skip(f"goldens were recorded on {recorded}, this is {scenario.platform()}: float results differ "
                    "between CPUs and torch versions")
    return scenario.run(tmp_path_factory.mktemp("golden"))


GOLD = json.loads((GOLDEN / "outputs.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(GOLD))
def test_output_unchanged(outputs, name):
    assert outputs[name] == GOLD[name]


def test_scenario_covers_every_cell_and_command():
    for cell in ("lstm", "gru", "rnn"):
        for use in ("metrics", "resumed-metrics", "sample", "eval", "score", "inspect-json", "info"):
            assert f"{cell}.{use}" in GOLD and f"old-{cell}.{use}" in GOLD or use == "metrics"
