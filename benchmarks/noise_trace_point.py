"""A second, two-dimensional operating point from the noise trace: measured, not kept (session 51).

Most tampered series the bundled detector misses have their strongest region at the edit, with a score
under the series threshold (``scan_accuracy/README.md``, "Peak contrast"). With the edit's location given,
the inter-slice covariance of the noise residual separates CT-GAN and in-painting edits from authentic lung
(session 37, ``noise_trace/README.md``). This asks whether the two together make an operating point: a
candidate region (one of the three strongest regions ``scan`` reports) whose calibrated score is at least
``s0`` and whose covariance ratio is at most ``r0`` flags the series. The ratio: the mean product of the
in-plane KV residual of neighbouring slices over the aerated-lung voxels of an 8 mm sphere around the
candidate's centre, over the same mean over the series' whole aerated lung (about 1 for authentic lung,
about 0 where the scanner's noise was replaced).

It is read on series held to the scanner-noise operating point only, on two sets of series:
- ``--data DS --patients P``: a forge data set's series of the bundled detector's validation patient
  (where an operating point would be fitted);
- ``--seeds 0,1``: the main whole-series run of ``scan_accuracy.py`` (``--per-method 2 --augmented 5``).

For each (s0, r0) it counts the tampered series the rule adds (main run: with the firing region within
10 mm of the edit) and the authentic series it flags.

    python benchmarks/noise_trace_point.py --data DS --patients 93ad6a507f90 --seeds 0,1 --out FILE.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

#: Radius (mm) of the region around a candidate's centre.
RADIUS_MM = 8.0
#: Fewest aerated-lung voxel pairs a region needs for a ratio.
MIN_VOXELS = 20
S0 = (0.35, 0.4, 0.45, 0.5, 0.6)
R0 = (0.1, 0.2, 0.3)


def candidate_ratios(volume: Any, centres: list[list[int]]) -> list[float | None]:
    """The covariance ratio (see the module doc) around each full-resolution (z, y, x) centre."""
    from noise_trace_probe import residual_pairs

    prod, _, lung = residual_pairs(np.asarray(volume.array, np.float32))
    cov = float(prod[lung].mean(dtype=np.float64)) if lung.any() else 0.0
    out: list[float | None] = []
    for c in centres:
        reach = [int(np.ceil(RADIUS_MM / float(s))) + 1 for s in volume.spacing]
        sl = tuple(slice(max(0, int(v) - k), int(v) + k + 1) for v, k in zip(c, reach, strict=True))
        p, m = prod[sl], lung[sl]
        grids = np.ogrid[tuple(slice(s.start, s.start + n) for s, n in zip(sl, p.shape, strict=True))]
        d2 = sum(((g - v) * float(s)) ** 2 for g, v, s in zip(grids, c, volume.spacing, strict=True))
        inside = (d2 <= RADIUS_MM**2) & m
        ok = cov > 0 and int(inside.sum()) >= MIN_VOXELS
        out.append(float(p[inside].mean(dtype=np.float64)) / cov if ok else None)
    return out


def _features(volume: Any, res: Any) -> list[dict[str, Any]]:
    cands = (res.extra or {}).get("top_candidates") or []
    ratios = candidate_ratios(volume, [c["center_voxel"] for c in cands])
    return [
        {"score": c["score"], "center_voxel": c["center_voxel"], "ratio": r}
        for c, r in zip(cands, ratios, strict=True)
    ]


def validation_rows(data: Path, patients: list[str]) -> list[dict[str, Any]]:
    """The data set's TB/TM/FB/FM series of ``patients``, scanned as ``scan`` does, with their features."""
    from label_accuracy import manifest_rows

    from medforensics.io.reader import read_volume
    from medforensics.scan.detector import bundled_dir, load_detector
    from medforensics.scan.pipeline import scan_volume

    det = load_detector(bundled_dir("detector"))
    det.max_slice_mm = det.max_pixel_mm = 10.0
    rows = []
    for r in manifest_rows(data, set(), set(patients), ("TB", "TM", "FB", "FM")):
        vol = read_volume(data / "scans" / r["uuid"])
        vol.modality = vol.modality or "CT"
        res = scan_volume(vol, det, explain=None)
        rows.append(
            {
                "series": r["uuid"],
                "kind": r["method"] if r["type"] in ("FB", "FM") else "authentic",
                "augmentation": r.get("augmentation", ""),
                "verdict": res.verdict,
                "operating_point": res.extra.get("operating_point"),
                "cands": _features(vol, res),
            }
        )
    return rows


def main_run_rows(seed: int) -> list[dict[str, Any]]:
    """``scan_accuracy.run`` (the main run) with each scan's features."""
    import scan_accuracy

    import medforensics.scan.pipeline as pipeline
    from medforensics.scan.detector import bundled_dir

    feats: list[list[dict[str, Any]]] = []
    plain = pipeline.scan_volume

    def scan_and_measure(volume: Any, det: Any, **kw: Any) -> Any:
        res = plain(volume, det, **kw)
        feats.append(_features(volume, res))
        return res

    pipeline.scan_volume = scan_and_measure  # type: ignore[assignment]
    try:
        result = scan_accuracy.run(bundled_dir("detector"), 2, 5, seed)
    finally:
        pipeline.scan_volume = plain  # type: ignore[assignment]
    rows = [r for r in result["rows"] if "verdict" in r]
    for r, f in zip(rows, feats, strict=True):
        r["cands"] = f
        r["series"] = f"seed {seed}: {r['source']} {r['kind']}"
    return rows


def _firing(r: dict[str, Any], s0: float, r0: float) -> dict[str, Any] | None:
    """The first candidate of an unflagged scanner-noise series that the rule (s0, r0) fires on."""
    if r["verdict"] == "tampered" or r.get("operating_point") != "scanner noise":
        return None
    for c in r["cands"]:
        if c["ratio"] is not None and c["score"] >= s0 and c["ratio"] <= r0:
            return c
    return None


def _near(r: dict[str, Any], c: dict[str, Any]) -> bool:
    """Main run: candidate ``c`` is the strongest region and lies within 10 mm of the edit (the rows give
    that region's distance only, so a firing second or third region does not count)."""
    near = r.get("peak_distance_mm") is not None and r["peak_distance_mm"] <= 10
    return near and r["cands"].index(c) == 0


def table(name: str, rows: list[dict[str, Any]], localise: bool) -> list[str]:
    auth = [r for r in rows if r["kind"].startswith("authentic")]
    tamp = [r for r in rows if not r["kind"].startswith("authentic")]
    scanner = [r for r in rows if r.get("operating_point") == "scanner noise"]
    missed = [r for r in tamp if r in scanner and r["verdict"] != "tampered"]
    lines = [
        f"**{name}**: {len(auth)} authentic series ({sum(r in scanner for r in auth)} at the scanner-noise "
        f"point, {sum(r['verdict'] == 'tampered' for r in auth)} flagged), {len(tamp)} tampered "
        f"({sum(r['verdict'] == 'tampered' for r in tamp)} flagged; {len(missed)} missed at the "
        "scanner-noise point).",
        "",
        "| s0 \\ r0 | " + " | ".join(f"{r0:g}" for r0 in R0) + " |",
        "| --- |" + " --- |" * len(R0),
    ]
    for s0 in S0:
        cells = []
        for r0 in R0:
            gained = 0
            for r in missed:
                c = _firing(r, s0, r0)
                gained += c is not None and (not localise or _near(r, c))
            fired = sum(_firing(r, s0, r0) is not None for r in auth)
            cells.append(f"+{gained} / {fired}")
        lines.append(f"| {s0:g} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Each cell: tampered series the rule adds"
        + (" (its region within 10 mm of the edit)" if localise else "")
        + " / authentic series it flags.",
        "",
    ]
    low = sorted(
        (
            (c["score"], c["ratio"], r["series"], r.get("augmentation", ""))
            for r in auth
            if r in scanner
            for c in r["cands"]
            if c["ratio"] is not None and c["ratio"] <= max(R0)
        ),
        reverse=True,
    )[:5]
    if low:
        lines.append(
            f"Authentic regions with ratio <= {max(R0):g}, highest scores: "
            + "; ".join(f"{s:.3f} (ratio {q:.2f}, {n} {a})".rstrip() for s, q, n, a in low)
            + "."
        )
        lines.append("")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="forge data set (the validation patient's)")
    ap.add_argument("--patients", default="93ad6a507f90", help="patient keys of --data (comma-separated)")
    ap.add_argument("--seeds", default="0,1", help="main-run draws (comma-separated; empty: none)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True, help="Markdown table (a .json beside it)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {}
    if args.data is not None:
        result["validation"] = validation_rows(args.data, args.patients.split(","))
    for s in [int(s) for s in args.seeds.split(",") if s]:
        result[f"seed {s}"] = main_run_rows(s)
    lines = ["# Noise-trace operating point (benchmarks/noise_trace_point.py)", ""]
    for name, rows in result.items():
        lines += table(name, rows, localise=name != "validation")
    if len([k for k in result if k != "validation"]) > 1:
        both = [r for k, rows in result.items() if k != "validation" for r in rows]
        lines += table("main run, all draws", both, localise=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
