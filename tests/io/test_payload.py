"""Volume files whose header promises more voxels than the file can hold are refused before any allocation."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from medforensics.errors import InputError
from medforensics.io.metaimage import read_metaimage
from medforensics.io.nifti import read_nifti
from medforensics.io.nrrd import read_nrrd
from medforensics.io.payload import MAX_DEFLATE_RATIO, check_payload, size_text

#: What a hostile header claims: 54 TB of int16 voxels.
HUGE = (30000, 30000, 30000)


def test_check_payload_bounds_raw_and_deflated_data() -> None:
    path = Path("x.nii")
    check_payload(path, (4, 5, 6), 2, 240, False, "NIfTI")  # exactly enough
    with pytest.raises(
        InputError, match=r"truncated NIfTI data: its 4 x 5 x 6 voxels need 240 bytes, the file"
    ):
        check_payload(path, (4, 5, 6), 2, 239, False, "NIfTI")
    need = 4 * 5 * 6 * 2 * 1000
    check_payload(path, (40, 50, 60), 2, -(-need // MAX_DEFLATE_RATIO), True, "NIfTI")  # deflate's best ratio
    with pytest.raises(InputError, match=r"corrupt NIfTI header: .* \(deflate packs at most 1032:1\)"):
        check_payload(path, (40, 50, 60), 2, need // MAX_DEFLATE_RATIO - 1, True, "NIfTI")
    assert size_text(54 * 10**12) == "54.0 TB" and size_text(999) == "999 bytes"


def lying_nifti(path: Path) -> Path:
    """A NIfTI of 4 x 4 x 4 voxels whose header then says 30000 x 30000 x 30000."""
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), path.with_suffix(".tmp.nii"))
    raw = bytearray(path.with_suffix(".tmp.nii").read_bytes())
    struct.pack_into("<4h", raw, 40, 3, *HUGE)  # dim[0..3]
    path.write_bytes(gzip.compress(bytes(raw)) if path.name.endswith(".gz") else bytes(raw))
    return path


@pytest.mark.parametrize("name", ["liar.nii", "liar.nii.gz"])
def test_a_nifti_header_that_lies_about_its_size_is_refused(tmp_path: Path, name: str) -> None:
    path = lying_nifti(tmp_path / name)
    why = "corrupt NIfTI header" if name.endswith(".gz") else "truncated NIfTI data"
    for stream_above in (None, 0):  # whole or streamed: refused before either allocates
        with pytest.raises(InputError, match=f"{why}: its 30000 x 30000 x 30000 voxels need 54.0 TB") as err:
            read_nifti(path, stream_above=stream_above)
        assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_metaimage_and_nrrd_headers_that_lie_about_their_size_are_refused(tmp_path: Path) -> None:
    dims = " ".join(map(str, HUGE))
    head = (
        f"ObjectType = Image\nNDims = 3\nDimSize = {dims}\nElementType = MET_SHORT\nElementSpacing = 1 1 1\n"
    )
    (tmp_path / "z.mhd").write_text(head + "CompressedData = True\nElementDataFile = z.zraw\n")
    (tmp_path / "z.zraw").write_bytes(zlib.compress(bytes(10**5)))
    (tmp_path / "l.mha").write_bytes((head + "CompressedData = True\nElementDataFile = LOCAL\n").encode())
    with (tmp_path / "l.mha").open("ab") as fh:
        fh.write(zlib.compress(bytes(10**5)))
    nrrd = f"NRRD0004\ntype: short\ndimension: 3\nsizes: {dims}\nspacings: 1 1 1\nendian: little\n"
    (tmp_path / "r.nrrd").write_bytes(f"{nrrd}encoding: raw\n\n".encode() + bytes(1000))
    (tmp_path / "g.nrrd").write_bytes(f"{nrrd}encoding: gzip\n\n".encode() + gzip.compress(bytes(10**5)))
    cases = {
        "z.mhd": r"corrupt MetaImage header: .* data file '.*z\.zraw' can hold",
        "l.mha": "corrupt MetaImage header: .* in the file can hold",
        "r.nrrd": "truncated NRRD data: its 30000 x 30000 x 30000 voxels need 54.0 TB, the file holds 1.0 kB",
        "g.nrrd": "corrupt NRRD header",
    }
    for name, why in cases.items():
        with pytest.raises(InputError, match=why):
            (read_nrrd if name.endswith(".nrrd") else read_metaimage)(tmp_path / name)


def test_honest_compressed_files_pass_the_check(tmp_path: Path) -> None:
    """A constant volume deflates close to the bound and is still read."""
    arr = np.full((20, 64, 64), -1000, np.int16)
    img = sitk.GetImageFromArray(arr)
    for name in ("c.mha", "c.nrrd"):
        sitk.WriteImage(img, str(tmp_path / name), useCompression=True)
    nib.save(nib.Nifti1Image(arr.T, np.eye(4)), tmp_path / "c.nii.gz")
    readers = {"c.mha": read_metaimage, "c.nrrd": read_nrrd, "c.nii.gz": read_nifti}
    for name, read in readers.items():
        vol = read(tmp_path / name, modality="CT")
        assert vol.shape == (20, 64, 64) and float(vol.array.min()) == -1000.0
