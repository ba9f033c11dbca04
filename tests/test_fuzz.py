"""`charrnn serve` fuzzed from its own /openapi.json by schemathesis, on loopback: thousands of requests made from the
document (its coverage phase: every field at its bounds and past them, wrong types, missing fields; then random
ones), none of which may get a 5xx, break the document, be accepted where the document says it must be refused, or
hang. `make test` runs a bounded number of examples per route; `make fuzz` many more (CHARRNN_FUZZ_EXAMPLES)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Server

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
          "response_headers_conformance,negative_data_rejection")


@pytest.fixture(scope="module")
def quick(trained_run):
    """The tiny model served with a short --request-timeout: a fuzzed request for a million characters ends soon."""
    s = Server(trained_run / "best.pt", "--request-timeout", "0.5", "--threads", "1")
    yield s
    s.stop()


def test_schemathesis_finds_no_failure(quick):
    examples = os.environ.get("CHARRNN_FUZZ_EXAMPLES", "5")
    env = dict(os.environ, SCHEMATHESIS_HOOKS="schemathesis_hooks", PYTHONPATH=str(HERE))
    ran = subprocess.run([sys.executable, "-m", "schemathesis.cli", "run", quick.url + "openapi.json", "-n", examples,
                          "--seed", "1", "--checks", CHECKS, "--request-timeout", "30", "--no-color", "--workers", "4"],
                         capture_output=True, text=True, env=env, timeout=1800)
    counts = re.search(r"(\d+) generated, (\d+) passed", ran.stdout)
    print(f"schemathesis, {examples} examples a route: {counts.group(0) if counts else ran.stdout[-300:]}")
    assert ran.returncode == 0 and counts and counts.group(1) == counts.group(2), ran.stdout[-6000:] + ran.stderr[-2000:]
