"""The one image type that flows through medforensics.

Index order is (z, y, x): slice (sorted ascending along the slice normal), row, column. Patient
coordinates are DICOM's LPS (x, y, z) in millimetres.

Geometry, as DICOM defines it:

* ``spacing``: (sz, sy, sx) in mm, one per array axis (slice spacing, row spacing, column spacing).
* ``origin``: patient (x, y, z) in mm of the centre of voxel (0, 0, 0).
* ``direction``: 3x3 matrix whose column ``k`` is the LPS unit vector along array axis ``k``
  (column 0: slice normal, column 1: down the rows = DICOM column cosines,
  column 2: along a row = DICOM row cosines).

So ``patient = origin + direction @ (spacing * index_zyx)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Modalities with physical pixel units (Hounsfield units for CT).
PHYSICAL_UNIT_MODALITIES = frozenset({"CT"})

#: Voxel sizes (mm) a CT series can have: outside them the geometry tags are malformed (a PixelSpacing of
#: 1e-9 mm made the scan's noise pass loop for minutes, one of 1e9 mm asked numpy for an impossible array,
#: session 24). Clinical CT: 0.2-1.5 mm pixels, slices 0.5-10 mm apart.
CT_VOXEL_MM = (0.1, 20.0)


def ct_voxel_reason(spacing: tuple[float, float, float]) -> str | None:
    """Why voxels of ``spacing`` (z, y, x mm) cannot be a CT's (None: they can)."""
    lo, hi = CT_VOXEL_MM
    if all(lo <= s <= hi for s in spacing):
        return None
    z, y, x = spacing
    return (
        f"voxels of {x:.3g} x {y:.3g} mm, slices {z:.3g} mm apart: outside the {lo:g}-{hi:g} mm of a CT "
        "(malformed spacing in the header?)"
    )


#: Direction of an axial image with no other geometry: slices along +z (feet to head), rows along +y
#: (anterior to posterior), columns along +x (right to left); the DICOM default orientation 1,0,0,0,1,0.
AXIAL_DIRECTION: NDArray[np.float64] = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


@dataclass(frozen=True)
class AxisMap:
    """How an axial view (:meth:`Volume.reoriented_axial`) relates to its source volume: view axis ``t`` is
    source axis ``axes[t]``, reversed where ``flipped[t]``; ``shape`` is the view's shape. Maps indices,
    end-exclusive boxes and arrays of the view back to the source's index order."""

    axes: tuple[int, int, int]
    flipped: tuple[bool, bool, bool]
    shape: tuple[int, int, int]

    @property
    def is_identity(self) -> bool:
        """True when the view is the source itself."""
        return self.axes == (0, 1, 2) and not any(self.flipped)

    def index_to_source(self, index_zyx: ArrayLike) -> NDArray[np.float64]:
        """Source (z, y, x) index of one or more view indices (fractional allowed)."""
        idx = np.asarray(index_zyx, dtype=np.float64)
        out = np.empty_like(idx)
        for t, (axis, flip) in enumerate(zip(self.axes, self.flipped, strict=True)):
            out[..., axis] = self.shape[t] - 1 - idx[..., t] if flip else idx[..., t]
        return out

    def voxel_to_source(self, index_zyx: ArrayLike) -> tuple[int, int, int]:
        """Source (z, y, x) voxel of one view voxel (rounded to whole voxels)."""
        z, y, x = (int(v) for v in np.rint(self.index_to_source(index_zyx)))
        return z, y, x

    def voxel_to_view(self, index_zyx: ArrayLike) -> tuple[int, int, int]:
        """View (z, y, x) voxel of one source voxel (rounded; the inverse of :meth:`voxel_to_source`)."""
        src = np.rint(np.asarray(index_zyx, dtype=np.float64))
        out = [
            self.shape[t] - 1 - src[axis] if flip else src[axis]
            for t, (axis, flip) in enumerate(zip(self.axes, self.flipped, strict=True))
        ]
        return int(out[0]), int(out[1]), int(out[2])

    def box_to_source(self, box: Sequence[int]) -> tuple[int, int, int, int, int, int]:
        """Source box (z0, y0, x0, z1, y1, x1; end exclusive) of a view box."""
        lo, hi = [0, 0, 0], [0, 0, 0]
        for t, (axis, flip) in enumerate(zip(self.axes, self.flipped, strict=True)):
            a, b = int(box[t]), int(box[t + 3])
            lo[axis], hi[axis] = (self.shape[t] - b, self.shape[t] - a) if flip else (a, b)
        return lo[0], lo[1], lo[2], hi[0], hi[1], hi[2]

    def array_to_source(self, array: NDArray[Any]) -> NDArray[Any]:
        """A 3-D array laid out like the view (a box of it, say) laid out like the source."""
        flipped = array[tuple(slice(None, None, -1) if f else slice(None) for f in self.flipped)]
        return np.ascontiguousarray(flipped.transpose(np.argsort(self.axes)))


@dataclass
class Volume:
    """Pixels plus geometry plus the source metadata (never the pixels of the source).

    ``array`` is always 3-D (a 2-D image is a volume of one slice) and float32 in physical units where the
    modality has them (HU for CT); for a long DICOM series read with ``stream_above`` it is a
    :class:`~medforensics.io.dicom_pixels.DicomPixels` that decodes the slices each access asks for
    (``array[z0:z1]``, ``array[k]``; ``np.asarray(array)`` for all). ``datasets`` holds the source DICOM
    datasets, one per slice in array order, with Pixel Data removed (empty for non-DICOM sources).
    ``metadata`` holds format-independent facts (for example ``series_uid``, ``study_uid``,
    ``patient_hash``, ``source_format``, ``warnings``).
    """

    array: NDArray[np.float32]
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: NDArray[np.float64] = field(default_factory=lambda: AXIAL_DIRECTION.copy())
    modality: str = "OT"
    source: Path | None = None
    datasets: list[Any] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not getattr(self.array, "is_lazy", False):  # a lazy array (DicomPixels) decodes on access
            arr = np.asarray(self.array)
            if arr.ndim == 2:
                arr = arr[None]
            if arr.ndim != 3:
                raise ValueError(f"Volume array must be 2-D or 3-D, got shape {arr.shape}")
            self.array = arr.astype(np.float32, copy=False)
        self.spacing = tuple(float(s) for s in self.spacing)  # type: ignore[assignment]
        self.origin = tuple(float(o) for o in self.origin)  # type: ignore[assignment]
        self.direction = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)
        self.modality = (self.modality or "OT").upper()

    # ------------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape (z, y, x)."""
        z, y, x = self.array.shape
        return int(z), int(y), int(x)

    @property
    def is_2d(self) -> bool:
        """True for a single image (one slice)."""
        return self.shape[0] == 1

    @property
    def image_shapes(self) -> list[tuple[int, int]]:
        """(rows, columns) of each slice's own image: in a series of projection radiographs of different
        sizes (``metadata["image_shapes"]``; the DICOM reader puts each top left in an array as large as the
        largest) their own sizes, else the array's for every slice."""
        own = self.metadata.get("image_shapes")
        if own and len(own) == self.shape[0]:
            return [(int(r), int(c)) for r, c in own]
        return [(self.shape[1], self.shape[2])] * self.shape[0]

    @property
    def series_uid(self) -> str | None:
        """SeriesInstanceUID where known."""
        uid = self.metadata.get("series_uid")
        return str(uid) if uid else None

    @property
    def affine(self) -> NDArray[np.float64]:
        """4x4 matrix mapping homogeneous (z, y, x, 1) indices to LPS (x, y, z, 1) in mm."""
        out = np.eye(4)
        out[:3, :3] = self.direction * np.asarray(self.spacing)[None, :]
        out[:3, 3] = self.origin
        return out

    # ------------------------------------------------------------------ geometry
    def index_to_patient(self, index_zyx: ArrayLike) -> NDArray[np.float64]:
        """Patient LPS (x, y, z) mm of one or more (z, y, x) indices (fractional allowed)."""
        idx = np.asarray(index_zyx, dtype=np.float64)
        pts = idx.reshape(-1, 3) * np.asarray(self.spacing)[None, :]
        out = pts @ self.direction.T + np.asarray(self.origin)[None, :]
        return out.reshape(idx.shape)

    def patient_to_index(self, point_xyz: ArrayLike) -> NDArray[np.float64]:
        """Fractional (z, y, x) index of one or more patient LPS (x, y, z) mm points."""
        pts = np.asarray(point_xyz, dtype=np.float64)
        rel = pts.reshape(-1, 3) - np.asarray(self.origin)[None, :]
        idx = np.linalg.solve(self.direction, rel.T).T / np.asarray(self.spacing)[None, :]
        return idx.reshape(pts.shape)

    def contains_index(self, index_zyx: ArrayLike, margin: ArrayLike = 0) -> bool:
        """True if the index lies inside the array, at least ``margin`` voxels from every border."""
        idx = np.asarray(index_zyx, dtype=np.float64)
        m = np.broadcast_to(np.asarray(margin, dtype=np.float64), (3,))
        upper = np.asarray(self.shape, dtype=np.float64) - 1 - m
        return bool(np.all(idx >= m) and np.all(idx <= upper))

    def reoriented_axial(self) -> Volume:
        """This volume permuted/flipped to the closest axial orientation: axis 0 along +z (feet to head),
        axis 1 along +y (anterior to posterior), axis 2 along +x (right to left).

        This is the orientation of a standard axial DICOM series (and the order a DICOM series reads back
        in), so volumes from NIfTI/MetaImage keep their z indices when written as DICOM, and display like a
        radiologist expects. Oblique volumes keep their exact geometry (only axes are permuted/flipped).
        Returns ``self`` when already axial.
        """
        d = self.direction
        amap = self.axial_axes()
        order, flips = list(amap.axes), list(amap.flipped)
        if amap.is_identity:
            return self
        if self.datasets and (order[0] != 0 or flips[0]):
            raise ValueError("cannot reorient the slice axis of a volume with per-slice DICOM datasets")
        direction = d[:, order].copy()
        spacing = tuple(self.spacing[k] for k in order)
        array: Any = self.array
        lazy = getattr(array, "is_lazy", False)
        if lazy and order != [0, 1, 2]:  # a lazy array reads z-ranges: another slice axis needs it whole
            array, lazy = np.asarray(array), False
        if not lazy:
            array = array.transpose(order)
        origin = np.asarray(self.origin, dtype=np.float64)
        for t, flip in enumerate(flips):
            if flip:
                origin = origin + direction[:, t] * spacing[t] * (array.shape[t] - 1)
                direction[:, t] *= -1
        if lazy:
            array = array.flipped(flips)  # still read a z-range at a time
        else:
            array = np.ascontiguousarray(
                array[tuple(slice(None, None, -1) if f else slice(None) for f in flips)]
            )
        return replace(
            self,
            array=array,
            spacing=spacing,  # type: ignore[arg-type]
            origin=(float(origin[0]), float(origin[1]), float(origin[2])),
            direction=direction,
            metadata={**self.metadata, "reoriented": {"axes": order, "flipped": flips}},
        )

    def axial_axes(self) -> AxisMap:
        """How :meth:`reoriented_axial` lays this volume out: which array axis becomes each axis of the
        axial view and which are reversed (the identity when the volume is already axial)."""
        d = self.direction
        patient_axis: dict[int, int] = {}
        for k in sorted(range(3), key=lambda k: -float(np.abs(d[:, k]).max())):
            free = [int(p) for p in np.argsort(-np.abs(d[:, k])) if int(p) not in patient_axis.values()]
            patient_axis[k] = free[0]
        target = {2: 0, 1: 1, 0: 2}  # patient axis z/y/x -> array position 0/1/2
        order = sorted(range(3), key=lambda k: target[patient_axis[k]])
        flips = [float(d[patient_axis[k], k]) < 0 for k in order]
        shape = self.shape
        return AxisMap(
            (order[0], order[1], order[2]),
            (flips[0], flips[1], flips[2]),
            (shape[order[0]], shape[order[1]], shape[order[2]]),
        )

    # ------------------------------------------------------------------ copies
    def with_array(self, array: NDArray[Any], **changes: Any) -> Volume:
        """A copy with new pixels (same geometry and metadata unless overridden)."""
        if np.asarray(array).shape != self.array.shape:
            if "spacing" not in changes:
                raise ValueError("with_array: new array has another shape; pass the new geometry too")
            if "image_shapes" in self.metadata and "metadata" not in changes:  # sizes of the old images
                changes["metadata"] = {k: v for k, v in self.metadata.items() if k != "image_shapes"}
        return replace(self, array=np.asarray(array, dtype=np.float32), **changes)

    def copy(self) -> Volume:
        """A deep copy of the pixels; metadata containers are copied shallowly."""
        return replace(
            self,
            array=self.array.copy(),
            direction=self.direction.copy(),
            datasets=list(self.datasets),
            metadata=dict(self.metadata),
        )

    def summary(self) -> dict[str, Any]:
        """Loggable description: no patient identifiers."""
        return {
            "source": str(self.source) if self.source else None,
            "series_uid": self.series_uid,
            "modality": self.modality,
            "shape": list(self.shape),
            "spacing_mm": [round(s, 4) for s in self.spacing],
        }
