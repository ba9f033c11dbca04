"""The manual's pictures, made by charrnn itself (`make docs-images`, about 4 minutes on 2 cores):

- docs/loss.png: `charrnn plot` of a 2-minute run on the bundled Shakespeare;
- docs/kinds.png: a labelled model (names and Shakespeare's lines, a minute) telling texts' kinds (`charrnn score`);
- docs/inspect.html, `charrnn inspect --html` of docs/held-out.txt (lines of the 2-minute run's validation part);
- where chromium, chromedriver and selenium are there (make test-browser installs them): docs/inspect.png, `charrnn
  inspect --html`'s view of a passage; docs/serve-page.png and docs/export-page.png, serve's page and the one `charrnn
  export --web` writes, writing from the bundled model (tests/test_page.py takes them, as the tests that drive them).

The runs are written under build/images/ (not committed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS, WORK = ROOT / "docs", ROOT / "build" / "images"
CHARRNN = [sys.executable, "-m", "charrnn"]


def charrnn(*args: str, stdout=None) -> subprocess.CompletedProcess:
    return subprocess.run([*CHARRNN, *args], cwd=WORK, check=True, text=True, stdout=stdout)


def loss_curve() -> Path:
    run = WORK / "shakespeare"
    if not (run / "best.pt").exists():
        charrnn("train", str(ROOT / "corpora" / "shakespeare.txt"), "--time", "2m", "--val-frac", "0.02", "--seed", "1",
                "--out", str(run), "-q")
    charrnn("plot", str(run), "-o", str(DOCS / "loss.png"))
    return run


def kinds() -> None:
    """Texts of two kinds, names and lines of verse, told apart by a labelled model: P(kind | text) for each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = (ROOT / "corpora" / "names.txt").read_text(encoding="utf-8").split()[:3000]
    verse = [line.strip() for line in (ROOT / "corpora" / "shakespeare.txt").read_text(encoding="utf-8").splitlines()
             if len(line.strip()) > 20][:3000]
    corpus = WORK / "kinds.txt"
    corpus.write_text("".join(f"name\t{n}\n" for n in names) + "".join(f"verse\t{v}\n" for v in verse), encoding="utf-8")
    run = WORK / "kinds"
    if not (run / "best.pt").exists():
        charrnn("train", str(corpus), "--lines", "--label-sep", "\\t", "--time", "1m", "--seed", "1", "--out", str(run),
                "-q")
    # names.txt is lower case, so the names are too: the model would tell them by their capitals otherwise
    texts = ["rosalind", "bartholomew", "zephyrine", "And all the world is but a stage",
             "What light through yonder window", "elizabeth"]
    (WORK / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    scored = charrnn("score", "-c", str(run), "texts.txt", "--json", stdout=subprocess.PIPE).stdout
    rows = [r for r in map(json.loads, scored.splitlines()) if "label_p" in r]  # a text with unknown chars has none
    fig, ax = plt.subplots(figsize=(8, 2.8))
    colours = {"name": "#4c72b0", "verse": "#dd8452"}
    ax.barh([r["text"] for r in rows], [r["label_p"] for r in rows], color=[colours[r["label"]] for r in rows])
    for k, r in enumerate(rows):
        ax.text(0.01, k, f" {r['label']} ({r['label_p']:.2f})", va="center", color="white", fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_xlabel("P(kind | text) of the likeliest kind, from charrnn score")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(DOCS / "kinds.png", dpi=110)


def browser():
    """A headless chromium driven by selenium, or None (saying why) where it is not installed."""
    chromium, driver = shutil.which("chromium") or shutil.which("google-chrome"), shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        chromium = None
    if not (chromium and driver):
        print("docs-images: no chromium and chromedriver here (make test-browser installs them): the browser pictures "
              "are left as they are", file=sys.stderr)
        return None
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,760",
                 "--force-device-scale-factor=1", "--disable-background-networking", "--no-first-run"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def inspect_page(run: Path) -> None:
    shutil.copy(DOCS / "held-out.txt", WORK)  # so the page names it as the manual does, not by an absolute path
    charrnn("inspect", "-c", str(run), "held-out.txt", "--html", str(DOCS / "inspect.html"), stdout=subprocess.DEVNULL)


def pages() -> None:
    """inspect's view as a browser shows it; serve's and the exported page through the tests that drive them."""
    page = browser()
    if page is None:
        return
    try:
        page.set_window_size(1100, 440)  # the passage, without the empty page below it
        page.get((DOCS / "inspect.html").as_uri())
        page.save_screenshot(str(DOCS / "inspect.png"))
    finally:
        page.quit()
    subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/test_page.py", "-k", "screenshot or exported_page"],
                   cwd=ROOT, env=dict(os.environ, CHARRNN_SCREENSHOTS=str(DOCS)), check=False)


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    run = loss_curve()
    inspect_page(run)
    kinds()
    pages()
    print(f"docs-images: wrote {', '.join(p.name for p in sorted(DOCS.glob('*.png')))} in docs/", file=sys.stderr)


if __name__ == "__main__":
    main()
