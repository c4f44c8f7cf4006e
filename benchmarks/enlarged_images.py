"""The enlarged-slices rule on single images, MR series and radiographs (``scan.enlarged_images``).

One side: real images ``scan`` scores with its 2-D path, traced as it traces them
(:func:`~medforensics.scan.enlarged_images.image_trace`): every MR volume and image of the MR false-alarm
suite (``mr_false_alarms.py``'s items, read as it reads them; ``--root`` as there), pydicom's and
pydicom-data's test images (CT, MR, CR, DX and secondary captures; a file read whole, each series once),
and the NIH ChestX-ray14 radiographs of ``../shared/data`` when present. The other: this project's DCGAN
CT, MR and radiograph images (``--images`` per row) enlarged 3-8-fold (192-512 pixels) bilinear, nearest
and bicubic, rounded to integers or stored as 8-bit (and as 8-bit JPEG, quality 90), and with Gaussian noise
of 1 and 2 % of the range added after. The real single radiographs and MR images of 256 pixels or more are
also coded as 8-bit JPEG at qualities 10-90, as exports and secondary captures are. Prints one Markdown
table per side (period found, phase ratio; found rows in bold) and the lowest real ratio against the
highest synthetic one found; ``--out`` also writes them.

    python benchmarks/enlarged_images.py [--root DIR] [--images 4] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mr_false_alarms as mfa

from medforensics.io.volume import Volume
from medforensics.scan.enlarged import ENLARGED, ROTATED_PEAK, enlargement, rotated_enlargement
from medforensics.scan.enlarged_images import IMAGE_PERIODS, image_trace

SIZES = (192, 256, 320, 384, 448, 512, 640, 768, 1024)
MODES = ("bilinear", "nearest", "bicubic")
MODALITY = {"ct": "CT", "mr": "MR", "xray": "DX"}
QUALITIES = (10, 30, 50, 75, 90)


def traced(volume: Volume) -> tuple[int, float, float, bool]:
    """(period, phase ratio, turned strength, reported) of ``volume`` as ``scan`` traces a single image or an
    image series (phases on JPEG's block edges not tested; reported: ``scan`` would add the finding)."""
    trace = image_trace(volume)
    period, ratio = enlargement(trace, block_edges=False, periods=IMAGE_PERIODS)
    strength = rotated_enlargement(trace)[1]
    return period, ratio, strength, period > 0 or strength >= ROTATED_PEAK


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """``image`` (y, x) scaled to 8 bits over its 0.5-99.5 percentiles and coded as JPEG, decoded."""
    import io

    from PIL import Image

    lo, hi = (float(v) for v in np.percentile(image, (0.5, 99.5)))
    b = np.clip((image - lo) / max(hi - lo, 1e-6) * 255.0, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(b).save(buf, "JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im, np.float32)


def _row(cells: list[Any], found: bool) -> str:
    text = " | ".join(str(c) for c in cells)
    return f"| {text} |" if not found else "| " + " | ".join(f"**{c}**" for c in cells) + " |"


def real_rows(roots: list[Path]) -> list[tuple[str, str, str, int, float]]:
    """(source, file, shape, period, ratio, turned strength, reported) of every real image found."""
    from medforensics.io.reader import discover, load

    rows = []
    seen: set[Any] = set()
    with tempfile.TemporaryDirectory(prefix="enl-img-") as tmp:
        for item in mfa.ITEMS:
            path = mfa.locate(item.rel, roots)
            if path is None or (path.resolve(), item.how) in seen:
                continue
            seen.add((path.resolve(), item.how))
            try:
                vols = mfa.volumes_of(item, path, Path(tmp))
            except Exception as err:  # a file the reader refuses is not scored by scan either
                print(f"skipped {item.rel}: {err}", file=sys.stderr)
                continue
            for v in vols:
                rows.append((f"{item.source} ({item.kind})", path.name, str(v.shape), *traced(v)))
    import pydicom

    files = sorted(
        glob.glob(os.path.join(os.path.dirname(pydicom.__file__), "data", "**", "*.dcm"), recursive=True)
    )
    try:
        from pydicom.data import get_testdata_file

        rg1 = get_testdata_file("RG1_UNCR.dcm", download=False)
        if rg1:
            files += sorted(glob.glob(os.path.join(os.path.dirname(str(rg1)), "*.dcm")))
    except Exception:  # pydicom-data absent
        pass
    for f in files:
        try:
            refs = discover([Path(f)]).series
            vols = [load(r) for r in refs]
        except Exception:
            continue
        for v in vols:
            key = (v.modality, v.shape, float(np.asarray(v.array[0], np.float64).mean()))
            if v.modality not in ("CT", "MR", "CR", "DX", "OT", "RG") or min(v.shape[1:]) < 64 or key in seen:
                continue
            seen.add(key)
            rows.append((f"pydicom ({v.modality})", Path(f).name, str(v.shape), *traced(v)))
            if v.shape[0] == 1 and v.modality in ("MR", "CR", "DX") and min(v.shape[1:]) >= 256:
                for q in QUALITIES:
                    coded = Volume(jpeg(np.asarray(v.array[0], np.float32), q)[None], modality=v.modality)
                    rows.append(
                        (
                            f"pydicom ({v.modality}), 8-bit JPEG q{q}",
                            Path(f).name,
                            str(v.shape),
                            *traced(coded),
                        )
                    )
    shared = Path(
        os.environ.get("MEDFORENSICS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    for png in sorted((shared / "chest-xray").glob("*.png")):
        from PIL import Image

        with Image.open(png) as im:
            arr = np.asarray(im.convert("F"), np.float32)[None]
        rows.append(("NIH ChestX-ray14 (DX)", png.name, str(arr.shape), *traced(Volume(arr, modality="DX"))))
        for q in QUALITIES:
            coded = Volume(jpeg(arr[0], q)[None], modality="DX")
            rows.append((f"NIH ChestX-ray14 (DX), JPEG q{q}", png.name, str(arr.shape), *traced(coded)))
    return rows


def synthetic_rows(n: int) -> list[tuple[str, str, str, str, int, float]]:
    """(modality, size, mode, storage, period, ratio, turned strength, reported) of the DCGAN's images
    enlarged."""
    from medforensics.forge.dcgan import bundled_weights, generate, load_generator, slerp_latents, to_units

    rows = []
    rng = np.random.default_rng(0)
    for key in ("ct", "mr", "xray"):
        g = load_generator(bundled_weights(key))
        imgs = torch.from_numpy(generate(g, n, z=slerp_latents(g.cfg.nz, n, 0, span=0.35)))[:, None]
        for size in SIZES:
            for mode in MODES:
                kw: dict[str, Any] = {} if mode == "nearest" else {"align_corners": False}
                big = torch.nn.functional.interpolate(imgs, size=(size, size), mode=mode, **kw)[:, 0].numpy()
                units = to_units(big, key)
                span = float(np.percentile(units, 99.5) - np.percentile(units, 0.5))
                stored = {"integers": np.round(units)}
                if key != "ct":  # an 8-bit PNG or secondary capture, and one coded as JPEG
                    stored["8-bit"] = np.round(
                        (units - units.min()) / max(float(np.ptp(units)), 1e-6) * 255.0
                    )
                    stored["8-bit JPEG q90"] = jpeg(units[0], 90)[None]
                for frac in (0.01, 0.02):
                    stored[f"+{frac:.0%} noise"] = np.round(
                        units + frac * span * rng.standard_normal(units.shape)
                    )
                for how, arr in stored.items():
                    vol = Volume(np.asarray(arr[:1], np.float32), modality=MODALITY[key])  # one image
                    rows.append((key, f"{size} ({size // 64}-fold)", mode, how, *traced(vol)))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", action="append", type=Path, default=[], help="as mr_false_alarms.py's --root")
    ap.add_argument("--images", type=int, default=4, help="DCGAN images generated per modality")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    real = real_rows([*args.root, *mfa.default_roots()])
    head = f"period found, phase ratio (found under {ENLARGED}), turned strength (from {ROTATED_PEAK:.0f})"
    lines = [
        f"Real images ({len(real)}): {head}; bold: reported",
        "",
        "| source | file | shape | period | phase ratio | turned strength |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [_row([s, f, sh, p, f"{r:.3f}", f"{t:.0f}"], hit) for s, f, sh, p, r, t, hit in real]
    syn = synthetic_rows(args.images)
    lines += [
        "",
        f"DCGAN images enlarged ({len(syn)}; one image each): {head}; bold: reported",
        "",
        "| modality | size | mode | stored | period | phase ratio | turned strength |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [_row([m, s, mo, h, p, f"{r:.3f}", f"{t:.0f}"], hit) for m, s, mo, h, p, r, t, hit in syn]
    medical = [row for row in real if "(OT)" not in row[0]]
    lines += [
        "",
        f"real images reported: {sum(row[-1] for row in medical)} of {len(medical)} routed to the 2-D path "
        f"(lowest ratio {min(row[4] for row in medical):.3f}, highest turned strength "
        f"{max(row[5] for row in medical):.0f}); secondary captures (OT, not routed): "
        f"{sum(row[-1] for row in real if '(OT)' in row[0])} of {len(real) - len(medical)}; synthetic "
        f"reported: {sum(row[-1] for row in syn)} of {len(syn)}",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
