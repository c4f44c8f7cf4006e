"""Is an edit's noise trace still there once noise is added to the whole series? An oracle probe.

For every FB/FM/TB/TM scan of a ``forge dataset``, the inter-slice covariance of a high-pass residual is
averaged over the edit (FB/FM: the tamper mask, the oracle location) or over a random 8 mm lung sphere
(TB/TM), and divided by the same covariance over the rest of the aerated lung. Scanner noise correlates
between neighbouring slices; noise added after reconstruction, and the noise edits leave, do not.
Added noise leaves that covariance unchanged in expectation, so the ratio would survive the noise if the
trace were strong enough to measure. The AUC of each attack against the authentic scans is reported
separately for scans stored with the seed study's added noise and for scans with only scanner noise.

``--scan-level``: no oracle. The detector's own noise-energy and correlation channels
(:func:`~medforensics.train.dense_data.model_input`) are negated, smoothed (Gaussian, 3, 5 and 8 mm) and
their maximum (and 99.9th percentile) over the aerated lung is the scan's score: an untrained detector that
never saw an attack, scored like the dense detector (AUC of each attack against the authentic scans, scans
with scanner noise only).

``python benchmarks/noise_trace_probe.py --data DS [--residual kv|bandpass --sigma 0.7,1.4] --out FILE.json``
``python benchmarks/noise_trace_probe.py --data DS --scan-level --out FILE.json``
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from medforensics.features.noise_map import LUNG_HU, kv_residual
from medforensics.io.nifti import read_nifti
from medforensics.io.reader import read_volume
from medforensics.train.dense_data import noise_augmented


def residual(array: np.ndarray, kind: str, sigma: tuple[float, float]) -> np.ndarray:
    """The in-plane KV residual the detector reads (``kv``), or a difference of Gaussians (``bandpass``)."""
    a = array.astype(np.float32)
    if kind == "kv":
        return np.asarray(kv_residual(torch.from_numpy(a)).numpy())
    lo, hi = ((0.0, s, s) for s in sigma)
    return np.clip(ndimage.gaussian_filter(a, lo) - ndimage.gaussian_filter(a, hi), -60.0, 60.0)


def residual_pairs(
    array: np.ndarray, kind: str = "kv", sigma: tuple[float, float] = (0.7, 1.4)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each pair of neighbouring slices of ``array`` (z, y, x; HU): the product of their residuals, their
    mean residual energy, and where their mean HU is aerated lung (eroded in-plane by one voxel)."""
    res = residual(array, kind, sigma)
    prod, energy = res[:-1] * res[1:], 0.5 * (res[:-1] ** 2 + res[1:] ** 2)
    hu = 0.5 * (array[:-1].astype(np.float32) + array[1:])
    lung = ndimage.binary_erosion((hu > LUNG_HU[0]) & (hu < LUNG_HU[1]), np.ones((1, 3, 3), bool))
    return prod, energy, lung


def probe(root: Path, kind: str, sigma: tuple[float, float], seed: int = 0) -> list[dict[str, Any]]:
    """One row per scan: covariance and energy inside the region and over the rest of the lung."""
    rng = np.random.default_rng(seed)
    with (root / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["type"] in ("TB", "TM", "FB", "FM")]
    out = []
    for r in rows:
        vol = read_volume(root / "scans" / r["uuid"])
        prod, energy, lung = residual_pairs(vol.array, kind, sigma)
        if r["type"] in ("FB", "FM"):
            m = read_nifti(root / "masks" / f"{r['uuid']}.nii.gz").array > 0
            region = m[:-1] & m[1:]
        else:
            cands = np.argwhere(lung)
            c = cands[rng.integers(len(cands))]
            grids = np.ogrid[tuple(slice(0, n) for n in lung.shape)]
            d2 = sum(((g - ci) * s) ** 2 for g, ci, s in zip(grids, c, vol.spacing, strict=True))
            region = d2 <= 8.0**2
        ref = lung & ~region
        if region.sum() < 20 or ref.sum() < 1000:
            continue
        cov_lung = float(prod[ref].mean())
        out.append(
            {
                "type": r["type"],
                "method": r["method"],
                "noisy": noise_augmented(r),
                "voxels": int(region.sum()),
                "corr_lung": cov_lung / float(energy[ref].mean()),
                "ratio": float(prod[region].mean()) / cov_lung,
            }
        )
    return out


def scan_level(root: Path) -> list[dict[str, Any]]:
    """One row per scan: the untrained deficit scores of the detector's channels (see the module doc)."""
    from medforensics.train.dense_data import TARGET_MM, model_input

    with (root / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["type"] in ("TB", "TM", "FB", "FM")]
    out = []
    for r in rows:
        vol = read_volume(root / "scans" / r["uuid"])
        g = model_input(vol.array, vol.spacing, TARGET_MM, noise=True, zcorr=True)
        lung = ndimage.binary_closing((g.hu > LUNG_HU[0]) & (g.hu < LUNG_HU[1]), np.ones((1, 5, 5), bool))
        inner = ndimage.binary_erosion(lung, np.ones((1, 3, 3), bool))
        rec: dict[str, Any] = {"type": r["type"], "method": r["method"], "noisy": noise_augmented(r)}
        for mm in SCAN_LEVEL_MM:
            for name, ch in (("corr", g.zcorr), ("energy", g.noise)):
                assert ch is not None
                m = ndimage.gaussian_filter(-ch, [mm / s for s in g.spacing], mode="nearest")[inner]
                rec[f"{name}_{mm:g}mm_max"] = float(m.max()) if m.size else float("nan")
                rec[f"{name}_{mm:g}mm_p99.9"] = float(np.percentile(m, 99.9)) if m.size else float("nan")
        out.append(rec)
    return out


#: Smoothing (mm, Gaussian sigma) of :func:`scan_level`'s deficit maps.
SCAN_LEVEL_MM = (3.0, 5.0, 8.0)


def scan_level_summary(rows: list[dict[str, Any]]) -> str:
    """Markdown: per score, each attack's AUC against the authentic scans (scanner noise only)."""
    part = [r for r in rows if not r["noisy"]]
    auth = [r for r in part if r["type"] in ("TB", "TM")]
    methods = sorted({r["method"] for r in part if r["type"] in ("FB", "FM")})
    keys = [k for k in rows[0] if k.startswith(("corr_", "energy_"))]
    lines = [
        f"| score ({len(auth)} authentic scans) | " + " | ".join(methods) + " | mean |",
        "| --- |" + " --- |" * (len(methods) + 1),
    ]
    for k in keys:
        aucs = []
        for m in methods:
            fake = [r for r in part if r["method"] == m and r["type"] in ("FB", "FM")]
            aucs.append(roc_auc_score([0] * len(auth) + [1] * len(fake), [r[k] for r in auth + fake]))
        lines.append(f"| {k} | " + " | ".join(f"{a:.3f}" for a in aucs) + f" | {np.mean(aucs):.3f} |")
    return "\n".join(lines) + "\n"


def summary(rows: list[dict[str, Any]]) -> str:
    """Markdown: per noise kind, the authentic ratios and each attack's AUC (a lower ratio = tampered)."""
    lines = ["| series noise | attack | scans | median ratio | AUC |", "| --- | --- | --- | --- | --- |"]
    for noisy in (False, True):
        name = "added after reconstruction" if noisy else "scanner only"
        part = [r for r in rows if r["noisy"] == noisy]
        auth = [r for r in part if r["type"] in ("TB", "TM")]
        corr = np.median([r["corr_lung"] for r in auth])
        lines.append(
            f"| {name} | authentic (lung correlation {corr:.3f}) | {len(auth)} | "
            f"{np.median([r['ratio'] for r in auth]):.2f} | - |"
        )
        for m in sorted({r["method"] for r in part if r["type"] in ("FB", "FM")}):
            fake = [r for r in part if r["method"] == m and r["type"] in ("FB", "FM")]
            y = [0] * len(auth) + [1] * len(fake)
            auc = roc_auc_score(y, [-r["ratio"] for r in auth + fake])
            lines.append(
                f"| {name} | {m} | {len(fake)} | {np.median([r['ratio'] for r in fake]):.2f} | {auc:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="a forge data set (manifest.csv, scans, masks)")
    ap.add_argument("--residual", choices=("kv", "bandpass"), default="kv")
    ap.add_argument("--sigma", default="0.7,1.4", help="bandpass: the two in-plane Gaussian sigmas (voxels)")
    ap.add_argument("--scan-level", action="store_true", help="the untrained scan-level scores instead")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True, help="JSON of every row; the table goes beside (.md)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    s1, s2 = (float(v) for v in args.sigma.split(","))
    if args.scan_level:
        rows = scan_level(args.data)
        text = scan_level_summary(rows)
    else:
        rows = probe(args.data, args.residual, (s1, s2), args.seed)
        text = summary(rows)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"residual": args.residual, "sigma": [s1, s2], "scan_level": args.scan_level, "rows": rows}
        )
        + "\n"
    )
    args.out.with_suffix(".md").write_text(text)


if __name__ == "__main__":
    main()
