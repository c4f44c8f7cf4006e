"""Mirror views only where they can matter: a one-view map refined to the mean of several views in boxes.

A calibration with ``"views": 4`` makes ``scan`` average the dense map over four in-plane mirror views
(:data:`~medforensics.models.tamperseg.VIEWS`; 8 adds their transposes), at four times the network's work. The
series verdict only reads the map where its evidence reaches the operating threshold ``t`` (raw, before
Platt), and every view's evidence is at most 1, so where the mean of ``n`` views reaches ``t`` the first view
alone reaches ``n * t - (n - 1)`` (with ``n = 4`` and ``t = 0.97``: 0.88). The scan therefore draws the first
view over the whole lung box, and the other views only in boxes around the voxels whose first-view evidence
reaches a screen level at or below that bound (:meth:`~medforensics.scan.detector.Calibration.screen_level`):
a flagged region gets the same mean as a full four-view pass (up to the crop's edges, kept
:data:`REFINE_CONTEXT` away), and an authentic series whose first view stays below the screen costs one view.
Elsewhere the map is the first view's.

Each box is cropped from the network input with :data:`REFINE_CONTEXT` voxels of context, on the pooling
grid the full pass uses in that view (a flipped axis is aligned at its far end, where the flipped volume
starts), so inside the box only the crop's edges, beyond the network's effective reach, can differ from
the full pass. Session 64 measured both on the bundled detector: the same verdict for every series of the
whole-series benchmarks, in about two thirds of the time (``benchmarks/scan_accuracy/bundle16/README.md``,
"Four views under a screen"; ``benchmarks/scan_speed.md``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from scipy import ndimage

from medforensics.models.tamperseg import VIEWS, TamperSegNet, View, predict_map

#: Context (model-grid voxels, z, y, x) around a refined box that is cropped with it: the bundled network
#: changes its logits by more than 1e-3 up to 11 slices and 31 pixels from a strong one-voxel change (its
#: full reach is 30 and 53; session 64).
REFINE_CONTEXT = (16, 32, 32)
#: Above this fraction of the volume in crops (per view) the other views run over the whole volume instead.
WHOLE_ABOVE = 0.6

Box = list[tuple[int, int]]


def _overlap(a: Box, b: Box, context: tuple[int, ...]) -> bool:
    """Whether boxes ``a`` and ``b``, each ``context`` wider per side, overlap."""
    spans = zip(a, b, context, strict=True)
    return all(a0 - c < b1 + c and b0 - c < a1 + c for (a0, a1), (b0, b1), c in spans)


def _size(box: Box, context: tuple[int, ...]) -> int:
    return int(np.prod([hi - lo + 2 * c for (lo, hi), c in zip(box, context, strict=True)]))


def _merge(boxes: list[Box], context: tuple[int, ...]) -> list[Box]:
    """Union boxes that overlap (each is written once), and those whose crops (``context`` wider) overlap
    where one crop of the union is smaller than the two, until no more do."""
    out = [list(b) for b in boxes]
    none = (0,) * len(context)

    def joins(a: Box, b: Box) -> bool:
        if _overlap(a, b, none):
            return True
        union = [(min(a0, b0), max(a1, b1)) for (a0, a1), (b0, b1) in zip(a, b, strict=True)]
        return _overlap(a, b, context) and _size(union, context) <= _size(a, context) + _size(b, context)

    i = 0
    while i < len(out):
        j = next((j for j in range(len(out)) if j != i and joins(out[i], out[j])), None)
        if j is None:
            i += 1
            continue
        out[i] = [(min(a0, b0), max(a1, b1)) for (a0, a1), (b0, b1) in zip(out[i], out[j], strict=True)]
        del out[j]
        i = 0  # a grown box may now join one already passed
    return out


def refine_boxes(
    where: NDArray[np.bool_], reach: tuple[int, int, int], context: tuple[int, int, int] = REFINE_CONTEXT
) -> list[Box]:
    """Disjoint boxes ``[(lo, hi)] * 3`` covering every voxel within ``reach`` of ``where``'s voxels (see
    :func:`_merge` for when two become one)."""
    boxes: list[Box] = []
    for sl in ndimage.find_objects(ndimage.label(where)[0]):
        if sl is not None:
            spans = zip(sl, reach, where.shape, strict=True)
            boxes.append([(max(0, s.start - r), min(n, s.stop + r)) for s, r, n in spans])
    return _merge(boxes, context)


def _crop(
    box: Box,
    shape: tuple[int, ...],
    view: View,
    multiple: tuple[int, ...],
    context: tuple[int, ...],
) -> Box:
    """The crop of ``box`` plus ``context`` on the pooling grid of ``view``: an axis the view keeps starts
    on a multiple, a flipped one ends where the whole axis does, modulo the multiple (a transposed view
    only swaps in-plane axes, whose multiples are equal)."""
    flipped = {d % 3 for d in view.flips}
    crop = []
    for ax, ((lo, hi), c, n, m) in enumerate(zip(box, context, shape, multiple, strict=True)):
        lo, hi = max(0, lo - c), min(n, hi + c)
        if ax in flipped:
            hi = min(n, hi + (n - hi) % m)
        else:
            lo -= lo % m
        crop.append((lo, hi))
    return crop


@torch.no_grad()
def refine_views(
    model: TamperSegNet,
    image: torch.Tensor,
    prob: torch.Tensor,
    where: NDArray[np.bool_],
    views: int,
    reach: tuple[int, int, int],
    precision: str = "bf16",
    context: tuple[int, int, int] = REFINE_CONTEXT,
) -> dict[str, Any]:
    """Replace the first-view probabilities ``prob`` ``(K, D, H, W)`` of ``image`` ``(C, D, H, W)`` in place
    by the mean over ``views`` in-plane views wherever a voxel lies within ``reach`` of ``where``. Returns
    what was done: the boxes and the fraction of the volume each further view scored."""
    shape = tuple(prob.shape[1:])
    others = VIEWS[1:views]
    boxes = refine_boxes(where, reach, context) if others else []
    total = float(np.prod(shape))
    crops = [[_crop(b, shape, d, model.multiple, context) for d in others] for b in boxes]
    share = sum(float(np.prod([hi - lo for lo, hi in c[0]])) for c in crops) / total if crops else 0.0
    if share >= WHOLE_ABOVE:  # most of the volume: one pass per view, no crop edges
        rest = predict_map(model, image, precision=precision, chosen=others)
        prob.mul_(1.0 / views).add_(rest, alpha=(views - 1) / views)
        return {"boxes": len(boxes), "scored": 1.0}
    for box, per_view in zip(boxes, crops, strict=True):
        inner = tuple(slice(lo, hi) for lo, hi in box)
        acc = prob[(slice(None), *inner)].clone()
        for view, crop in zip(others, per_view, strict=True):
            sub = image[(slice(None), *(slice(lo, hi) for lo, hi in crop))]
            p = predict_map(model, sub, precision=precision, chosen=(view,))
            keep = (slice(lo - c0, hi - c0) for (lo, hi), (c0, _) in zip(box, crop, strict=True))
            acc += p[(slice(None), *keep)]
        prob[(slice(None), *inner)] = acc / views
    return {"boxes": len(boxes), "scored": round(share, 4)}


def screened_map(
    model: TamperSegNet,
    image: torch.Tensor | NDArray[Any],
    spacing: tuple[float, float, float],
    views: int,
    screen: float | None,
    precision: str = "bf16",
    zone: NDArray[np.bool_] | None = None,
) -> tuple[torch.Tensor, dict[str, Any] | None]:
    """Class probabilities of ``image`` over ``views`` in-plane views, the views after the first drawn only
    within :data:`~medforensics.models.tamperseg.CENTRE_REACH_MM` of the voxels (inside ``zone``, if given)
    whose first-view evidence reaches ``screen`` (None: every view everywhere). Returns them and
    :func:`refine_views`'s account with the screen (None without one)."""
    from medforensics.models.tamperseg import CENTRE_REACH_MM, tamper_evidence

    image = torch.as_tensor(image, dtype=torch.float32)  # no copy of a float32 array
    if screen is None or views == 1:
        return predict_map(model, image, precision=precision, views=views), None
    prob = predict_map(model, image, precision=precision, views=1)
    where = tamper_evidence(prob, spacing).numpy() >= screen
    if zone is not None:
        where &= zone
    reach = tuple(int(np.ceil(CENTRE_REACH_MM / s)) for s in spacing)
    done = refine_views(model, image, prob, where, views, reach, precision)  # type: ignore[arg-type]
    return prob, {"screen": round(screen, 4), **done}
