"""Clone-stamp (duplicated region) detection: the same noise in two places of one CT series.

A scanner's quantum noise is independent from voxel to voxel, so no two regions of an authentic series share
it. An attacker who hides a nodule under lung copied from elsewhere in the same series (``clone-remove``:
voxel for voxel, turned or flipped in-plane, levelled) moves that noise along, and the tamper network, which
reads noise statistics, sees nothing wrong there (session 39: 0 of 40 whole series). This module finds the
copy directly, as copy-move forensics does for photographs (Fridrich et al. 2003; keypoints as in Amerini et
al. 2011):

1. per slice, the in-plane high-pass residual of the image (less its Gaussian low-pass); keypoints are the
   local maxima of the smoothed residual above :data:`KEYPOINT_SD` robust standard deviations, inside the
   lungs (an 11 x 11 window of air the body encloses: vessels and edges, which repeat across anatomy, are
   left out);
2. the descriptor is the 11 x 11 residual patch in a canonical pose of its eight in-plane turns and flips,
   so a turned copy gets the same descriptor; what all descriptors share (a blob at the centre) is removed;
3. descriptors are hashed (random hyperplanes) and pairs in one bucket that correlate at least
   :data:`MIN_CORRELATION` and lie :data:`MIN_OFFSET_MM` apart in-plane are matches (unrelated noise
   patches correlate at about 0 +- 0.09);
4. matches with the same slice offset whose two ends lie near those of another are one candidate; with at
   least :data:`MIN_MATCHES` matches of mean correlation :data:`CLONE_CORRELATION`, its two ends are mapped
   onto each other voxel for voxel and it is a clone when their residuals agree over at least
   :data:`MIN_AGREE_MM2` (a copy shares a whole region, anatomy that looks alike the pixels around a few
   keypoints; in session 40's 27 authentic views no group met both rules, the removals found shared 247
   mm^2 or more; ``benchmarks/scan_accuracy/README.md``). Which end is
   the copy: the one whose edge (where the two ends only partly agree) is denser, since a copy is levelled
   to the denser lung around what it hides (:func:`~medforensics.scan.clone_ends.compare_ends`).

It is not proof against every clone: fresh noise added over the copy, as much as the scanner's, hides it
(tested; ``benchmarks/clone_margins.py`` measures how much is tolerated), and so does resampling the copy
(``copy-move`` resamples, and is not found by this check).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from medforensics.io.volume import Volume
from medforensics.scan.clone_ends import Agreement, compare_ends, residual
from medforensics.scan.result import Finding, SeriesResult

#: Keypoints: smoothed-residual maxima above this many robust standard deviations of the slice's.
KEYPOINT_SD = 1.5
#: Patch side (pixels) of the descriptor.
PATCH = 11
#: Keypoints are maxima of the smoothed residual over a window of this side (pixels, odd, <= PATCH).
PEAK = 3
#: Main directions shared by all descriptors, removed before matching.
SHARED_COMPONENTS = 8
#: Descriptor correlation a match needs.
MIN_CORRELATION = 0.8
#: Matches closer than this in-plane are neighbours of one another, not copies.
MIN_OFFSET_MM = 5.0
#: Matches a clone needs, their mean correlation, and the area (mm^2, summed over slices) where the two
#: ends, mapped voxel for voxel, have the same residual (``clone_ends.AGREE_CORRELATION``).
MIN_MATCHES, CLONE_CORRELATION, MIN_AGREE_MM2 = 2, 0.9, 200.0
#: Matches whose ends lie within this distance (mm) of another match's ends belong to the same clone.
LINK_MM = 20.0
#: Slices read at a time.
CHUNK = 16
#: Keypoints whose eight poses are compared at a time (bounds the memory of a large image's search).
POSE_CHUNK = 8192
#: Hash tables, and bits per table (more for series with over 65 000 keypoints).
TABLES, BITS = 8, 12
#: At most this many matches are grouped into clones (the strongest).
MAX_LINKED = 5000
#: Buckets larger than this are skipped (flat, clipped regions; not noise).
MAX_BUCKET = 64


@dataclass(frozen=True)
class Clone:
    """One duplicated region: ``source`` and ``copy`` centres and boxes (z, y, x voxels, box end exclusive;
    which is which is a judgement, see the module docs), the number of matched keypoints, their mean
    correlation, how much denser (HU) the copy's edge is than the source's, and the area (mm^2, summed over
    slices) where the two ends carry the same noise."""

    source: tuple[int, int, int]
    copy: tuple[int, int, int]
    source_box: tuple[int, int, int, int, int, int]
    copy_box: tuple[int, int, int, int, int, int]
    matches: int
    correlation: float
    edge_hu_difference: float
    agreeing_mm2: float
    #: the copy's edge detail over the source's (band-pass energy where the ends only partly agree; see
    #: ``clone_ends.Agreement``): over 1 where the copy's edge cuts the anatomy it was pasted into
    edge_seam_ratio: float = 1.0

    @property
    def offset(self) -> tuple[int, int, int]:
        """``copy - source`` (voxels)."""
        return tuple(int(c - s) for c, s in zip(self.copy, self.source, strict=True))  # type: ignore[return-value]


def _poses(p: NDArray[np.float32]) -> Iterator[NDArray[np.float32]]:
    """The eight in-plane rotations and flips of patches ``(..., n, n)``."""
    for flip in (False, True):
        q = p[..., ::-1] if flip else p
        for k in range(4):
            yield np.rot90(q, k, axes=(-2, -1))


#: Where on a slice keypoints may lie: the box to search (rows, columns) and, over the whole slice, the
#: pixels allowed (a keypoint's whole patch must lie in them); None: nowhere.
Window = Callable[[NDArray[np.float32]], "tuple[slice, slice, NDArray[np.bool_]] | None"]


def _lung_window(img: NDArray[np.float32]) -> tuple[slice, slice, NDArray[np.bool_]] | None:
    """The box (plus a margin) of the air the body encloses on one slice (lungs, airways) and that air, not
    clipped (over -1010 HU), or None."""
    air = img < -500
    lab, n = ndimage.label(air[::2, ::2])  # at half resolution: the parts, not their edges, matter here
    if n == 0:
        return None
    border = np.unique(np.r_[lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    enclosed = np.ones(n + 1, bool)
    enclosed[border] = False
    half = enclosed[lab]
    inside = air & np.repeat(np.repeat(half, 2, 0), 2, 1)[: img.shape[0], : img.shape[1]]
    rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
    if len(rows) == 0:
        return None
    m = PATCH
    ys = slice(max(0, int(rows[0]) - m), min(img.shape[0], int(rows[-1]) + m + 1))
    xs = slice(max(0, int(cols[0]) - m), min(img.shape[1], int(cols[-1]) + m + 1))
    return ys, xs, inside & (img > -1010)


def _slice_keypoints(
    img: NDArray[np.float32],
    rng_vec: NDArray[np.float32],
    window: Window | None = None,
    min_sd: float = KEYPOINT_SD,
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Keypoints (row, col) of one slice and their canonical, normalised descriptors (n, PATCH * PATCH);
    ``window`` says where keypoints may lie (default :func:`_lung_window`); ``min_sd``: how far above the
    noise a keypoint's smoothed residual must rise (robust standard deviations)."""
    none = np.zeros((0, 2), np.int64), np.zeros((0, PATCH * PATCH), np.float32)
    found = (window or _lung_window)(img)
    if found is None:
        return none
    ys, xs, inside = found
    img, inside = img[ys, xs], inside[ys, xs]
    h = PATCH // 2
    res = residual(img, truncate=3.0)
    smooth = ndimage.gaussian_filter(res, 1.2, mode="nearest", truncate=3.0)
    # the whole window where keypoints may lie (CT: in air the body encloses, not clipped; vessels and edges
    # repeat across anatomy)
    aerated = ndimage.minimum_filter(inside, PATCH)
    aerated[:h] = aerated[-h:] = False
    aerated[:, :h] = aerated[:, -h:] = False
    if aerated.sum() < 64:
        return none
    vals = smooth[aerated]
    sd = 1.4826 * float(np.median(np.abs(vals - np.median(vals))))
    if sd <= 1e-3:  # flat (clipped or synthetic) slice: no noise to match
        return none
    pts = np.argwhere(aerated & (smooth > min_sd * sd))
    # local maxima (PEAK x PEAK) among those: looked at only there (the window fits, as PEAK <= PATCH)
    q = PEAK // 2
    around = np.lib.stride_tricks.sliding_window_view(smooth, (PEAK, PEAK))[pts[:, 0] - q, pts[:, 1] - q]
    pts = pts[smooth[pts[:, 0], pts[:, 1]] >= around.max(axis=(1, 2))]
    if len(pts) == 0:
        return none
    win = np.lib.stride_tricks.sliding_window_view(res, (PATCH, PATCH))
    desc = np.empty((len(pts), PATCH * PATCH), np.float32)
    # a radiograph has 10^5 keypoints: their 8 poses a chunk at a time
    for k in range(0, len(pts), POSE_CHUNK):
        at = pts[k : k + POSE_CHUNK]
        patches = win[at[:, 0] - h, at[:, 1] - h].astype(np.float32)  # (n, PATCH, PATCH)
        variants = np.stack([v.reshape(len(at), -1) for v in _poses(patches)], 1)  # (n, 8, PATCH^2)
        best = np.argmax(variants @ rng_vec, axis=1)
        desc[k : k + len(at)] = variants[np.arange(len(at)), best]
    desc = desc - desc.mean(1, keepdims=True)
    desc /= np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-6)
    return pts + np.array([ys.start, xs.start]), desc.astype(np.float32)


def _decorrelate(desc: NDArray[np.float32]) -> NDArray[np.float32]:
    """Descriptors less what all keypoints share: their mean and :data:`SHARED_COMPONENTS` main directions
    (every keypoint is a blob at its patch's centre, so raw patches of unrelated places correlate at about
    0.8), then normalised again."""
    d = desc - desc.mean(0, keepdims=True)
    _, vecs = np.linalg.eigh(d.T @ d)  # ascending: the main directions are the last columns
    top = vecs[:, -SHARED_COMPONENTS:].T
    d = d - (d @ top.T) @ top
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-6)
    return d.astype(np.float32)


def _matches(
    desc: NDArray[np.float32], rng: np.random.Generator
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Index pairs (i < j) that share a bucket in at least one hash table (buckets over
    :data:`MAX_BUCKET` skipped) and correlate at least :data:`MIN_CORRELATION`, with that correlation."""
    n = len(desc)
    codes, corrs = [], []
    bits = max(BITS, int(np.ceil(np.log2(max(n, 1) / 16))))  # about 16 keypoints a bucket or fewer
    weights = 1 << np.arange(bits, dtype=np.int64)
    for _ in range(TABLES):
        planes = rng.standard_normal((desc.shape[1], bits)).astype(np.float32)
        keys = ((desc @ planes) > 0).astype(np.int64) @ weights
        order = np.argsort(keys, kind="stable")
        sk = keys[order]
        starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
        runs = np.diff(np.r_[starts, n])
        # how many later elements share each element's bucket (buckets over MAX_BUCKET: none); the
        # elements with at least ``gap`` of them shrink as the gap grows, so each gap looks only at those
        after = np.where(runs <= MAX_BUCKET, runs, 0).repeat(runs) - (np.arange(n) - starts.repeat(runs)) - 1
        cand = np.flatnonzero(after >= 1)
        for gap in range(1, min(MAX_BUCKET, n)):
            cand = cand[after[cand] >= gap]
            if not len(cand):
                break
            a, b = order[cand], order[cand + gap]
            c = np.einsum("ij,ij->i", desc[a], desc[b])
            keep = c >= MIN_CORRELATION
            codes.append(np.minimum(a, b)[keep] * n + np.maximum(a, b)[keep])
            corrs.append(c[keep])
    if not codes:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    u, first = np.unique(np.concatenate(codes), return_index=True)
    return np.stack([u // n, u % n], 1), np.concatenate(corrs)[first]


class Keypoints:
    """A series' keypoints and descriptors, gathered slice by slice: :meth:`add` is a slab callback, so a
    scan that reads the series once for its network gathers them in the same pass. ``window``: where on a
    slice keypoints may lie (default: the lungs); ``keep``: which of a slice's descriptors to keep;
    ``min_sd``: the keypoints' threshold (default :data:`KEYPOINT_SD`)."""

    def __init__(
        self,
        seed: int = 0,
        window: Window | None = None,
        keep: Callable[[NDArray[np.float32]], NDArray[np.bool_]] | None = None,
        min_sd: float = KEYPOINT_SD,
    ) -> None:
        self.window, self.keep, self.min_sd = window, keep, min_sd
        self.rng = np.random.default_rng(seed)
        self.rng_vec = self.rng.standard_normal(PATCH * PATCH).astype(np.float32)
        self.pts: list[NDArray[np.int64]] = []
        self.desc: list[NDArray[np.float32]] = []
        self.done: set[int] = set()

    def add(self, z0: int, block: Any) -> None:
        """Slices ``z0, z0 + 1, ...`` of ``block`` (z, y, x; HU); a slice seen before is skipped. The slices
        are searched on :func:`~medforensics._threads.thread_map`'s threads, their results kept in order."""
        from medforensics._threads import thread_map

        todo = [
            (z0 + k, img) for k, img in enumerate(np.asarray(block, np.float32)) if z0 + k not in self.done
        ]
        found = thread_map(lambda zi: _slice_keypoints(zi[1], self.rng_vec, self.window, self.min_sd), todo)
        for (z, _), (pts, desc) in zip(todo, found, strict=True):
            if self.keep is not None and len(desc):
                kept = self.keep(desc)
                pts, desc = pts[kept], desc[kept]
            self.done.add(z)
            self.pts.append(np.column_stack([np.full(len(pts), z), pts]).astype(np.int64))
            self.desc.append(desc)

    def clones(
        self,
        array: Any,
        spacing: tuple[float, float, float],
        min_agree_mm2: float | None = None,
        b_is_copy: Callable[[Agreement], bool] | None = None,
    ) -> list[Clone]:
        """The clones among the keypoints gathered from ``array`` (read again only where one is found), whose
        ends agree over at least ``min_agree_mm2`` (default :data:`MIN_AGREE_MM2`); ``b_is_copy`` says from
        two ends' :class:`~medforensics.scan.clone_ends.Agreement` whether end ``b`` is the copy (default
        :func:`denser_edge`)."""
        shape = tuple(int(v) for v in array.shape)
        pts = np.concatenate(self.pts) if self.pts else np.zeros((0, 3), np.int64)
        desc = np.concatenate(self.desc) if self.desc else np.zeros((0, PATCH * PATCH), np.float32)
        if len(pts) < 2 * MIN_MATCHES:
            return []
        pairs, corr = _matches(_decorrelate(desc), self.rng)
        sp = np.asarray(spacing, np.float64)
        inplane = np.linalg.norm((pts[pairs[:, 0], 1:] - pts[pairs[:, 1], 1:]) * sp[1:], axis=1)
        good = inplane >= MIN_OFFSET_MM
        pairs, corr = pairs[good], corr[good]
        if len(pairs) < MIN_MATCHES:
            return []
        area = MIN_AGREE_MM2 if min_agree_mm2 is None else min_agree_mm2
        return _group(array, shape, sp, pts, pairs, corr, area, b_is_copy or denser_edge)


def find_clones(array: Any, spacing: tuple[float, float, float], seed: int = 0) -> list[Clone]:
    """Duplicated regions of a CT ``array`` (z, y, x; HU; anything indexable by slice), strongest first."""
    keypoints = Keypoints(seed)
    for z0 in range(0, int(array.shape[0]), CHUNK):  # a few slices at a time (a streamed series)
        keypoints.add(z0, array[z0 : z0 + CHUNK])
    return keypoints.clones(array, spacing)


def denser_edge(ag: Agreement) -> bool:
    """The CT rule: end ``b`` is the copy when its edge is the denser (a copy is levelled to the denser lung
    around what it hides; see :func:`~medforensics.scan.clone_ends.compare_ends`)."""
    return ag.copy_edge_hu >= ag.source_edge_hu


def _group(
    array: object,
    shape: tuple[int, ...],
    sp: NDArray[np.float64],
    pts: NDArray[np.int64],
    pairs: NDArray[np.int64],
    corr: NDArray[np.float32],
    min_agree_mm2: float,
    b_is_copy: Callable[[Agreement], bool],
) -> list[Clone]:
    """Matches linked by the same slice offset and nearby ends (within :data:`LINK_MM`, and half their
    length), as clones of at least :data:`MIN_MATCHES` whose ends agree over ``min_agree_mm2`` (the
    :data:`MAX_LINKED` strongest matches: linking is quadratic in their number)."""
    if len(pairs) > MAX_LINKED:
        keep = np.argsort(-corr, kind="stable")[:MAX_LINKED]
        pairs, corr = pairs[keep], corr[keep]
    # each match both ways round: a pair's order is its keypoints' (arbitrary within a slice), so one copy's
    # matches come in both orientations; grouped both ways, each clone is found twice, once kept below
    n = len(pairs)
    both = np.concatenate([pairs, pairs[:, ::-1]])
    corr = np.concatenate([corr, corr])
    a, b = pts[both[:, 0]].astype(np.float64), pts[both[:, 1]].astype(np.float64)
    parent = list(range(len(both)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    dz = b[:, 0] - a[:, 0]
    # at most half a match's own length, so that a match never links to itself the other way round
    reach = np.minimum(LINK_MM, 0.5 * np.linalg.norm((b - a) * sp, axis=1))
    for i in range(len(both)):
        near = (
            (dz == dz[i])
            & (np.linalg.norm((a - a[i]) * sp, axis=1) <= reach[i])
            & (np.linalg.norm((b - b[i]) * sp, axis=1) <= reach[i])
        )
        for j in np.flatnonzero(near):
            parent[root(int(j))] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(both)):
        groups.setdefault(root(i), []).append(i)
    out = []
    for members in groups.values():
        m = np.asarray(members)
        if not np.any(m == (m % n).min()):  # the mirror of a group kept: that one holds the first match
            continue  # (by index) as stored, this one holds it the other way round
        if len(m) < MIN_MATCHES or float(corr[m].mean()) < CLONE_CORRELATION:
            continue
        ends = []
        for side in (a[m], b[m]):
            half = np.array([0, PATCH // 2, PATCH // 2])
            lo = np.maximum(side.min(0) - half, 0).astype(int)
            hi = np.minimum(side.max(0) + half + 1, shape).astype(int)
            z, y, x = (round(float(v)) for v in side.mean(0))
            ends.append(((z, y, x), (*lo, *hi)))
        ag = compare_ends(lambda z: array[z], shape, a[m], b[m])  # type: ignore[index]
        area = ag.agreeing * float(sp[1] * sp[2])
        if area < min_agree_mm2:  # a few keypoints alike, not one region: anatomy, not a copy
            continue
        b_copy = b_is_copy(ag)
        src, cpy = (ends[0], ends[1]) if b_copy else (ends[1], ends[0])
        seams = (ag.copy_edge_seam, ag.source_edge_seam)  # end b's, end a's
        seam_copy, seam_source = seams if b_copy else seams[::-1]
        out.append(
            Clone(
                source=src[0],
                copy=cpy[0],
                source_box=tuple(int(v) for v in src[1]),  # type: ignore[arg-type]
                copy_box=tuple(int(v) for v in cpy[1]),  # type: ignore[arg-type]
                matches=len(m),
                correlation=float(corr[m].mean()),
                edge_hu_difference=abs(ag.copy_edge_hu - ag.source_edge_hu),
                agreeing_mm2=area,
                edge_seam_ratio=seam_copy / seam_source if seam_source > 0 else 1.0,
            )
        )
    return sorted(out, key=lambda c: -c.agreeing_mm2)


#: Score of a clone finding. No authentic series measured here holds one
#: (``benchmarks/scan_accuracy/clone_remove``), and independent noise cannot repeat, so a clone is
#: near-certain tampering; the copy's likely end first.
CLONE_SCORE, SOURCE_SCORE = 0.99, 0.98


def _solid_core(volume: Volume, centre: tuple[int, int, int]) -> bool:
    """Whether a 3 mm core (in-plane, on the centre slice) at ``centre`` is mostly solid (> -300 HU)."""
    z, y, x = centre
    ry, rx = (max(1, round(1.5 / s)) for s in volume.spacing[1:])
    img = np.asarray(volume.array[z], np.float32)
    core = img[max(0, y - ry) : y + ry + 1, max(0, x - rx) : x + rx + 1]
    return bool(core.size and float((core > -300).mean()) > 0.5)


def patient_mm(volume: Volume, voxel: tuple[int, int, int]) -> list[float]:
    """Patient coordinates (x, y, z; mm, 1 decimal) of a voxel: the same in any view of the series."""
    return [round(float(v), 1) for v in volume.index_to_patient(np.asarray(voxel, float))]


def end_findings(
    volume: Volume, c: Clone, kind: str, place: Callable[[tuple[int, int, int]], str], why: str = ""
) -> list[Finding]:
    """The two findings of clone ``c`` (type ``kind``): its likely copy at :data:`CLONE_SCORE`, then its
    source at :data:`SOURCE_SCORE`; each description names the other end by ``place`` (and, for the copy,
    ``why`` it is the likelier one)."""
    return [
        Finding(
            kind,
            score,
            center_voxel=here,
            center_mm=tuple(patient_mm(volume, here)),  # type: ignore[arg-type]
            bbox_voxel=box,
            description=(
                f"duplicated region: the same noise as at {place(there)} over "
                f"{c.agreeing_mm2:.0f} mm^2 ({c.matches} matched keypoints, correlation "
                f"{c.correlation:.3f}); one of the two was copied "
                "onto the other" + (f" (this one more likely{why})" if score == CLONE_SCORE else "")
            ),
        )
        for score, here, box, there in (
            (CLONE_SCORE, c.copy, c.copy_box, c.source),
            (SOURCE_SCORE, c.source, c.source_box, c.copy),
        )
    ]


def clone_findings(
    volume: Volume, keypoints: Keypoints | None = None
) -> tuple[list[Finding], list[dict[str, Any]]]:
    """Findings for each duplicated region of ``volume`` (the likely copy, then its source) and a summary
    of each clone for ``result.extra`` (``keypoints``: gathered already, see :class:`Keypoints`)."""
    findings: list[Finding] = []
    summary: list[dict[str, Any]] = []
    found = (
        find_clones(volume.array, volume.spacing)
        if keypoints is None
        else keypoints.clones(volume.array, volume.spacing)
    )
    for c in found:
        kind = "injected" if _solid_core(volume, c.copy) else "removed"
        findings += end_findings(volume, c, kind, lambda p: f"{patient_mm(volume, p)} mm")
        summary.append(
            {
                "copy_mm": patient_mm(volume, c.copy),
                "source_mm": patient_mm(volume, c.source),
                "matches": c.matches,
                "correlation": round(c.correlation, 4),
                "agreeing_mm2": round(c.agreeing_mm2, 1),
                "edge_hu_difference": round(c.edge_hu_difference, 1),
                "type": kind,
            }
        )
    return findings, summary


def add_clone_findings(volume: Volume, result: SeriesResult, keypoints: Keypoints | None = None) -> None:
    """Search a scanned CT ``result`` for duplicated regions (``keypoints``: gathered while the scan read the
    series, else read here) and :func:`apply_clone_findings`."""
    if result.error is not None:
        return
    apply_clone_findings(result, *clone_findings(volume, keypoints))


def apply_clone_findings(
    result: SeriesResult, findings: list[Finding], summary: list[dict[str, Any]]
) -> None:
    """:func:`clone_findings`' result into ``result``: any clone makes the series tampered (FB/FM by the
    copy's content) with its findings first. ``result.extra['clones']`` lists them (empty: none found)."""
    result.extra["clones"] = summary
    if not findings:
        return
    result.score = max(result.score or 0.0, CLONE_SCORE)
    if result.verdict != "tampered":
        result.label = "FM" if findings[0].type == "injected" else "FB"
    result.verdict = "tampered"
    result.findings = sorted(findings + result.findings, key=lambda f: -f.score)
