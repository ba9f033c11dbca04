"""Behaviour kept across restructuring: every command's output equals the goldens recorded before it.

The goldens (tests/golden/outputs.json) were recorded by the code before issue 11's restructuring (outputs
re-recorded, old checkpoints kept, when issue 15 made EOS undrawable as a primeless sample's first character,
and when issue 21 recorded the CPU model in platform.json); the old code's checkpoints in tests/golden/ must
still load, sample and resume. On the recording platform the outputs must be equal byte for byte; on any other
CPU with the same torch, equal within the tolerances of tests/golden/compare.py.
"""

import json
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"
sys.path.insert(0, str(GOLDEN))
import compare  # noqa: E402
import scenario  # noqa: E402

GOLD = json.loads((GOLDEN / "outputs.json").read_text(encoding="utf-8"))
RECORDED = json.loads((GOLDEN / "platform.json").read_text())


def comparable(here: dict, recorded: dict) -> str | None:
    """Why outputs made here cannot be compared with the goldens at all (None: they can)."""
    if here["torch"].split("+")[0] != recorded["torch"].split("+")[0]:
        return (f"the goldens were recorded with torch {recorded['torch']} and this is torch {here['torch']}: random "
                f"streams and kernels change between versions; `make install` installs {recorded['torch'].split('+')[0]}")
    return None


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """(outputs, the first fragile draw of each sample command, exact?) of the scenario run here."""
    here = scenario.platform()
    why = comparable(here, RECORDED)
    if why:
        pytest.skip(why)
    watch = compare.DrawWatch()
    return scenario.run(tmp_path_factory.mktemp("golden"), watch=watch.watching), watch.fragile, here == RECORDED


@pytest.mark.parametrize("name", sorted(GOLD))
def test_output_unchanged(outputs, name):
    made, fragile, exact = outputs
    if exact:
        assert made[name] == GOLD[name]
    elif name in fragile:
        problem = compare.sample_difference(GOLD[name], made[name], scenario.sample_prime(name), fragile[name])
        assert problem is None, f"{name}: {problem} (tolerances: tests/golden/compare.py)"
    else:
        problem = compare.difference(GOLD[name], made[name])
        assert problem is None, f"{name}: {problem} (tolerances: tests/golden/compare.py)"


def test_scenario_covers_every_cell_and_command():
    for cell in ("lstm", "gru", "rnn"):
        for use in ("metrics", "resumed-metrics", "sample", "eval", "score", "inspect-json", "info"):
            assert f"{cell}.{use}" in GOLD and f"old-{cell}.{use}" in GOLD or use == "metrics"


def test_the_tolerances_pass_rounding_and_catch_changes():
    line = '{"step": 20, "train_loss": 3.38509, "val_loss": 3.21872, "scored": 20001}\nROMEO: a text\n'
    assert compare.difference(line, line.replace("3.21872", "3.21871")) is None  # the last place rounds either way
    assert compare.difference(line, line.replace("3.38509", "3.3851")) is None  # 3.38510 printed without its 0
    assert compare.difference(line, line.replace("3.38509", "3.38512")) is None  # within REL
    assert compare.difference(line, line.replace("3.38509", "3.38475")) is not None  # --lr 1% off does this: beyond
    assert compare.difference(line, line.replace("20001", "20002")) is not None  # counts are exact
    assert compare.difference(line, line.replace("ROMEO", "ROMEN")) is not None  # text is exact
    assert compare.difference(line, line + "1.0") is not None


def test_samples_are_compared_up_to_the_first_fragile_draw():
    golden, now = "ROMEO: abcdef\n", "ROMEO: abcxyz\n"
    assert compare.sample_difference(golden, now, "ROMEO:", None) is not None
    assert compare.sample_difference(golden, now, "ROMEO:", 4) is None  # " abc" is before the fragile draw
    assert compare.sample_difference(golden, now, "ROMEO:", 5) is not None
    lines = [json.dumps({"index": 0, "text": text, "prime": "", "ended": ended, "seed": 4})
             for text, ended in (("Cora", "eos"), ("Corinna", "length"))]
    assert compare.sample_difference(lines[0], lines[1], "", 3) is None
    assert compare.sample_difference(lines[0], lines[1], "", 4) is not None


def test_a_draw_near_an_edge_is_fragile():
    import torch

    from charrnn.writing.config import SampleConfig

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    cfg = SampleConfig()
    assert compare.draw_margin(logits, cfg, torch.tensor([[0.5 + 1e-6]])) < compare.DRAW_MARGIN  # at the 0.5 edge
    assert compare.draw_margin(logits, cfg, torch.tensor([[0.65]])) == pytest.approx(0.15, abs=1e-6)
    assert compare.draw_margin(torch.log(torch.tensor([[0.4, 0.4 - 1e-7, 0.2]])), SampleConfig(greedy=True), None) \
        < compare.DRAW_MARGIN
    assert compare.draw_margin(logits, SampleConfig(top_p=0.8), torch.tensor([[0.1]])) < compare.DRAW_MARGIN  # 0.5 + 0.3
