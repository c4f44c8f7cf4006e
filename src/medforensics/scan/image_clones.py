"""Copy-move (duplicated region) detection in radiographs, MR and single CT slices: one noise in two places.

The CT check (:mod:`medforensics.scan.clones`) looks for a copy inside the lungs. A radiograph or an MR image
has no lung window to search, but the same reasoning holds: the detector's quantum noise (a CR plate's, a
flat panel's) or an MR image's thermal noise is independent from pixel to pixel, so an authentic image never
carries one region's noise in another place. Someone who hides a lesion under tissue copied from elsewhere in
the same image, or duplicates one, moves that noise along. This module runs the CT check's keypoints,
descriptors, hashing, grouping and voxel-for-voxel comparison on every image of a series (each image's own
pixels: a radiograph series' padding, at the image's minimum, is never searched), with rules of its own,
measured on the real radiographs and MR available offline (``benchmarks/image_clones.py``):

1. keypoints may lie anywhere in the image, but a keypoint's whole patch must hold no clipped pixel (the
   image's minimum or maximum: collimated or saturated areas and burnt-in text carry no noise) and no flat
   one (:data:`FLAT_FRACTION`: a label map or an atlas is flat regions, and an atlas made symmetric by
   mirroring one hemisphere is a copy, but no tampering: mricron's aal, jhu189 and inia19-NeuroMaps were
   flagged without this rule);
2. a keypoint whose residual patch is mostly one line pattern (:data:`LINE_FRACTION` of its energy in its row
   or column means) is dropped: stripes repeat along their lines, which is not a copy (pydicom-data's chest
   CR has a striped band along its top edge: 14 such "clones" there without this rule);
3. the two ends must agree over :data:`MIN_AGREE_PX` pixels (not mm^2: a radiograph's pixels are 0.1-0.2 mm,
   a PNG's size is unknown) and must not overlap (a region next to itself is a texture, not a copy);
4. a radiograph series is searched image by image (``each_image``): one exposure stored twice, turned or in
   two encodings, would match itself across images. An MR series is searched across slices, as CT;
5. a single CT slice (a CT volume has the lung check of :mod:`~medforensics.scan.clones`) is searched within
   the patient's body only (:func:`ct_window`): the couch is symmetric and matched its mirror image;
6. keypoints rise :data:`KEYPOINT_SD` robust deviations above the noise on a radiograph or CT slice, less than
   the CT volume check asks (one image offers fewer keypoints to match than a copy spanning slices); MR's
   (:data:`MR_KEYPOINT_SD`) is the CT check's;
7. ``scan --clone-region body`` searches a CT volume's every slice alone the same way
   (:func:`add_image_clone_findings` with ``slice_by_slice``), for a copy outside the lungs; searched across
   slices over the body, mirror-image bones on nearby slices matched in 7 of 9 authentic CTs
   (``benchmarks/clone_region.md``).

Both ends are reported, the likely copy first: the end whose edge (where the two ends only partly agree)
holds more band-pass detail, the seam where the pasted pixels cut the anatomy around them; the source's edge
continues into its own (:func:`seam_edge`; the noise alone cannot tell them apart). The finding type:
``injected`` when the duplicated content holds a focal opacity (its centre brighter than the rim of the
region by :data:`FOCAL_CONTRAST` of the image's 0.5-99.5 percentile range: a lesion copied to a second
place), else ``removed`` (plain tissue copied over whatever was there).

Not proof against every copy: noise added over it, resampling (a turn by other than quarter turns, a
rescale) or lossy compression after the edit hide it, as for CT.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from medforensics.forge.lung import body_mask
from medforensics.io.dicom_tags import PROJECTION_MODALITIES
from medforensics.io.volume import Volume
from medforensics.scan.clone_ends import Agreement
from medforensics.scan.clones import (
    CLONE_SCORE,
    PATCH,
    Clone,
    Keypoints,
    Window,
    end_findings,
    patient_mm,
)
from medforensics.scan.image2d import percentile_range
from medforensics.scan.result import Finding, SeriesResult

#: A keypoint whose residual patch has this fraction of its energy in its row (or column) means is a line.
LINE_FRACTION = 0.35
#: A pixel is flat (no noise to match) when this fraction of the pixels in a patch around it equal their right
#: or lower neighbour: label maps and atlases 0.95-1.0, real radiographs and MR at most 0.74 (90th
#: percentile; an 8-bit PNG X-ray 0.55).
FLAT_FRACTION = 0.75
#: Keypoints of a radiograph or a CT slice: smoothed-residual maxima above this many robust standard
#: deviations (the CT volume check's :data:`~medforensics.scan.clones.KEYPOINT_SD`, 1.5, asks more: a copy
#: there spans slices, one image has fewer keypoints to match). Session 48, ``benchmarks/image_clones.py``:
#: 1.0 finds 6 more of 40 radiograph copies and 8 more of 110 on CT slices, with no false alarm on the 18
#: sources, on 714 real CT slices or on 29 real MR rows; 0.5 flagged the authentic Colin27.
KEYPOINT_SD = 1.0
#: The same for MR, kept at the CT check's: at 1.0 elastix's example ``moving.mhd`` (a warped, simulated
#: brain slice whose background repeats its own noise) came out ``tampered``; the real MR gained 1 of 28.
MR_KEYPOINT_SD = 1.5
#: The two ends of a copy must have the same noise over at least this many pixels.
MIN_AGREE_PX = 400
#: A duplicated region is a copied lesion (``injected``) when its centre is brighter than its rim by this
#: fraction of the image's 0.5-99.5 percentile range. Of 120 plain discs the forge's ``image-clone`` drew from
#: four real images, 10 % are that bright at their centre (0.05: 18 %). Session 48: 17 of 25 real CT lesions
#: copied within their slice and found were typed so (those against the chest wall not), 125 of 132 plain
#: discs found typed ``removed`` (``benchmarks/image_clones.md``).
FOCAL_CONTRAST = 0.10
#: Where ``scan --clone-region`` searches a CT volume: its lungs across slices (:mod:`~.clones`), or also
#: every slice alone within the body (:func:`add_image_clone_findings` with ``slice_by_slice``).
CLONE_REGIONS = ("lungs", "body")
#: Two reports of a copy are one when both its ends lie this close (mm).
SAME_END_MM = 10.0
#: Images read at a time.
BATCH = 16
#: Why the copy's end is the likelier (in its finding's description).
SEAM = ": its edge holds the seam"
#: Copies reported as findings (the strongest; ``extra['clones']`` counts all).
MAX_CLONES = 5


def image_window(img: NDArray[np.float32]) -> tuple[slice, slice, NDArray[np.bool_]] | None:
    """The whole image, where it is neither clipped (its minimum or maximum) nor flat (over a patch around
    it, :data:`FLAT_FRACTION` of pixels equal to a neighbour); None when fewer than a patch of pixels are
    left."""
    lo, hi = float(img.min()), float(img.max())
    same = np.zeros(img.shape, np.float32)
    same[:, :-1] += img[:, :-1] == img[:, 1:]
    same[:-1] += img[:-1] == img[1:]
    flat = ndimage.uniform_filter(np.minimum(same, 1.0), PATCH, mode="nearest") >= FLAT_FRACTION
    allowed = (img > lo) & (img < hi) & ~flat
    if int(allowed.sum()) < PATCH * PATCH:
        return None
    return slice(0, img.shape[0]), slice(0, img.shape[1]), allowed


def ct_window(img: NDArray[np.float32]) -> tuple[slice, slice, NDArray[np.bool_]] | None:
    """A single CT slice (HU): :func:`image_window` within the patient's body (:func:`body_mask`). The couch
    is left out: it is symmetric, so its two ends matched each other mirrored on a real chest CT slice
    (pyradiomics' lung2, slice 40), and nobody hides a lesion in it or in the air around."""
    win = image_window(img)
    if win is None:
        return None
    allowed = win[2] & body_mask(img)
    return None if int(allowed.sum()) < PATCH * PATCH else (win[0], win[1], allowed)


def not_lines(desc: NDArray[np.float32]) -> NDArray[np.bool_]:
    """Descriptors (n, PATCH * PATCH; zero mean, unit norm) whose energy is not mostly in their row or column
    means (see :data:`LINE_FRACTION`)."""
    p = desc.reshape(len(desc), PATCH, PATCH)
    rows = PATCH * np.square(p.mean(axis=2)).sum(axis=1)
    cols = PATCH * np.square(p.mean(axis=1)).sum(axis=1)
    energy = np.maximum(np.square(p).sum(axis=(1, 2)), 1e-12)
    return np.asarray(np.maximum(rows, cols) / energy < LINE_FRACTION)


def _overlap(c: Clone) -> bool:
    """Whether the two ends' boxes overlap (on the same image)."""
    a, b = c.source_box, c.copy_box
    return all(a[i] < b[i + 3] and b[i] < a[i + 3] for i in range(3))


def seam_edge(ag: Agreement) -> bool:
    """The 2-D rule: end ``b`` is the copy when its edge holds at least as much band-pass detail as end
    ``a``'s, the seam where pasted pixels cut other anatomy (the CT rule, the denser edge, is for lung
    levelled around a copy)."""
    return ag.copy_edge_seam >= ag.source_edge_seam


def _shifted(c: Clone, dz: int) -> Clone:
    """``c`` found in image ``dz`` searched alone, in the series' coordinates."""

    def z(p: tuple[int, ...]) -> Any:
        return (p[0] + dz, *p[1:3]) if len(p) == 3 else (p[0] + dz, *p[1:3], p[3] + dz, *p[4:])

    return replace(c, source=z(c.source), copy=z(c.copy), source_box=z(c.source_box), copy_box=z(c.copy_box))


def search_options(modality: str | None) -> dict[str, Any]:
    """How ``scan`` has :func:`image_clones` search images of ``modality``: a radiograph series image by
    image, a CT slice within the body, MR at :data:`MR_KEYPOINT_SD`."""
    return {
        "each_image": modality in PROJECTION_MODALITIES,
        "window": ct_window if modality == "CT" else image_window,
        "min_sd": MR_KEYPOINT_SD if modality == "MR" else KEYPOINT_SD,
    }


def image_clones(
    array: Any,
    spacing: tuple[float, float, float],
    seed: int = 0,
    each_image: bool = False,
    window: Window = image_window,
    min_sd: float | None = None,
) -> list[Clone]:
    """Duplicated regions in the images of ``array`` (z, y, x; any indexable by slice), strongest first, each
    with its copy at the end whose edge holds the seam: a copy within one image or between two, or with
    ``each_image`` only within one (a radiograph series may hold an exposure twice, turned or not: two
    instances of one image are no copy-move). ``window``: where keypoints may lie on an image
    (:func:`image_window`; :func:`ct_window` for a CT slice); ``min_sd``: the keypoints' threshold (default
    :data:`KEYPOINT_SD`)."""
    area = MIN_AGREE_PX * spacing[1] * spacing[2]
    if each_image:  # read :data:`BATCH` images at a time (no threads: 2 took longer than 1 on a CT's slices)
        found = []
        for z0 in range(0, int(array.shape[0]), BATCH):
            block = np.asarray(array[z0 : z0 + BATCH], np.float32)
            for k, img in enumerate(block):
                found += [
                    _shifted(c, z0 + k)
                    for c in image_clones(img[None], spacing, seed, window=window, min_sd=min_sd)
                ]
        return sorted(found, key=lambda c: -c.agreeing_mm2)
    sd = KEYPOINT_SD if min_sd is None else min_sd
    keypoints = Keypoints(seed, window=window, keep=not_lines, min_sd=sd)
    for z0 in range(0, int(array.shape[0]), BATCH):
        keypoints.add(z0, np.asarray(array[z0 : z0 + BATCH], np.float32))
    found = keypoints.clones(array, spacing, min_agree_mm2=area, b_is_copy=seam_edge)
    return [c for c in found if not _overlap(c)]


def _focal(img: NDArray[np.float32], box: tuple[int, ...], scale: float) -> bool:
    """Whether the centre of ``box`` (its middle third) is brighter than its rim by :data:`FOCAL_CONTRAST`
    of ``scale``."""
    _, y0, x0, _, y1, x1 = box
    region = img[y0:y1, x0:x1]
    h, w = region.shape
    if h < 3 or w < 3 or scale <= 0:
        return False
    core = region[h // 3 : h - h // 3, w // 3 : w - w // 3]
    rim = np.concatenate([region[0], region[-1], region[:, 0], region[:, -1]])
    return float(np.median(core) - np.median(rim)) >= FOCAL_CONTRAST * scale


def _near(volume: Volume, voxel: tuple[int, int, int], ends_mm: list[NDArray[Any]]) -> bool:
    """Whether ``voxel`` lies within :data:`SAME_END_MM` of one of ``ends_mm`` (patient mm)."""
    here = np.asarray(patient_mm(volume, voxel))
    return any(float(np.linalg.norm(here - e)) <= SAME_END_MM for e in ends_mm)


def add_image_clone_findings(volume: Volume, result: SeriesResult, slice_by_slice: bool = False) -> None:
    """Search every image of a scanned 2-D ``result`` (a radiograph, an MR image or a series of them, or a
    single CT slice within the body) for duplicated regions. Any makes an ``authentic`` series ``tampered``
    (label FB or FM by the type), with the two ends of each copy as findings first; ``result.extra['clones']``
    lists them (empty: none found). ``slice_by_slice``: a CT volume's every slice alone, within the body
    (``scan --clone-region body``; the lung check's own ``clones`` kept, the copies it did not report under
    ``slice_clones``)."""
    if result.error is not None:
        return
    options = search_options(volume.modality)
    options["each_image"] = options["each_image"] or slice_by_slice
    key = "slice_clones" if slice_by_slice else "clones"
    unit = "slice" if volume.modality in ("CT", "MR") else "image"

    def place(p: tuple[int, int, int]) -> str:
        """Where the other end is: a CT volume's (its view may be reoriented) in mm, as the lung check's."""
        if slice_by_slice:
            return f"{patient_mm(volume, p)} mm"
        return f"{unit} {p[0]}, row {p[1]}, column {p[2]}"

    findings: list[Finding] = []
    summary: list[dict[str, Any]] = []
    found = image_clones(volume.array, volume.spacing, **options)
    if slice_by_slice:  # a copy the lung check reported already is not reported twice
        seen = [np.asarray(c[k]) for c in result.extra.get("clones", []) for k in ("copy_mm", "source_mm")]
        found = [c for c in found if not all(_near(volume, end, seen) for end in (c.copy, c.source))]
    for c in found[:MAX_CLONES]:
        img = np.asarray(volume.array[c.copy[0]], np.float32)
        lo, hi = percentile_range(img)
        kind = "injected" if _focal(img, c.copy_box, hi - lo) else "removed"
        findings += end_findings(volume, c, kind, place, SEAM)
        summary.append(
            {
                # a CT volume's view may be reoriented: patient mm only, under the lung check's keys
                **({} if slice_by_slice else {"ends_voxel": [list(c.copy), list(c.source)]}),
                "copy_mm": patient_mm(volume, c.copy),
                "source_mm": patient_mm(volume, c.source),
                "matches": c.matches,
                "correlation": round(c.correlation, 4),
                "agreeing_mm2": round(c.agreeing_mm2, 1),
                "type": kind,
            }
        )
    result.extra[key] = summary
    result.extra[f"{key}_found"] = len(found)
    if not findings:
        return
    result.score = max(result.score or 0.0, CLONE_SCORE)
    if result.verdict == "authentic":
        result.verdict = "tampered"
        result.label = "FM" if findings[0].type == "injected" else "FB"
    result.findings = sorted(findings + result.findings, key=lambda f: -f.score)
