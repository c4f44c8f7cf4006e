"""The real CT sources of the whole-series benchmarks and the variants ``scan_accuracy.py`` scans them as.

``extra_sources``: every CT under ``--extra-ct`` folders with its lesion label map. The variants (each a
source whose volume is replaced, nodule centres following): ``thicken`` (thicker slices), ``coarsen`` and
``repixel`` (larger in-plane pixels), ``rekernel`` (another reconstruction kernel), ``redose`` (a lower dose)
and ``without_headers`` (a NIfTI export: no DICOM headers or files). Used by ``scan_accuracy.py``,
``label_accuracy.py``, ``lossy_scans.py`` and the clone, orientation and noise benchmarks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: File types ``--extra-ct`` folders are searched for.
EXTRA_SUFFIXES = (".nrrd", ".nii.gz", ".nii", ".mha")


def extra_sources(folders: list[Path]) -> list[Any]:
    """Every CT under ``folders`` (recursive; ``EXTRA_SUFFIXES``), each with the lesions of the label map
    beside it (``lung1_image.nrrd`` -> ``lung1_label.nrrd``) when there is one; named ``<folder>:<stem>``."""
    from medforensics.forge.dataset_sources import load_source
    from medforensics.io.datasets.labelmap import image_stem

    out = []
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            parts = image_stem(path.name, EXTRA_SUFFIXES)
            if parts is None or path.name.startswith("."):
                continue
            out.append(load_source(path, name=f"{path.parent.name}:{parts[0].removesuffix('_image')}"))
    return out


def _shrunk(
    src: Any,
    volume: Any,
    factors: tuple[float, float, float],
    suffix: str,
    offsets: tuple[float, float, float] | None = None,
) -> Any:
    """``src`` with its ``volume`` replaced by ``volume``, a resampled copy whose index ``i`` lies at the
    source's ``offsets + i * factors`` (per axis z, y, x; default offsets: those of block means with
    ``factors`` voxels per block); nodule centres follow."""
    import dataclasses

    f = np.asarray(factors, np.float64)
    t0 = (f - 1) / 2 if offsets is None else np.asarray(offsets, np.float64)
    nodules = [
        dataclasses.replace(
            nd, center_voxel=tuple(float(c) for c in (np.asarray(nd.center_voxel, np.float64) - t0) / f)
        )
        for nd in src.nodules
    ]
    return dataclasses.replace(src, name=f"{src.name}:{suffix}", volume=volume, nodules=nodules, lung=None)


def thicken(src: Any, n: int) -> Any:
    """The source with every ``n`` consecutive slices averaged into one (a thicker reconstruction of the same
    scan, ``n`` x the slice spacing; nodule centres follow)."""
    from medforensics.forge.augment import thick_volume

    return _shrunk(src, thick_volume(src.volume, n), (n, 1, 1), f"x{n}")


def coarsen(src: Any, n: int) -> Any:
    """The source with every ``n`` x ``n`` in-plane pixels averaged into one (a coarser reconstruction matrix
    over the same field of view, ``n`` x the pixel size; nodule centres follow; edge rows and columns that
    do not fill a block are dropped)."""
    from medforensics.scan.candidates import block_mean

    v = src.volume
    origin = v.index_to_patient((0.0, (n - 1) / 2.0, (n - 1) / 2.0))
    out = v.with_array(
        block_mean(v.array, (1, n, n)),
        spacing=(v.spacing[0], v.spacing[1] * n, v.spacing[2] * n),
        origin=tuple(float(x) for x in origin),
        datasets=[],
        metadata={k: val for k, val in v.metadata.items() if k != "sop_instance_uids"},
    )
    return _shrunk(src, out, (1, n, n), f"px{n}")


def repixel(src: Any, pixel_mm: float | None, sampling: str = "point", scale: float | None = None) -> Any:
    """The source on square in-plane pixels of ``pixel_mm``, or of ``scale`` x its own
    (:func:`~medforensics.forge.augment.coarse_pixels` with ``sampling``; nodule centres follow); a source
    whose pixels are ``pixel_mm`` or larger already is returned as it is. ``scale`` 1.001 resamples at the
    same size, the samples shifted by up to a quarter pixel: a control for the resampling itself."""
    from medforensics.forge.augment import coarse_pixels

    own = min(src.volume.spacing[1:])
    if scale is not None:
        pixel_mm, tag = own * scale, f"x{scale:g}px"
    elif pixel_mm is None or own >= pixel_mm:
        return src
    else:
        tag = f"{pixel_mm:g}mm"
    vol, factors, offsets = coarse_pixels(src.volume, pixel_mm, sampling)
    tag += "" if sampling == "point" else f"-{sampling}"
    return _shrunk(src, vol, factors, tag, offsets)


def rekernel(src: Any, spec: str) -> Any:
    """The source as another reconstruction kernel would have made it, in-plane: ``sharp:A`` adds ``A`` x
    the difference from a 1-pixel Gaussian blur (a high-boost filter: sharper edges, stronger and finer
    noise, as a lung or bone kernel against a standard one), ``smooth:S`` blurs with a Gaussian of ``S``
    pixels (a soft-tissue kernel). Rounded to whole HU, as a DICOM series stores it; nodules stay put."""
    import dataclasses

    from scipy import ndimage

    kind, _, amount = spec.partition(":")
    try:
        value = float(amount)
    except ValueError:
        raise SystemExit(f"--kernel {spec!r}: sharp:A or smooth:S with a number") from None
    if kind not in ("sharp", "smooth") or not value > 0:
        raise SystemExit(f"--kernel {spec!r}: sharp:A or smooth:S with a positive number")
    a = np.asarray(src.volume.array, np.float32)
    if kind == "sharp":
        out = a + np.float32(value) * (a - ndimage.gaussian_filter(a, (0.0, 1.0, 1.0)))
    else:
        out = ndimage.gaussian_filter(a, (0.0, value, value))
    vol = src.volume.with_array(np.round(out).astype(np.float32))
    return dataclasses.replace(src, name=f"{src.name}:{kind}{value:g}", volume=vol, lung=None)


def redose(src: Any, dose: float, seed: int = 0, corr: float | None = None) -> Any:
    """The source as a scan at ``dose`` x its own dose would look
    (:func:`~medforensics.forge.augment.lower_dose`: scanner-like noise added, smoothed in-plane by ``corr``
    pixels, the forge's own by default; 0: white). Nodules stay put."""
    import dataclasses

    from medforensics.errors import ConfigError
    from medforensics.forge.augment import lower_dose

    try:
        array = lower_dose(src.volume.array, dose, np.random.default_rng(seed), corr)
    except ConfigError as err:
        raise SystemExit(f"--dose {dose}: {err}") from None
    tag = f"dose{dose:g}" + ("" if corr is None else f"-corr{corr:g}")
    return dataclasses.replace(src, name=f"{src.name}:{tag}", volume=src.volume.with_array(array), lung=None)


def without_headers(volume: Any) -> Any:
    """``volume`` without its DICOM headers and file list, as a NIfTI export of it is read (nothing records
    lossy coding; ``--no-headers``)."""
    import dataclasses

    meta = {k: x for k, x in volume.metadata.items() if k != "files"}
    return dataclasses.replace(volume, datasets=[], metadata=meta)
