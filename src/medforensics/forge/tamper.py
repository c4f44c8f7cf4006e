"""Tamper one series as an attacker would and write it with its ground truth (``forge inject|remove``).

Output folder (written atomically, nothing on error): the tampered series (DICOM: same UIDs and metadata,
only Pixel Data changed; NIfTI input: NIfTI), ``forgery.json`` (method, params, seed, centre in voxels and
mm, bbox, input hash) and ``mask.nii.gz`` (1 where pixels changed).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from medforensics import __version__
from medforensics._atomic import atomic_path, check_folder_output
from medforensics._text import fs_bytes
from medforensics.errors import ConfigError, InputError
from medforensics.forge.base import (
    Attack,
    AttackRecord,
    NoiseMatched,
    attack_class,
    check_modality,
    create_attack,
    list_attacks,
    rounded_like,
)
from medforensics.io.volume import AxisMap, Volume, ct_voxel_reason
from medforensics.logging import get_logger

log = get_logger("forge.tamper")

DEFAULT_METHOD = {"inject": "ctgan-inject", "remove": "ctgan-remove"}
#: Smallest volume a CT attack accepts (axial slices, rows, columns).
MIN_SHAPE = (3, 32, 32)


def parse_center(text: str) -> tuple[int, int, int] | None:
    """``auto`` -> None; ``z,y,x`` -> three ints; anything else -> ConfigError."""
    if text.strip().lower() == "auto":
        return None
    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) != 3:
            raise ValueError
        return int(parts[0]), int(parts[1]), int(parts[2])
    except ValueError:
        raise ConfigError(f"--center must be 'auto' or three integers z,y,x, got {text!r}") from None


def is_nifti(path: Path) -> bool:
    return path.name.endswith((".nii", ".nii.gz"))


def read_input(path: Path) -> Volume:
    """Read a DICOM series (folder or file) or a NIfTI file."""
    if not path.exists():
        raise InputError("no such file or folder", path=path)
    if is_nifti(path):
        from medforensics.io.nifti import read_nifti

        return read_nifti(path)
    from medforensics.io.reader import read_volume

    return read_volume(path, whole=True)  # a broken slice the reader skipped would be missing: refused


def input_hash(path: Path) -> str:
    """sha256 of the input file, or of the sorted files of the input folder (names and bytes)."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        h.update(fs_bytes(f.relative_to(path).as_posix()) if f != path else b"")
        h.update(f.read_bytes())
    return h.hexdigest()


def attach_annotations(volume: Volume, xml: Path) -> None:
    """Put the nodules of an LIDC XML into ``volume.metadata['nodules']`` (for ``--center auto`` removal)."""
    from medforensics.io.datasets.lidc import load_lidc_annotations

    volume.metadata["nodules"] = load_lidc_annotations(xml, volume)


def attack_axial(
    attack: Attack, volume: Volume, center: tuple[int, int, int] | None, seed: int
) -> tuple[Volume, np.ndarray, AttackRecord, AxisMap]:
    """Sample and apply ``attack`` on the axial view of ``volume``; the result, mask and record in the
    volume's own index order (centre, box, ``params`` centres), with the view's axis map.

    The attacks take axis 0 for the body axis (feet to head) and rows front to back, as in the axial series
    they were written and trained for: the CT-GAN's cubes and its noise (correlated within a slice), the
    slice-by-slice in-painting, the slice-wise lung mask of automatic placement and the thinner margin along
    z all assume it. A coronal, sagittal, prone or feet-first series is attacked as its axial view
    (:meth:`Volume.reoriented_axial`, as ``scan`` scores it), so the same seed forges the same voxels
    whatever order the series is stored in; ``center`` is an index of the volume as given.
    """
    amap = volume.axial_axes()
    rng = np.random.default_rng(seed)
    if amap.is_identity:
        params = attack.sample_params(volume, rng, center=center)
        return (*attack.apply(volume, params, seed=seed), amap)
    if center is not None and not all(0 <= c < n for c, n in zip(center, volume.shape, strict=True)):
        raise InputError(
            f"centre {tuple(center)} is outside the volume of shape {volume.shape}", path=volume.source
        )
    view = replace(volume, datasets=[]).reoriented_axial()
    nodules = volume.metadata.get("nodules")
    if nodules:
        view.metadata["nodules"] = [
            replace(n, center_voxel=amap.voxel_to_view(n.center_voxel), contours={}, extra={})
            if not isinstance(n, dict)
            else {**n, "center_voxel": amap.voxel_to_view(n["center_voxel"])}
            for n in nodules
        ]
    try:
        params = attack.sample_params(
            view, rng, center=None if center is None else amap.voxel_to_view(center)
        )
        out, mask_view, record = attack.apply(view, params, seed=seed)
    except InputError as err:
        how = ", ".join(
            f"{a} = series axis {k}{' reversed' if f else ''}"
            for a, k, f in zip("zyx", amap.axes, amap.flipped, strict=True)
        )
        raise InputError(f"{err.reason} (in the series' axial view: {how})", path=volume.source) from None
    for key in ("center", "donor_center"):
        if record.params.get(key) is not None:
            record.params[key] = list(amap.voxel_to_source(record.params[key]))
    if record.center_voxel is not None:
        record.center_voxel = amap.voxel_to_source(record.center_voxel)
    if record.bbox_voxel is not None:
        record.bbox_voxel = amap.box_to_source(record.bbox_voxel)
    tampered = volume.copy()
    tampered.array = amap.array_to_source(out.array)
    return tampered, amap.array_to_source(mask_view), record, amap


#: ``source_format`` of the 2-D picture formats (:func:`medforensics.io.image2d.read_image2d`).
PICTURES = ("png", "jpeg", "tiff")


def _write_picture(volume: Volume, out_dir: Path, source: Path) -> str:
    """A tampered PNG / JPEG / TIFF picture as a lossless PNG of the source's bit depth (8 or 16 bits; a JPEG
    is not re-encoded lossy), named after the source."""
    import io

    from PIL import Image

    from medforensics._atomic import write_bytes_atomic

    bits = 8 if int(volume.metadata.get("bit_depth") or 16) <= 8 else 16
    info = np.iinfo(np.uint8 if bits == 8 else np.uint16)
    px = np.clip(np.round(np.asarray(volume.array[0])), info.min, info.max).astype(info.dtype)
    buf = io.BytesIO()
    Image.fromarray(px).save(buf, format="PNG")
    name = source.with_suffix(".png").name
    write_bytes_atomic(out_dir / name, buf.getvalue())
    return name


def _write_series(volume: Volume, out_dir: Path, source: Path) -> list[str]:
    """The tampered series: NIfTI for NIfTI input, a PNG for a picture, else DICOM with the source's
    headers."""
    if volume.metadata.get("source_format") in PICTURES:
        return [_write_picture(volume, out_dir, source)]
    if is_nifti(source):
        from medforensics.io.nifti import write_nifti

        name = source.name
        write_nifti(volume, out_dir / name)
        return [name]
    try:
        from medforensics.io.dicom_write import write_dicom_series
    except ImportError:  # until the project writer lands
        return _rewrite_pixels(volume, out_dir, source)
    written = write_dicom_series(volume, out_dir, keep_encoding=True)  # as a PACS would hold it again
    return [Path(p).name for p in written] if written else sorted(p.name for p in out_dir.iterdir())


def _syntaxes(volume: Volume, written: Path) -> dict[str, str | None]:
    """The transfer syntax of the input series and of the first written file (DICOM only), and a note when
    the output was decompressed (a lossy syntax, or no lossless encoder for it here)."""
    import pydicom

    src = volume.metadata.get("transfer_syntax")
    out = str(pydicom.dcmread(written, stop_before_pixels=True).file_meta.TransferSyntaxUID)
    info: dict[str, str | None] = {"input": src, "output": out}
    if src is not None and src != out and pydicom.uid.UID(src).is_compressed:
        from medforensics.io.dicom_pixels import LOSSY_SYNTAXES, MAYBE_LOSSY_SYNTAXES

        why = (
            "a lossy syntax (not re-encoded)"
            if src in LOSSY_SYNTAXES | MAYBE_LOSSY_SYNTAXES
            else "no encoder"
        )
        info["note"] = (
            f"written uncompressed (Explicit VR Little Endian): input {pydicom.uid.UID(src).name}, {why}"
        )
    return info


def _rewrite_pixels(volume: Volume, out_dir: Path, source: Path) -> list[str]:
    """Fallback writer: the source files with only Pixel Data replaced (uncompressed)."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian

    files = [source] if source.is_file() else sorted(source.glob("*.dcm"))
    dss = sorted((pydicom.dcmread(f) for f in files), key=lambda d: float(d.ImagePositionPatient[2]))
    names = []
    for k, ds in enumerate(dss):
        slope, inter = float(getattr(ds, "RescaleSlope", 1)), float(getattr(ds, "RescaleIntercept", 0))
        dtype = np.int16 if int(ds.PixelRepresentation) == 1 else np.uint16
        info = np.iinfo(dtype)
        raw = np.clip(np.round((volume.array[k] - inter) / slope), info.min, info.max).astype(dtype)
        if ds.file_meta.TransferSyntaxUID.is_compressed:
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.PixelData = raw.tobytes()
        name = f"{k:04d}.dcm"
        ds.save_as(out_dir / name, enforce_file_format=True)
        names.append(name)
    return names


def tamper_series(
    source: Path,
    out_dir: Path,
    kind: str,
    center: tuple[int, int, int] | None = None,
    method: str | None = None,
    seed: int = 0,
    annotations: Path | None = None,
    noise_z: str = "independent",
    round_trip_mm: float | None = None,
) -> dict[str, Any]:
    """Run one attack on ``source`` and write the result to ``out_dir``; returns the sidecar dict.
    ``noise_z``: the noise-matched attacks' touch-up between slices (:class:`~.base.NoiseMatched`).
    ``round_trip_mm`` (CT): then the whole series is zoomed to voxels of that size and back, as the
    released CT-GAN tool handles every scan it edits (:mod:`~.round_trip`); the mask stays the edit's."""
    if kind not in DEFAULT_METHOD:
        raise ConfigError(f"kind must be inject or remove, got {kind!r}")
    method = method or DEFAULT_METHOD[kind]
    if method not in list_attacks(kind):
        article = "an" if kind[0] in "aeiou" else "a"
        known = ", ".join(list_attacks(kind))
        raise ConfigError(f"--method {method!r} is not {article} {kind} attack; known: {known}")
    if seed < 0:
        raise ConfigError(f"--seed must be 0 or more, got {seed}")
    matched = issubclass(attack_class(method), NoiseMatched)
    if not matched and noise_z != "independent":
        raise ConfigError(f"--noise-z {noise_z}: {method} adds no noise touch-up to match")
    attack = create_attack(method, noise_z=noise_z) if matched else create_attack(method)
    check_folder_output(out_dir, [source], marker="forgery.json")  # before any work: never lose data
    volume = read_input(source)
    if not np.isfinite(np.asarray(volume.array)).all():
        raise InputError("holds NaN or infinite voxel values (malformed rescale tags?)", path=source)
    if getattr(attack, "planar", False):  # a 2-D edit (image-clone): the image as it is, no axial view
        if round_trip_mm is not None:
            raise ConfigError(f"--round-trip-mm: {method} edits one image, not a CT series")
        check_modality(attack, volume)
        if annotations is not None:
            raise ConfigError(f"--annotations: {method} does not place at annotated nodules")
        rng = np.random.default_rng(seed)
        tampered, mask, record = attack.apply(volume, attack.sample_params(volume, rng, center), seed=seed)
        return _write_forgery(source, out_dir, method, volume, tampered, mask, record, volume.axial_axes())
    if volume.modality != "CT":
        raise InputError(f"{method} needs a CT series, got modality {volume.modality}", path=source)
    odd = ct_voxel_reason(volume.spacing)
    if odd:
        raise InputError(odd, path=source)
    axial_shape = volume.axial_axes().shape  # the attack's view (see attack_axial)
    if any(s < m for s, m in zip(axial_shape, MIN_SHAPE, strict=True)):
        raise InputError(
            f"volume too small for a CT attack: shape {volume.shape}"
            + ("" if axial_shape == volume.shape else f" ({axial_shape} axially)")
            + f", needs at least {MIN_SHAPE}",
            path=source,
        )
    if annotations is not None:
        attach_annotations(volume, annotations)
    tampered, mask, record, amap = attack_axial(attack, volume, center, seed)
    if round_trip_mm is not None:
        tampered = _round_tripped(volume, tampered, round_trip_mm)
    return _write_forgery(source, out_dir, method, volume, tampered, mask, record, amap, round_trip_mm)


def _round_tripped(volume: Volume, tampered: Volume, grid_mm: float) -> Volume:
    """``tampered`` zoomed to ``grid_mm`` voxels and back (:func:`~.round_trip.scan_round_trip`), rounded
    as the source is (integers from DICOM stay integers)."""
    from medforensics.forge.round_trip import scan_round_trip

    return tampered.with_array(
        rounded_like(volume.array, scan_round_trip(tampered.array, tampered.spacing, grid_mm))
    )


def _write_forgery(
    source: Path,
    out_dir: Path,
    method: str,
    volume: Volume,
    tampered: Volume,
    mask: np.ndarray,
    record: AttackRecord,
    amap: AxisMap,
    round_trip_mm: float | None = None,
) -> dict[str, Any]:
    """Write the forged series (or file), its mask and the ``forgery.json`` sidecar to ``out_dir`` at once;
    returns the sidecar (``round_trip_mm``: the whole series was zoomed through such voxels after the edit,
    so every voxel changed, not only the mask's)."""
    sidecar = {
        "tool": {"name": "medforensics", "version": __version__},
        **record.to_dict(),
        "input": {
            "path": str(source),
            "sha256": input_hash(source),
            "series_uid": volume.series_uid,
            "shape": list(volume.shape),
            "spacing_mm": list(volume.spacing),
        },
        "changed_voxels": int(mask.sum()),
    }
    if round_trip_mm is not None:
        sidecar["round_trip_mm"] = round_trip_mm
        sidecar["resampled_voxels"] = int(np.count_nonzero(tampered.array != volume.array))
    if not amap.is_identity:
        sidecar["attacked_as"] = {"axes": list(amap.axes), "flipped": list(amap.flipped)}
    from medforensics.io.nifti import write_nifti

    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        # a NIfTI or a picture: one file beside forgery.json; anything else a DICOM series folder
        one_file = is_nifti(source) or volume.metadata.get("source_format") in PICTURES
        series_dir = tmp if one_file else tmp / "series"
        series_dir.mkdir(exist_ok=True)
        sidecar["files"] = _write_series(tampered, series_dir, source)
        sidecar["series_folder"] = "." if one_file else "series"
        if not one_file and sidecar["files"]:
            sidecar["transfer_syntax"] = _syntaxes(volume, series_dir / sidecar["files"][0])
        write_nifti(volume.with_array(mask.astype(np.float32)), tmp / "mask.nii.gz", dtype=np.uint8)
        (tmp / "forgery.json").write_text(json.dumps(sidecar, indent=2) + "\n")
    log.info("%s on series %s: %d voxels edited", method, volume.series_uid, int(mask.sum()))
    return sidecar
