"""2-D image reading (PNG/JPEG/TIFF), windows and PNG writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from medforensics.errors import ConfigError, InputError
from medforensics.io.image2d import WINDOWS, apply_window, parse_window, read_image2d, write_png
from medforensics.io.volume import Volume


def test_8bit_png(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).integers(0, 256, size=(20, 30), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    vol = read_image2d(tmp_path / "a.png")
    assert vol.shape == (1, 20, 30) and vol.modality == "DX"
    np.testing.assert_array_equal(vol.array[0], arr)
    assert vol.metadata["bit_depth"] == 8 and vol.metadata["color"] == "grey"
    assert vol.spacing == (1.0, 1.0, 1.0) and vol.metadata["spacing_source"] == "default"


def test_16bit_png_and_tiff_keep_full_range(tmp_path: Path) -> None:
    arr = (np.arange(40 * 50).reshape(40, 50) * 30).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "b.png")
    tifffile.imwrite(tmp_path / "b.tif", arr)
    for name in ("b.png", "b.tif"):
        vol = read_image2d(tmp_path / name, modality="cr", spacing=(0.15, 0.2))
        np.testing.assert_array_equal(vol.array[0], arr)
        assert vol.metadata["bit_depth"] == 16
        assert vol.modality == "CR" and vol.spacing == (1.0, 0.15, 0.2)


def test_rgb_becomes_luminance(tmp_path: Path) -> None:
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    Image.fromarray(rgb).save(tmp_path / "c.png")
    vol = read_image2d(tmp_path / "c.png")
    assert vol.metadata["color"] == "rgb->luminance"
    np.testing.assert_allclose(vol.array, 0.299 * 200 + 0.587 * 100 + 0.114 * 50, atol=1e-3)


def test_jpeg(tmp_path: Path) -> None:
    arr = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (32, 1))
    Image.fromarray(arr).save(tmp_path / "d.jpg", quality=95)
    vol = read_image2d(tmp_path / "d.jpg")
    assert vol.metadata["source_format"] == "jpeg" and vol.shape == (1, 32, 64)
    assert np.abs(vol.array[0] - arr).mean() < 3.0


def test_corrupt_and_empty_images(tmp_path: Path) -> None:
    empty = tmp_path / "e.png"
    empty.write_bytes(b"")
    junk = tmp_path / "f.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "g.jpg")
    cut = tmp_path / "g.jpg"
    cut.write_bytes(cut.read_bytes()[:100])
    fake_tif = tmp_path / "h.tif"
    fake_tif.write_text("not a tiff")
    text = tmp_path / "notes.png"
    text.write_text("not an image\n")
    for path in (empty, junk, cut, fake_tif, text, tmp_path / "absent.png"):
        with pytest.raises(InputError) as err:
            read_image2d(path)
        assert str(err.value).count(str(path)) == 1 and "\n" not in str(err.value)


def test_apply_window_named_numeric_and_percentile() -> None:
    assert WINDOWS["lung"] == (-600.0, 1500.0)
    hu = np.array([-2000.0, -1350.0, -600.0, 150.0, 3000.0])
    np.testing.assert_array_equal(apply_window(hu, "lung"), [0, 0, 128, 255, 255])
    np.testing.assert_array_equal(apply_window(np.array([-160.0, 40.0, 240.0]), (40, 400)), [0, 128, 255])
    ramp = np.arange(1000, dtype=np.float64)
    out = apply_window(ramp)
    assert out.dtype == np.uint8 and out[5] == 0 and out[995] == 255 and 100 < out[500] < 155
    assert apply_window(np.full((3, 3), 7.0)).max() == 128  # flat image: mid-grey, no division by zero
    with pytest.raises(ConfigError):
        apply_window(hu, "liverish")
    with pytest.raises(ConfigError):
        apply_window(hu, (40, 0))


def test_parse_window() -> None:
    assert parse_window("Lung") == "lung"
    assert parse_window("40,400") == (40.0, 400.0)
    assert parse_window("auto") is None and parse_window(None) is None
    for bad in ("40", "a,b", "1,2,3", "40,-5"):
        with pytest.raises(ConfigError):
            parse_window(bad)


def test_write_png_slice_and_window(tmp_path: Path) -> None:
    arr = np.stack([np.full((6, 8), v, np.float32) for v in (-1000.0, 40.0, 1000.0)])
    vol = Volume(arr, modality="CT")
    out = write_png(vol, tmp_path / "s.png", window="mediastinum", slice_index=1)
    img = np.asarray(Image.open(out))
    assert img.dtype == np.uint8 and img.shape == (6, 8) and (img == 128).all()
    write_png(vol, tmp_path / "mid.png", window=(40, 40))
    assert (np.asarray(Image.open(tmp_path / "mid.png")) == 128).all()  # the middle slice by default
    write_png(arr[0], tmp_path / "plain.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mid.png", "plain.png", "s.png"]
    with pytest.raises(ConfigError):
        write_png(vol, tmp_path / "x.png", slice_index=3)


def test_real_chest_xray(shared_data: Path) -> None:
    path = sorted((shared_data / "chest-xray").glob("*.png"))[0]
    vol = read_image2d(path)
    assert vol.shape == (1, 512, 512) and vol.metadata["bit_depth"] == 8
    assert 20 < float(vol.array.mean()) < 235 and float(vol.array.std()) > 20


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A PNG whose header says ``width`` x ``height`` (its data is one short row): a corrupt or bomb file."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = zlib.compress(b"\x00" * 1024)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def test_images_over_the_pixel_limit_are_refused_before_decoding(tmp_path: Path) -> None:
    """A header claiming 60000 x 60000 pixels (PNG: Pillow's decompression-bomb error; TIFF: tifffile has
    no limit and would allocate 7 GB) is a one-line error naming the file and the limit."""
    import struct

    png = _png_claiming(tmp_path / "bomb.png", 60000, 60000)
    tif = tmp_path / "bomb.tif"
    tifffile.imwrite(tif, np.zeros((16, 16), np.uint16))
    raw = bytearray(tif.read_bytes())
    with tifffile.TiffFile(tif) as t:
        for tag in t.pages.first.tags.values():
            if tag.name in ("ImageWidth", "ImageLength", "RowsPerStrip"):
                struct.pack_into("<H" if tag.dtype == 3 else "<I", raw, tag.valueoffset, 60000)
    tif.write_bytes(bytes(raw))
    for path in (png, tif):
        with pytest.raises(InputError) as err:
            read_image2d(path)
        msg = str(err.value)
        assert str(path) in msg and "pixel limit" in msg and "\n" not in msg, msg
    assert "60000 x 60000" in msg  # TIFF: its size is read from the header before anything is decoded


def test_large_images_under_the_limit_read_without_warnings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pillow warns (DecompressionBombWarning) above half its limit: that is not the user's business when
    the image is under ours, and must not reach stderr (here: a 40 x 40 image, Pillow's limit lowered)."""
    import warnings

    Image.fromarray(np.arange(1600, dtype=np.uint8).reshape(40, 40)).save(tmp_path / "a.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # warns over 1000 pixels, refuses over 2000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vol = read_image2d(tmp_path / "a.png")
    assert vol.shape == (1, 40, 40) and vol.metadata["warnings"] == []


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    """A JPEG stored sideways with EXIF Orientation 6 (turn 90 degrees clockwise), as cameras and phone
    photos of films store it, is read as every viewer shows it."""
    shown = np.zeros((40, 60), np.uint8)
    shown[:10, :] = 255  # a bright band along the top of the image as shown
    stored = np.rot90(shown, 1)  # what turning it clockwise by 90 degrees gives back
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(stored)).save(tmp_path / "r.jpg", exif=exif, quality=95)
    vol = read_image2d(tmp_path / "r.jpg")
    assert vol.shape == (1, 40, 60) and vol.metadata["exif_orientation"] == 6
    assert vol.array[0, :10].mean() > 200 and vol.array[0, 15:].mean() < 30
