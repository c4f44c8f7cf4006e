"""The duplicated-region check of radiographs and MR (``scan.image_clones``) on real images (session 47).

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
series is searched). The false alarms on every other real MR series are ``benchmarks/mr_false_alarms.py``'s
rows (it scans them with ``scan``, which now runs this check: verdict ``tampered``).

``--jpeg Q,...``: the forgeries also scaled to 8 bits (between the 0.5 and 99.5 percentiles) and
JPEG-compressed at each quality, as an archive storing them lossy would hold them (a column for the 8-bit
copy at quality 100).

    python benchmarks/image_clones.py [--per-source 10] [--noise 0.5,1.0] [--jpeg 95,85] [--out FILE.md]
"""

from __future__ import annotations

import argparse
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
from medforensics.scan.image_clones import add_image_clone_findings, image_clones
from medforensics.scan.result import SeriesResult

SHARED_XRAY = Path(__file__).resolve().parents[2] / "shared" / "data" / "chest-xray"


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


def run_source(name: str, path: Path, n: int, noise: list[float], jpeg: list[int]) -> dict[str, Any]:
    vol = read_volume(path)
    vol = vol.with_array(np.asarray(vol.array, np.float32))
    t0 = time.perf_counter()
    authentic = image_clones(vol.array, vol.spacing)
    row: dict[str, Any] = {
        "source": name,
        "modality": vol.modality,
        "shape": "x".join(str(v) for v in vol.shape),
        "authentic_flagged": len(authentic),
        "authentic_s": time.perf_counter() - t0,
        "forged": 0,
        "skipped": 0,
        "results": [],
        "noisy": {f: [] for f in noise},
        "jpeg": {q: [] for q in jpeg},
        "eight_bit": [],
    }
    attack = create_attack("image-clone")
    for seed in range(n):
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
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    noise = [float(v) for v in args.noise.split(",") if v]
    jpeg = [int(v) for v in args.jpeg.split(",") if v]
    rows = []
    for name, path in sources():
        rows.append(run_source(name, path, args.per_source, noise, jpeg))
        r = rows[-1]
        print(
            f"{name}: authentic clones {r['authentic_flagged']}, found {_count(r['results'], 'flagged')}",
            flush=True,
        )
        if r["skipped"]:
            print(f"  skipped {r['skipped']}: {sorted(r['skip_reasons'])}")
    text = table(rows, noise, jpeg)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
