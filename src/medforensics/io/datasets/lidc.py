"""LIDC-IDRI reader XML: per-reader nodule outlines, grouped into physical nodules.

An LIDC ``LidcReadMessage`` holds one ``readingSession`` per radiologist. Each ``unblindedReadNodule`` has
a ``noduleID``, ``characteristics`` (1-5/6 ratings incl. malignancy; absent for nodules < 3 mm) and one
``roi`` per slice (``imageZposition`` mm, ``imageSOP_UID``, ``inclusion`` TRUE for an outline, FALSE for a
hole, ``edgeMap`` points with xCoord = column and yCoord = row). Nodules < 3 mm are a single point.
``nonNodule`` entries (other findings >= 3 mm) are kept apart.

:func:`group_nodules` places every reader's outline in a :class:`Volume` (by SOP Instance UID when the
volume lists them, else by z position), drops outlines on slices the volume does not have, and clusters the
readers' marks into physical nodules (each reader at most once per nodule).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from medforensics.errors import InputError
from medforensics.io.annotations import Nodule
from medforensics.io.volume import Volume
from medforensics.logging import get_logger

log = get_logger("io.datasets.lidc")

CHARACTERISTICS = (
    "subtlety",
    "internalStructure",
    "calcification",
    "sphericity",
    "margin",
    "lobulation",
    "spiculation",
    "texture",
    "malignancy",
)

#: Default clustering distance between two readers' nodule centroids.
DEFAULT_DISTANCE_MM = 10.0

Match = Literal["auto", "sop", "z"]


@dataclass
class LidcRoi:
    """One reader's outline (or hole) of a nodule on one slice."""

    z_position: float | None
    sop_uid: str
    inclusion: bool
    points: NDArray[np.float64]  # (N, 2) pixel (row, col)


@dataclass
class ReaderNodule:
    """One reader's mark of one nodule."""

    reader: int
    nodule_id: str
    rois: list[LidcRoi]
    characteristics: dict[str, int] = field(default_factory=dict)

    @property
    def malignancy(self) -> int | None:
        """Malignancy rating 1-5 (None for nodules < 3 mm)."""
        return self.characteristics.get("malignancy")

    @property
    def is_small(self) -> bool:
        """True for a nodule < 3 mm (marked by single points only)."""
        return all(len(r.points) == 1 for r in self.rois)


@dataclass
class NonNodule:
    """A reader's non-nodule finding (a single point)."""

    reader: int
    nodule_id: str
    z_position: float | None
    sop_uid: str
    point: tuple[float, float]  # (row, col)


@dataclass
class LidcReads:
    """Everything in one LIDC XML file."""

    path: Path
    series_uid: str | None
    study_uid: str | None
    n_readers: int
    nodules: list[ReaderNodule]
    non_nodules: list[NonNodule]


# ---------------------------------------------------------------------- parsing
def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _kids(elem: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in elem if _local(c.tag) == name]


def _text(elem: ET.Element, name: str) -> str | None:
    for c in elem:
        if _local(c.tag) == name:
            return (c.text or "").strip()
    return None


def _float(text: str | None, what: str, path: Path) -> float:
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise InputError(f"bad {what} value {text!r}", path=path) from exc


def _xy(elem: ET.Element, path: Path, what: str) -> tuple[float, float]:
    """(row, col) from yCoord, xCoord."""
    return (
        _float(_text(elem, "yCoord"), f"yCoord in {what}", path),
        _float(_text(elem, "xCoord"), f"xCoord in {what}", path),
    )


def _z(elem: ET.Element, path: Path, what: str) -> float | None:
    text = _text(elem, "imageZposition")
    return _float(text, f"imageZposition in {what}", path) if text else None


def _parse_roi(elem: ET.Element, path: Path, what: str) -> LidcRoi:
    points = [_xy(e, path, what) for e in _kids(elem, "edgeMap")]
    if not points:
        raise InputError(f"{what} has an roi without edgeMap points", path=path)
    return LidcRoi(
        z_position=_z(elem, path, what),
        sop_uid=_text(elem, "imageSOP_UID") or "",
        inclusion=(_text(elem, "inclusion") or "TRUE").upper() != "FALSE",
        points=np.asarray(points, dtype=np.float64),
    )


def _parse_characteristics(elem: ET.Element | None, path: Path, what: str) -> dict[str, int]:
    out: dict[str, int] = {}
    if elem is None:
        return out
    for name in CHARACTERISTICS:
        text = _text(elem, name)
        if text:
            out[name] = int(_float(text, f"{name} in {what}", path))
    return out


def parse_lidc_xml(path: str | Path) -> LidcReads:
    """Parse an LIDC-IDRI reader XML file (namespace-agnostic). InputError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path=path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise InputError(f"not well-formed XML ({exc})", path=path) from exc
    if _local(root.tag) != "LidcReadMessage":
        raise InputError(f"not an LIDC read message (root element {_local(root.tag)!r})", path=path)
    header = next(iter(_kids(root, "ResponseHeader")), None)
    sessions = _kids(root, "readingSession")
    nodules: list[ReaderNodule] = []
    non_nodules: list[NonNodule] = []
    for reader, session in enumerate(sessions):
        for n_elem in _kids(session, "unblindedReadNodule"):
            nid = _text(n_elem, "noduleID") or f"reader{reader}-{len(nodules)}"
            what = f"reader {reader} nodule {nid!r}"
            rois = [_parse_roi(r, path, what) for r in _kids(n_elem, "roi")]
            if not rois:
                continue
            chars = _parse_characteristics(next(iter(_kids(n_elem, "characteristics")), None), path, what)
            nodules.append(ReaderNodule(reader=reader, nodule_id=nid, rois=rois, characteristics=chars))
        for nn in _kids(session, "nonNodule"):
            locus = next(iter(_kids(nn, "locus")), None)
            if locus is not None:
                nid, what = _text(nn, "nonNoduleID") or "", f"reader {reader} non-nodule"
                sop = _text(nn, "imageSOP_UID") or ""
                non_nodules.append(NonNodule(reader, nid, _z(nn, path, what), sop, _xy(locus, path, what)))
    return LidcReads(
        path=path,
        series_uid=None if header is None else _text(header, "SeriesInstanceUid"),
        study_uid=None if header is None else _text(header, "StudyInstanceUID"),
        n_readers=len(sessions),
        nodules=nodules,
        non_nodules=non_nodules,
    )


def find_lidc_xml(folder: str | Path) -> list[Path]:
    """LIDC reader XML files directly inside ``folder`` (sorted)."""

    def is_lidc(p: Path) -> bool:
        try:
            with p.open("rb") as fh:
                return b"LidcReadMessage" in fh.read(2048)
        except OSError:
            return False

    return [p for p in sorted(Path(folder).glob("*.xml")) if is_lidc(p)]


# ---------------------------------------------------------------------- placing in a volume
def _slice_locator(volume: Volume, mode: Literal["sop", "z"]) -> Callable[[LidcRoi], int | None]:
    """A function mapping an ROI to its slice index in ``volume`` (None when the volume lacks it)."""
    if mode == "sop":
        uids = {str(u): k for k, u in enumerate(volume.metadata.get("sop_instance_uids") or [])}
        return lambda roi: uids.get(roi.sop_uid)
    nz, ny, nx = volume.shape
    centre = [(k, (ny - 1) / 2.0, (nx - 1) / 2.0) for k in range(nz)]
    zs = volume.index_to_patient(np.asarray(centre, dtype=np.float64))[:, 2]
    step = abs(volume.spacing[0] * volume.direction[2, 0])
    tol = max(0.5 * step, 1e-3)

    def by_z(roi: LidcRoi) -> int | None:
        if roi.z_position is None:
            return None
        k = int(np.argmin(np.abs(zs - roi.z_position)))
        return k if abs(zs[k] - roi.z_position) <= tol else None

    return by_z


def _fill(polys: Sequence[NDArray[np.float64]], shape: tuple[int, int]) -> NDArray[np.bool_]:
    """Filled polygons (interior plus the outline's own pixels) on a (rows, cols) grid."""
    from skimage.draw import polygon

    out = np.zeros(shape, dtype=bool)
    for pts in polys:
        if len(pts) >= 3:
            rr, cc = polygon(pts[:, 0], pts[:, 1], shape=shape)
            out[rr, cc] = True
        ij = np.rint(pts).astype(int)
        ok = (ij[:, 0] >= 0) & (ij[:, 0] < shape[0]) & (ij[:, 1] >= 0) & (ij[:, 1] < shape[1])
        out[ij[ok, 0], ij[ok, 1]] = True
    return out


@dataclass
class _Mark:
    """A reader nodule placed in a volume."""

    nodule: ReaderNodule
    contours: dict[int, list[NDArray[np.float64]]]
    holes: dict[int, list[NDArray[np.float64]]]
    centroid: NDArray[np.float64]  # (z, y, x) index
    centroid_mm: NDArray[np.float64]
    dropped: int


def _reader_voxels(
    contours: dict[int, list[NDArray[np.float64]]],
    holes: dict[int, list[NDArray[np.float64]]],
    shape: tuple[int, int],
) -> NDArray[np.float64]:
    """(N, 3) (z, y, x) voxel indices inside one reader's outlines."""
    out = []
    for k, polys in contours.items():
        plane = _fill(polys, shape)
        if k in holes:
            plane &= ~_fill(holes[k], shape)
        rr, cc = np.nonzero(plane)
        out.append(np.column_stack([np.full(rr.size, k), rr, cc]))
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 3))


def _place(rn: ReaderNodule, volume: Volume, locate: Callable[[LidcRoi], int | None]) -> _Mark | None:
    contours: dict[int, list[NDArray[np.float64]]] = {}
    holes: dict[int, list[NDArray[np.float64]]] = {}
    dropped = 0
    for roi in rn.rois:
        k = locate(roi)
        if k is None:
            dropped += 1
            continue
        (contours if roi.inclusion else holes).setdefault(k, []).append(roi.points)
    if not contours:
        return None
    vox = _reader_voxels(contours, holes, volume.shape[1:])
    if len(vox) == 0:  # outline entirely outside the image plane
        return None
    centroid = vox.mean(axis=0)
    return _Mark(rn, contours, holes, centroid, volume.index_to_patient(centroid), dropped)


def _cluster(marks: list[_Mark], distance_mm: float) -> list[list[_Mark]]:
    """Complete-linkage clustering of marks by centroid distance; never two marks of one reader together."""
    pts = np.asarray([m.centroid_mm for m in marks]).reshape(-1, 3)
    dist = np.linalg.norm(pts[:, None, :] - pts[None, :, :], axis=-1)
    members = [[i] for i in range(len(marks))]
    while True:
        best: tuple[float, int, int] | None = None
        for a in range(len(members)):
            readers_a = {marks[i].nodule.reader for i in members[a]}
            for b in range(a + 1, len(members)):
                if readers_a & {marks[i].nodule.reader for i in members[b]}:
                    continue
                d = float(dist[np.ix_(members[a], members[b])].max())
                if d <= distance_mm and (best is None or d < best[0]):
                    best = (d, a, b)
        if best is None:
            break
        _, a, b = best
        members[a] = members[a] + members[b]
        del members[b]
    return [[marks[i] for i in sorted(group)] for group in members]


def _feret_mm(points_rc: NDArray[np.float64], spacing_rc: tuple[float, float]) -> float:
    """Largest distance (mm) between two outline points on one slice."""
    pts = points_rc * np.asarray(spacing_rc)[None, :]
    if len(pts) > 3:
        try:
            from scipy.spatial import ConvexHull

            pts = pts[ConvexHull(pts).vertices]
        except Exception:  # collinear/degenerate outlines: use all points
            pass
    diff = pts[:, None, :] - pts[None, :, :]
    return float(np.sqrt((diff**2).sum(-1)).max()) if len(pts) > 1 else 0.0


def _median_characteristics(marks: list[_Mark]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in CHARACTERISTICS:
        vals = [m.nodule.characteristics[name] for m in marks if name in m.nodule.characteristics]
        if vals:
            out[name] = float(np.median(vals))
    return out


def _to_nodule(cluster: list[_Mark], volume: Volume, source: str) -> Nodule:
    contours: dict[int, list[NDArray[np.float64]]] = {}
    reader_contours: dict[int, dict[int, list[NDArray[np.float64]]]] = {}
    reader_holes: dict[int, dict[int, list[NDArray[np.float64]]]] = {}
    for m in cluster:
        for k, polys in m.contours.items():
            contours.setdefault(k, []).extend(polys)
        reader_contours[m.nodule.reader] = m.contours
        if m.holes:
            reader_holes[m.nodule.reader] = m.holes
    voxels = [_reader_voxels(m.contours, m.holes, volume.shape[1:]) for m in cluster]
    union, votes = np.unique(np.concatenate(voxels), axis=0, return_counts=True)
    majority = union[votes >= (len(cluster) + 1) // 2]  # inside at least half the readers' outlines
    centre = (majority if len(majority) else union).mean(axis=0)
    extent = union.max(axis=0) - union.min(axis=0) + 1
    small = all(m.nodule.is_small for m in cluster)
    spacing_rc = (volume.spacing[1], volume.spacing[2])
    diameter = None if small else max(_feret_mm(np.concatenate(p), spacing_rc) for p in contours.values())
    reader_diameters = [
        round(max(_feret_mm(np.concatenate(p), spacing_rc) for p in m.contours.values()), 2)
        for m in cluster
        if not m.nodule.is_small
    ]
    ratings = [m.nodule.malignancy for m in cluster if m.nodule.malignancy is not None]
    return Nodule(
        center_voxel=(float(centre[0]), float(centre[1]), float(centre[2])),
        center_mm=tuple(float(v) for v in volume.index_to_patient(centre)),  # type: ignore[arg-type]
        diameter_mm=diameter,
        diameter_voxels=(float(extent[0]), float(extent[1]), float(extent[2])),
        malignancy=float(np.mean(ratings)) if ratings else None,
        source=source,
        contours=dict(sorted(contours.items())),
        extra={
            "n_readers": len(cluster),
            "readers": [m.nodule.reader for m in cluster],
            "reader_nodule_ids": [m.nodule.nodule_id for m in cluster],
            "characteristics": _median_characteristics(cluster),
            "small": small,
            "reader_diameters_mm": reader_diameters,
            "z_extent_mm": float(extent[0] * volume.spacing[0]),
            "rois_outside_volume": sum(m.dropped for m in cluster),
            "reader_contours": reader_contours,
            "reader_holes": reader_holes,
        },
    )


def group_nodules(
    reader_nodules: Sequence[ReaderNodule],
    volume: Volume,
    distance_mm: float = DEFAULT_DISTANCE_MM,
    match: Match = "auto",
    source: str = "lidc",
) -> list[Nodule]:
    """Cluster readers' marks into physical nodules located in ``volume``.

    ``match`` places outlines by SOP Instance UID ("sop"), by z position ("z"), or "auto": by UID when
    ``volume.metadata["sop_instance_uids"]`` exists and at least one outline matches, else by z. Outlines on
    slices the volume lacks are dropped (counted in ``extra["rois_outside_volume"]``); nodules left without
    any are dropped. Returned largest first (nodules < 3 mm, without a diameter, last).

    ``center_voxel`` is the centroid of the voxels inside at least half the readers' outlines;
    ``diameter_mm`` the largest in-plane distance between outline points of all readers on one slice
    (``extra["reader_diameters_mm"]`` per reader); ``diameter_voxels`` the (slices, rows, columns) extent.
    """
    mode: Literal["sop", "z"] = "z" if match == "auto" else match
    if match in ("auto", "sop") and volume.metadata.get("sop_instance_uids"):
        sop_locate = _slice_locator(volume, "sop")
        hits = sum(sop_locate(r) is not None for rn in reader_nodules for r in rn.rois)
        if hits or match == "sop":
            mode = "sop"
        else:
            log.warning("no LIDC outline matches the volume's SOP Instance UIDs; placing by z position")
    locate = _slice_locator(volume, mode)
    marks = [m for m in (_place(rn, volume, locate) for rn in reader_nodules) if m is not None]
    nodules = [_to_nodule(c, volume, source) for c in _cluster(marks, distance_mm)]
    nodules.sort(key=lambda n: (n.diameter_mm is None, -(n.diameter_mm or 0.0), n.center_voxel))
    for i, n in enumerate(nodules, start=1):
        n.nodule_id = str(i)
        n.extra["placed_by"] = mode
    return nodules


def load_lidc_annotations(
    xml_path: str | Path,
    volume: Volume,
    distance_mm: float = DEFAULT_DISTANCE_MM,
    match: Match = "auto",
    include_small: bool = True,
) -> list[Nodule]:
    """Physical nodules of an LIDC XML file inside ``volume`` (see :func:`group_nodules`)."""
    reads = parse_lidc_xml(xml_path)
    if reads.series_uid and volume.series_uid and reads.series_uid != volume.series_uid:
        log.warning(
            "LIDC XML %s is for series %s, volume is %s", reads.path.name, reads.series_uid, volume.series_uid
        )
    nodules = group_nodules(reads.nodules, volume, distance_mm, match, source=f"lidc:{reads.path.name}")
    if not include_small:
        nodules = [n for n in nodules if not n.extra.get("small")]
    for n in nodules:
        n.extra["n_readers_total"] = reads.n_readers
    return nodules


def nodule_mask(nodule: Nodule, volume: Volume, consensus: int = 1) -> NDArray[np.bool_]:
    """Boolean (z, y, x) mask of voxels inside the outlines of at least ``consensus`` readers.

    Uses ``extra["reader_contours"]`` (and holes) when present, else ``nodule.contours`` as one reader.
    """
    per_reader: dict[Any, dict[int, list[NDArray[np.float64]]]] = nodule.extra.get("reader_contours") or {
        0: nodule.contours
    }
    holes: dict[Any, dict[int, list[NDArray[np.float64]]]] = nodule.extra.get("reader_holes") or {}
    votes = np.zeros(volume.shape, dtype=np.int16)
    for reader, contours in per_reader.items():
        for k, polys in contours.items():
            if not 0 <= int(k) < volume.shape[0]:
                continue
            plane = _fill([np.asarray(p, dtype=np.float64) for p in polys], volume.shape[1:])
            if k in holes.get(reader, {}):
                plane &= ~_fill(holes[reader][k], volume.shape[1:])
            votes[int(k)] += plane
    return votes >= max(1, int(consensus))
