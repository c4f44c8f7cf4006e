"""One DICOM series stored across several folders, joined again.

Discovery groups files by (folder, SeriesInstanceUID), so a copy of a series' file kept elsewhere (CT-GAN's
template slice, a duplicate export) is a series of its own instead of being merged silently. But CD and PACS
exports also split one long series over folders (``DIR000``, ``DIR001``, ... every N files), and each part
was then scanned as a series of its own: a tampered series could come out authentic in the part without the
edit. :func:`join_split_series` joins the parts of a series when, together, they are one regular stack:
single-frame slices of one size and orientation, no SOP instance twice, and slice positions that step evenly
with no slice twice. A stray copy (a slice far from the rest, or the same slice again) leaves the parts as
they were.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from medforensics.io.dicom_frames import single_frame_geometry

#: Gaps between neighbouring slices may differ from their median by this fraction and still be one stack.
GAP_TOLERANCE = 0.1


class StackSlice(NamedTuple):
    """What joining needs of a file: its size, orientation, position and SOP instance (discovery keeps this,
    not the file's header: an archive of a million files would otherwise hold gigabytes of headers)."""

    size: tuple[int, int]
    orientation: NDArray[np.float64]
    position: NDArray[np.float64]
    sop: str


def stack_slice(ds: Any) -> StackSlice | None:
    """A single-frame slice's size, orientation, position and SOP instance (as the reader's
    :func:`~medforensics.io.dicom_frames.frame_infos` reads them), or None, also for values that do not
    parse: the reader reports those, discovery only declines to join."""
    try:
        geometry = single_frame_geometry(ds)
        size = (int(ds.get("Rows", 0)), int(ds.get("Columns", 0)))
    except (ValueError, TypeError, OverflowError):
        return None
    if geometry is None:
        return None
    position, orientation, sop = geometry
    if position is None or orientation is None or not sop:
        return None
    return StackSlice(size, orientation, position, sop)


def one_stack(found: list[StackSlice | None]) -> bool:
    """Whether ``found`` (:func:`stack_slice` of one series' files) is one regular stack of distinct
    slices."""
    slices = [s for s in found if s is not None]
    if len(slices) < 2 or len(slices) < len(found):
        return False
    first = slices[0]
    same = (s.size == first.size and np.allclose(s.orientation, first.orientation, atol=1e-4) for s in slices)
    if not all(same):
        return False
    if len({s.sop for s in slices}) != len(slices):
        return False  # the same instance twice: a copy, not a part
    normal = np.cross(first.orientation[:3], first.orientation[3:])
    gaps = np.diff(np.sort([float(np.dot(normal, s.position)) for s in slices]))
    step = float(np.median(gaps))
    return step > 0 and bool(np.all(np.abs(gaps - step) <= GAP_TOLERANCE * step))


def join_split_series(groups: dict[tuple[Path, str], list[Any]]) -> dict[tuple[Path, str], list[Any]]:
    """``groups`` ((folder, series UID) -> members ``(path, stack_slice, ...)``) with the folder parts of each
    series joined under their folders' common parent where they are one stack together (:func:`one_stack`).
    Parts are taken in folder order, each joined to the first earlier stack it extends; a part that extends
    none (a copy, a stray slice) stays a series of its own, as do file-keyed series (``file:...``)."""
    by_uid: dict[str, list[tuple[Path, str]]] = {}
    for key in sorted(groups, key=lambda k: str(k[0])):
        if not key[1].startswith("file:"):
            by_uid.setdefault(key[1], []).append(key)
    out = dict(groups)
    for uid, keys in by_uid.items():
        stacks: list[list[tuple[Path, str]]] = []
        for key in keys:
            for stack in stacks:
                if one_stack([m[1] for k in (*stack, key) for m in groups[k]]):
                    stack.append(key)
                    break
            else:
                stacks.append([key])
        for stack in (s for s in stacks if len(s) > 1):
            for k in stack:
                del out[k]
            joined = [m for k in stack for m in groups[k]]
            out[(Path(os.path.commonpath([k[0] for k in stack])), uid)] = joined
    return out
