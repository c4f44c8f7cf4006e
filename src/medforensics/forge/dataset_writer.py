"""Making a forge data set's samples once their random draws are made: in the forging process, or in worker
processes beside it.

Every random draw of a sample (crop, attack parameters and seed, augmentation, UIDs) is made in one process,
in plan order (:class:`Draws`); what follows from the draws is deterministic: applying the attack, the
augmentation, and writing the DICOM series, mask and record (:func:`render`; in session 43's profile about
nine tenths of the per-sample time). That part may go to ``jobs`` spawned workers, so the data set is the
same, file for file, whatever ``jobs`` (both render under :data:`RENDER_THREADS` torch threads).

Since session 44 a sample whose attack fails has made its augmentation and UID draws as well (before, it
stopped drawing at the failure), so a data set with failed samples differs from one built before then.
None of the data sets the benchmarks used had a failed sample.
"""

from __future__ import annotations

import json
import multiprocessing as mp
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medforensics._atomic import write_text_atomic
from medforensics._pools import children_ignore_sigint
from medforensics.errors import MedforensicsError
from medforensics.forge import augment as A
from medforensics.forge import dataset_layout as L
from medforensics.io.volume import Volume

__all__ = ["Draws", "Rendered", "render", "render_all", "write_sample"]


@dataclass
class Draws:
    """One sample's random draws and where they apply: everything :func:`render` needs besides the crop."""

    label: str
    method: str
    source: str  # the source's name
    patient: str
    start: tuple[int, int, int]
    shape: tuple[int, int, int]
    site: tuple[int, int, int]  # in the crop (a TM's nodule, an attack's requested centre)
    chain: list[dict[str, Any]]
    uids: dict[str, str]
    uuid: str
    source_uids: dict[str, str]
    attack: tuple[Any, ...] | None = None  # the attack's key in the forging process's cache
    donor: str | None = None
    params: dict[str, Any] | None = None
    seed: int = 0
    round_trip_mm: float | None = None  # zoomed through such voxels and back after everything else

    @property
    def located(self) -> bool:
        """Whether the sample's site is a location (a real nodule, an attack) rather than a candidate."""
        return self.label in ("TM", "FM", "FB")


@dataclass
class Rendered:
    """What rendering a sample gives back: its location in the written crop and the scan's format."""

    location: tuple[int, int, int]
    scan_format: str


def write_sample(out: Path, vol: Volume, mask: np.ndarray, side: dict[str, Any]) -> str:
    """Write one sample under ``out``: ``scans/<uuid>/``, ``masks/<uuid>.nii.gz``, ``records/<uuid>.json``
    (``side`` is the record). Returns the scan's format."""
    from medforensics.io.nifti import write_nifti

    uid = side["uuid"]
    fmt = L.write_scan(vol, out / "scans" / uid, side["new_uids"])
    write_nifti(vol.with_array(mask.astype(np.float32)), out / "masks" / f"{uid}.nii.gz", dtype=np.uint8)
    write_text_atomic(out / "records" / f"{uid}.json", json.dumps(side, indent=1) + "\n")
    return fmt


def render(out: Path, d: Draws, sub: Volume, mask: np.ndarray | None, attacks: dict[Any, Any]) -> Rendered:
    """Attack (FM/FB/SYN: ``attacks[d.attack]``, else ``mask`` is the nodule's or None), augment and write
    the sample drawn as ``d`` from its crop ``sub``."""
    record: dict[str, Any] | None = None
    c = d.site
    if d.attack is not None:
        sub, mask, rec = attacks[d.attack].apply(sub, d.params, seed=d.seed)
        record = {**rec.to_dict(), "donor_source": d.donor}
        if rec.center_voxel is not None:
            c = tuple(int(v) for v in rec.center_voxel)  # type: ignore[assignment]
    if mask is None:
        mask = np.zeros(sub.shape, bool)
    arr = sub.array
    if d.chain:
        arr, moved = A.apply_augmentations(arr, d.chain, mask)
        mask = mask if moved is None else moved
        c = tuple(round(v) for v in A.transform_points(c, d.chain, sub.shape))  # type: ignore[assignment]
        arr = np.round(arr)
    if d.round_trip_mm is not None:  # the CT-GAN tool's handling of a whole scan; the mask stays the edit's
        from medforensics.forge.round_trip import scan_round_trip

        arr = np.round(scan_round_trip(arr, sub.spacing, d.round_trip_mm))
    c = tuple(int(np.clip(v, 0, n - 1)) for v, n in zip(c, sub.shape, strict=True))  # type: ignore[assignment]
    vol = sub.with_array(arr)
    vol.metadata = dict(vol.metadata)
    side = {
        "uuid": d.uuid,
        "type": d.label,
        "method": d.method,
        "patient": d.patient,
        "source": d.source,
        "crop_start_zyx": list(d.start),
        "crop_shape_zyx": list(d.shape),
        "location_zyx": list(c) if d.located else None,
        "candidate_zyx": None if d.located else list(c),
        "augmentation": d.chain,
        "round_trip_mm": d.round_trip_mm,
        "attack": record,
        "source_uids": d.source_uids,
        "new_uids": d.uids,
    }
    return Rendered(c, write_sample(out, vol, mask, side))


#: A worker's copy of the forging process's attacks (pickled to it once, when it starts).
_ATTACKS: dict[Any, Any] = {}

#: torch's intra-op threads a sample is rendered under, in a worker and in the forging process alike: a
#: convolution's float sums depend on how many threads split them (the DCGAN's pixels differed by 1 HU here
#: and there between ``jobs`` 1 and 2 before session 67).
RENDER_THREADS = 1


def _init_worker(attacks: dict[Any, Any]) -> None:
    import torch

    _ATTACKS.update(attacks)
    torch.set_num_threads(RENDER_THREADS)


@contextmanager
def _render_threads() -> Iterator[None]:
    """torch's intra-op threads set to :data:`RENDER_THREADS` (a worker's count) for the block, then put
    back."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(RENDER_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _render_in_worker(out: Path, d: Draws, sub: Volume, mask: np.ndarray | None) -> Rendered:
    return render(out, d, sub, mask, _ATTACKS)


Task = tuple[Draws, Volume, "np.ndarray | None"]


def render_all(
    out: Path, tasks: Iterable[Task], attacks: dict[Any, Any], jobs: int = 1
) -> Generator[Rendered | MedforensicsError, None, None]:
    """:func:`render` of every ``(draws, crop, mask)`` task, in order: here (``jobs`` 1), or in ``jobs``
    spawned processes with at most ``2 x jobs`` tasks waiting (memory stays bounded). A sample that cannot
    be made for a reason of its own gives its :class:`MedforensicsError` in its place."""
    if jobs <= 1:
        for d, sub, mask in tasks:
            try:
                with _render_threads():  # as in a worker
                    rendered = render(out, d, sub, mask, attacks)
            except MedforensicsError as err:
                yield err
            else:
                yield rendered
        return
    # spawned, not forked: the forging process may hold torch's threads
    pool = ProcessPoolExecutor(jobs, mp.get_context("spawn"), _init_worker, (attacks,))
    try:
        pending: list[Future[Rendered]] = []
        for d, sub, mask in tasks:
            with children_ignore_sigint():  # Ctrl-C is the command's: no traceback from a worker
                pending.append(pool.submit(_render_in_worker, out, d, sub, mask))
            while len(pending) > 2 * jobs:
                yield _result(pending.pop(0))
        while pending:
            yield _result(pending.pop(0))
    finally:  # also when the caller stops early or an error ends the build: samples not started are dropped
        pool.shutdown(wait=True, cancel_futures=True)


def _result(future: Future[Rendered]) -> Rendered | MedforensicsError:
    try:
        return future.result()
    except MedforensicsError as err:
        return err
