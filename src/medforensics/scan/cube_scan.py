"""The cube detector's CT path (``kind`` "3d" detectors such as ``cnn3d``; the bundled default is the dense
localiser, :mod:`~medforensics.scan.dense`): lung and candidates (:mod:`~medforensics.scan.candidates`), 3-D
cube scoring with the detector, a local refinement of the best candidates, study-level aggregation
(:mod:`~medforensics.scan.aggregate`), non-max suppression in mm, and an explanation heatmap per finding."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from medforensics.errors import MedforensicsError
from medforensics.io.volume import Volume
from medforensics.scan.aggregate import aggregate, attack_type, nms_mm
from medforensics.scan.candidates import Candidate, ct_candidates, refine_offsets
from medforensics.scan.cubes import extract_cube_fast, iter_cube_batches
from medforensics.scan.detector import Detector
from medforensics.scan.metadata_checks import metadata_findings
from medforensics.scan.result import Finding, SeriesResult

#: Findings kept per series, and how many top candidates get a local refinement.
MAX_FINDINGS, REFINE_TOP = 5, 3


def _score_centres(detector: Detector, volume: Volume, centres: list[tuple[float, float, float]]) -> Any:
    spec = detector.spec
    n = len(centres)
    p = np.zeros(n)
    pt = np.zeros((n, len(spec.classes)))
    for s, cubes in iter_cube_batches(volume.array, volume.spacing, centres, spec.cube_mm, spec.spacing_mm):
        p[s : s + len(cubes)], pt[s : s + len(cubes)] = detector.score_cubes(cubes)
    return p, pt


def _refine(
    detector: Detector,
    volume: Volume,
    cands: list[Candidate],
    p: NDArray[Any],
    pt: NDArray[Any],
    step_mm: float,
) -> tuple[list[Candidate], NDArray[Any], NDArray[Any]]:
    """Score a 3x3x3 lattice (``step_mm``) around the best candidates and add the lattice points."""
    mm = volume.index_to_patient(np.array([c.center for c in cands]))
    top = nms_mm(mm, p, step_mm * 2, max_keep=REFINE_TOP)
    hi = np.asarray(volume.shape, np.float64) - 1
    new: list[Candidate] = []
    for i in top:
        for off in refine_offsets(volume.spacing, step_mm):
            c = np.clip(np.asarray(cands[i].center) + off, 0, hi)
            new.append(Candidate((float(c[0]), float(c[1]), float(c[2])), "refine"))
    if not new:
        return cands, p, pt
    q, qt = _score_centres(detector, volume, [c.center for c in new])
    return cands + new, np.concatenate([p, q]), np.concatenate([pt, qt])


def _box(volume: Volume, center: tuple[int, int, int], half_mm: float) -> tuple[int, int, int, int, int, int]:
    lo, hi = [], []
    for ax in range(3):
        h = max(1, int(np.ceil(half_mm / volume.spacing[ax])))
        lo.append(max(0, center[ax] - h))
        hi.append(min(volume.shape[ax], center[ax] + h + 1))
    return (lo[0], lo[1], lo[2], hi[0], hi[1], hi[2])


def _finding(
    detector: Detector,
    volume: Volume,
    cand: Candidate,
    score: float,
    p_type: NDArray[Any],
    explain: str | None,
) -> Finding:
    from medforensics.explain.heatmap import explain as explain_map
    from medforensics.explain.heatmap import resample_to_box
    from medforensics.forge.cubes import cube_grid

    kind = attack_type(p_type)
    centre = tuple(round(v) for v in cand.center)
    mm = volume.index_to_patient(np.asarray(cand.center))
    half = max(8.0, 0.6 * cand.diameter_mm)
    box = _box(volume, centre, half)  # type: ignore[arg-type]
    heat = mask = None
    if explain:
        spec = detector.spec
        cube = extract_cube_fast(volume.array, volume.spacing, cand.center, spec.cube_mm, spec.spacing_mm)
        cls = 1 + int(np.argmax(p_type[1:3])) if len(p_type) >= 3 else 1
        cam = explain_map(detector.model, detector.window(cube)[None], cls, explain)
        grid = cube_grid(volume.shape, volume.spacing, cand.center, spec.cube_mm, spec.spacing_mm)
        heat = resample_to_box(cam, grid.center, grid.step, box)
        mask = heat >= 0.5
    desc = f"{kind} region ({cand.kind} candidate" + (
        f", blob ~{cand.diameter_mm:.0f} mm)" if cand.kind == "blob" else ")"
    )
    return Finding(
        kind,
        float(score),
        centre,  # type: ignore[arg-type]
        (float(mm[0]), float(mm[1]), float(mm[2])),
        box,
        desc,
        heatmap=heat,
        mask=mask,
    )


def scan_ct(
    volume: Volume, detector: Detector, result: SeriesResult, explain: str | None = "gradcam"
) -> None:
    """Fill ``result`` for a CT volume (see module docs)."""
    spec = detector.spec
    if spec.kind != "3d":
        raise MedforensicsError(f"the detector takes {spec.kind} inputs; CT volumes need a 3-D detector")
    meta = metadata_findings(volume)
    cands, low = ct_candidates(volume, cube_mm=spec.cube_mm)
    if not cands:
        raise MedforensicsError("no lung found: the CT detector scores chest CT (lung candidates)")
    p, pt = _score_centres(detector, volume, [c.center for c in cands])
    n_scored = len(cands)
    cands, p, pt = _refine(detector, volume, cands, p, pt, step_mm=spec.cube_mm / 6.0)
    threshold = detector.calibration.operating_threshold
    agg = aggregate(p, pt, threshold, [c.nodule_like for c in cands])
    mm = volume.index_to_patient(np.array([c.center for c in cands]))
    top = nms_mm(mm, p, spec.cube_mm / 2.0, max_keep=MAX_FINDINGS)
    findings = [_finding(detector, volume, cands[i], p[i], pt[i], explain) for i in top if p[i] >= threshold]
    result.score, result.verdict, result.label = agg.score, agg.verdict, agg.label
    result.findings = findings + meta
    result.extra.update(
        candidates=n_scored,
        blobs=sum(c.kind == "blob" for c in cands),
        refined=len(cands) - n_scored,
        nodule_like=sum(c.nodule_like for c in cands),
        lung_ml=round(float(low.lung.sum()) * float(np.prod(low.spacing)) / 1000.0, 1),
        top_candidates=[
            {
                "score": round(float(p[i]), 6),
                "center_voxel": [round(v) for v in cands[i].center],
                "type": attack_type(pt[i]),
            }
            for i in top[:3]
        ],
    )
