"""2-D images: PNG / JPEG / TIFF reading (X-rays) and windowed 8-bit PNG writing.

Also home of the display windows (:data:`WINDOWS`, :func:`apply_window`) used by every renderer.
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medforensics._atomic import write_bytes_atomic
from medforensics.errors import ConfigError, InputError
from medforensics.io.volume import Volume
from medforensics.logging import get_logger

log = get_logger("io.image2d")

#: Named display windows: name -> (center, width) in the image's units (HU for CT).
WINDOWS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (40.0, 400.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
}

#: What a window argument may be: a name, (center, width), or None for the 1st-99th percentile.
Window = str | tuple[float, float] | None

IMAGE2D_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, as Pillow's "L" conversion
#: Largest image read (pixels): Pillow's decompression-bomb limit (twice its warning limit), for TIFF too.
#: A float32 copy of such an image takes 0.7 GB.
MAX_PIXELS = 178_956_970
_OVER_LIMIT = f"over the {MAX_PIXELS:,}-pixel limit (a corrupt header or a decompression bomb?)"


def is_image2d_path(path: str | Path) -> bool:
    """True for .png, .jpg, .jpeg, .tif and .tiff names."""
    return str(path).lower().endswith(IMAGE2D_SUFFIXES)


def window_bounds(array: NDArray[Any], window: Window) -> tuple[float, float]:
    """(low, high) display limits for ``window`` (see :data:`Window`)."""
    if window is None:
        finite = np.asarray(array, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        if finite.size == 0:
            return 0.0, 1.0
        low, high = (float(v) for v in np.percentile(finite, [1.0, 99.0]))
        if high <= low:  # flat image: widen so it renders mid-grey instead of failing
            low, high = low - 0.5, low + 0.5
        return low, high
    if isinstance(window, str):
        key = window.strip().lower()
        if key not in WINDOWS:
            raise ConfigError(
                f"unknown window {window!r}; choose one of {', '.join(WINDOWS)} or CENTER,WIDTH"
            )
        center, width = WINDOWS[key]
    else:
        try:
            center, width = (float(v) for v in window)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"window must be a name or (center, width), got {window!r}") from exc
    if not (np.isfinite(center) and np.isfinite(width)) or width <= 0:
        raise ConfigError(f"window width must be positive and finite, got center={center} width={width}")
    return center - width / 2.0, center + width / 2.0


def parse_window(text: str | None) -> Window:
    """Parse a command-line window: a name, ``CENTER,WIDTH``, or empty/``auto`` for percentiles."""
    if text is None or text.strip().lower() in ("", "auto", "none"):
        return None
    if "," in text:
        parts = text.split(",")
        try:
            center, width = float(parts[0]), float(parts[1])
        except (ValueError, IndexError) as exc:
            raise ConfigError(f"window {text!r} is not CENTER,WIDTH") from exc
        if len(parts) != 2:
            raise ConfigError(f"window {text!r} is not CENTER,WIDTH")
        window_bounds(np.zeros(1), (center, width))  # validates
        return (center, width)
    window_bounds(np.zeros(1), text)  # validates the name
    return text.strip().lower()


def apply_window(array: NDArray[Any], window: Window = None) -> NDArray[np.uint8]:
    """Map ``array`` linearly to 0-255 through ``window`` (values outside are clipped; NaN -> 0)."""
    low, high = window_bounds(array, window)
    scaled = (np.asarray(array, dtype=np.float64) - low) * 255.0 / (high - low)
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(np.floor(scaled + 0.5), 0, 255).astype(np.uint8)  # round half up: the centre is 128


# ---------------------------------------------------------------------- reading
def _to_grey(data: NDArray[Any], path: Path) -> tuple[NDArray[np.float32], str]:
    """Greyscale float32 pixels and a colour note ("grey" / "rgb->luminance")."""
    if data.ndim == 2:
        return data.astype(np.float32), "grey"
    if data.ndim == 3 and data.shape[-1] in (2, 3, 4):
        if data.shape[-1] == 2:  # grey + alpha
            return data[..., 0].astype(np.float32), "grey"
        rgb = data[..., :3].astype(np.float64)
        return (rgb @ _LUMA).astype(np.float32), "rgb->luminance"
    raise InputError(f"unsupported image layout {tuple(data.shape)}", path=path)


def _bit_depth(dtype: np.dtype[Any], info: dict[str, Any]) -> int:
    """Bits per sample as stored (Pillow widens 1-bit to 8 and some 16-bit PNGs to 32)."""
    if info.get("pillow_mode") == "1":
        return 1
    if info.get("pillow_mode") == "I" and info.get("format") == "PNG":
        return 16
    return int(np.dtype(dtype).itemsize * 8)


def _read_tiff(path: Path) -> tuple[NDArray[Any], dict[str, Any]]:
    import tifffile

    with tifffile.TiffFile(str(path)) as tif:
        if not tif.pages:
            raise InputError("TIFF without images", path=path)
        page = tif.pages.first
        _check_pixels(page.shape, path)
        data = page.asarray()
        photometric = tifffile.PHOTOMETRIC(page.photometric).name
        info: dict[str, Any] = {"n_pages": len(tif.pages), "photometric": photometric}
        if photometric == "MINISWHITE":  # stored inverted (white = 0)
            info["inverted"] = True
            data = np.iinfo(data.dtype).max - data if np.issubdtype(data.dtype, np.integer) else -data
    return data, info


def _check_pixels(shape: tuple[int, ...], path: Path) -> None:
    """An :class:`InputError` before decoding an image of more than :data:`MAX_PIXELS` pixels."""
    if len(shape) >= 2 and int(np.prod(shape[:2], dtype=np.int64)) > MAX_PIXELS:
        raise InputError(f"image of {shape[1]} x {shape[0]} pixels: {_OVER_LIMIT}", path=path)


def _read_pillow(path: Path) -> tuple[NDArray[Any], dict[str, Any]]:
    from PIL import Image, ImageOps

    try:
        opened = Image.open(path)
    except Image.DecompressionBombError as exc:  # over twice Pillow's own limit: refused unread
        found = re.search(r"\((\d+) pixels\)", str(exc))
        what = f"image of {int(found.group(1)):,} pixels" if found else "image"
        raise InputError(f"{what}: {_OVER_LIMIT}", path=path) from None
    with opened:
        _check_pixels((opened.height, opened.width), path)
        opened.load()
        info: dict[str, Any] = {"pillow_mode": opened.mode, "format": opened.format}
        if "dpi" in opened.info:
            info["dpi"] = [float(v) for v in opened.info["dpi"]]
        img: Image.Image = opened
        orientation = opened.getexif().get(0x0112, 1)  # EXIF Orientation: every viewer shows it turned
        if orientation in range(2, 9):
            img = ImageOps.exif_transpose(opened)
            info["exif_orientation"] = int(orientation)
        if img.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
            img = img.convert("RGBA" if "transparency" in img.info or img.mode == "PA" else "RGB")
        elif img.mode == "1":
            img = img.convert("L")
        data = np.asarray(img)
    return data, info


def read_image2d(
    path: str | Path,
    modality: str = "DX",
    spacing: tuple[float, float] | None = None,
) -> Volume:
    """Read a PNG, JPEG or TIFF image into a one-slice :class:`Volume`.

    Colour images become luminance (BT.601). ``metadata`` records ``bit_depth``, ``color`` and
    ``spacing_source`` ("argument" or "default": 1 mm pixels, since these formats carry no detector spacing).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path=path)
    if path.stat().st_size == 0:
        raise InputError("empty file (0 bytes)", path=path)
    suffix = path.suffix.lower()
    with warnings.catch_warnings(record=True) as caught:  # kept in metadata, not printed on stderr
        warnings.simplefilter("always")
        try:
            data, info = _read_tiff(path) if suffix in (".tif", ".tiff") else _read_pillow(path)
        except InputError:
            raise
        except Exception as exc:  # Pillow/tifffile raise many types for corrupt files
            text = str(exc).replace(f" {str(path)!r}", "")  # Pillow repeats the path the error leads with
            reason = " ".join(f"{type(exc).__name__}: {text}".split())
            raise InputError(f"not a readable image ({reason})", path=path) from exc
    bit_depth = _bit_depth(data.dtype, info)
    grey, color = _to_grey(np.asarray(data), path)
    if spacing is not None:
        sy, sx = (float(s) for s in spacing)
        if sy <= 0 or sx <= 0:
            raise ConfigError(f"pixel spacing must be positive, got {spacing}")
        spacing_source = "argument"
    else:
        sy, sx = 1.0, 1.0
        spacing_source = "default"
    metadata: dict[str, Any] = {
        "source_format": {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}.get(suffix, "tiff"),
        "bit_depth": bit_depth,
        "color": color,
        "spacing_source": spacing_source,
        **info,
        "warnings": [
            " ".join(str(w.message).split())
            for w in caught
            if w.category.__name__ != "DecompressionBombWarning"  # under MAX_PIXELS: not news
        ],
    }
    if info.get("n_pages", 1) > 1:
        metadata["warnings"].append(f"multi-page TIFF: only the first of {info['n_pages']} pages was read")
    log.debug("read image %s shape=%s bits=%d %s", path.name, grey.shape, bit_depth, color)
    return Volume(array=grey, spacing=(1.0, sy, sx), modality=modality, source=path, metadata=metadata)


# ---------------------------------------------------------------------- writing
def _pick_slice(image: Volume | NDArray[Any], slice_index: int | None) -> NDArray[Any]:
    array = image.array if isinstance(image, Volume) else np.asarray(image)
    if array.ndim == 2:
        return array
    if array.ndim != 3:
        raise ConfigError(f"write_png needs a 2-D image or a 3-D volume, got shape {array.shape}")
    index = array.shape[0] // 2 if slice_index is None else int(slice_index)
    if not -array.shape[0] <= index < array.shape[0]:
        raise ConfigError(f"slice index {slice_index} outside 0..{array.shape[0] - 1}")
    return array[index]


def png_bytes(rgb_or_grey: NDArray[np.uint8]) -> bytes:
    """Encode a uint8 (H, W) or (H, W, 3|4) array as PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb_or_grey)).save(buf, format="PNG")
    return buf.getvalue()


def write_png(
    image: Volume | NDArray[Any],
    path: str | Path,
    window: Window = None,
    slice_index: int | None = None,
) -> Path:
    """Write one slice (the middle one unless ``slice_index``) as an 8-bit greyscale PNG, atomically.

    ``window`` is a name from :data:`WINDOWS`, (center, width), or None for the 1st-99th percentile.
    """
    plane = _pick_slice(image, slice_index)
    return write_bytes_atomic(path, png_bytes(apply_window(plane, window)))
