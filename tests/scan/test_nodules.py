"""scan.nodules: where a TM label's blob is, and which blobs may be its basis."""

from __future__ import annotations

import numpy as np

from medforensics.io.volume import Volume
from medforensics.scan.candidates import Candidate
from medforensics.scan.dense import DenseMap
from medforensics.scan.nodules import (
    MAX_LISTED,
    TM_MIN_END_MM,
    end_margin_mm,
    nodule_entries,
    untouched_nodules,
)


def _map(shape: tuple[int, int, int] = (10, 20, 20)) -> DenseMap:
    """A model-grid crop starting at model voxel (2, 0, 0), two full-resolution slices per model slice."""
    ev = np.full(shape, 0.1, np.float32)
    return DenseMap(ev, np.zeros((2, *shape), np.float16), np.ones(shape, bool), (2, 1, 1), (2, 0, 0),
                    (5.0, 1.0, 1.0), np.full(shape, -850.0, np.float32))  # fmt: skip


def _blob(z: float, y: float = 10.0, x: float = 10.0) -> Candidate:
    return Candidate((z, y, x), "blob", 8.0, 1.0, True, 0.8, 20.0)


def test_end_margin_is_measured_in_the_series_slices() -> None:
    volume = Volume(np.zeros((30, 20, 20), np.float32), spacing=(2.5, 1.0, 1.0), modality="CT")
    dm = _map()
    # crop z 0 -> model z 2 -> series z (2 + 0.5) * 2 - 0.5 = 4.5: 4.5 slices of 2.5 mm from the first
    assert end_margin_mm(volume, dm, _blob(0.0)) == 4.5 * 2.5
    # crop z 9 -> series z 22.5: 6.5 slices from the last (29)
    assert end_margin_mm(volume, dm, _blob(9.0)) == 6.5 * 2.5


def test_untouched_nodules_leave_out_flagged_and_cut_blobs() -> None:
    volume = Volume(np.zeros((12, 20, 20), np.float32), spacing=(2.5, 1.0, 1.0), modality="CT")
    dm = _map((4, 20, 20))  # series slices 3.5 .. 9.5 of 0-11
    dm.evidence[1, 5, 5] = 0.9
    inside, flagged, cut = _blob(1.0), _blob(1.0, 5.0, 5.0), _blob(3.0)  # cut: 1.5 slices from the end
    assert end_margin_mm(volume, dm, cut) < TM_MIN_END_MM <= end_margin_mm(volume, dm, inside)
    assert untouched_nodules(volume, dm, [inside, flagged, cut], threshold=0.5) == [inside]


def test_nodule_entries_are_capped_clipped_and_placed_in_patient_mm() -> None:
    volume = Volume(
        np.zeros((12, 20, 20), np.float32), spacing=(2.5, 0.5, 0.5), modality="CT", origin=(-5.0, 7.0, 100.0)
    )
    dm = _map((4, 20, 20))
    rows = nodule_entries(volume, dm, [_blob(1.0, 2.0, 3.0), _blob(1.0, 19.9, 19.9)] * 4)
    assert len(rows) == MAX_LISTED
    first = rows[0]
    assert first["center_voxel"] == [6, 2, 3] and first["diameter_mm"] == 8.0 and first["hu"] == 20.0
    assert np.allclose(first["center_mm"], volume.index_to_patient(np.array([6.0, 2.0, 3.0])), atol=0.05)
    assert rows[1]["center_voxel"][1:] == [19, 19]  # inside the series whatever the blob's rounding
