"""A scan's journal (``scan --journal DIR``): each series' result kept as soon as it is scanned.

A hospital scans an archive of thousands of series over hours; without a journal an interruption (Ctrl-C,
a reboot, a killed job) loses every result, since the reports are written at the end. With one, each
finished series is written to ``DIR`` at once (atomically: a JSON entry and, when its findings carry
heatmaps or masks, an ``.npz`` beside it), and a scan given the same ``DIR`` again takes a series' result
from there instead of scanning it, but only when nothing that decides the result has changed:

- the series: its path (an archive member's as reported), series UID, and the SHA-256 of every one of its
  files (not their sizes and times: an edit in place keeps the size, and a file's time can be set back);
- the settings: the detectors (hash, threshold, the arithmetic their network runs in here), the options
  (``--explain``, the slice and pixel limits, the clone check and its region) and the code of this
  installation (a hash of its Python modules). A kept result's signature status is not kept but checked
  again, with the trusted certificates given this time (a certificate may have expired since).

So the same command resumes an interrupted scan, and a scheduled rescan of a growing folder scans only what
is new or changed. A series found at another path than its entry's (an export moved or renamed, tonight's
export holding yesterday's studies again, the same series copied into several folders) is reused too when
its files' names within its folder, their SHA-256 and its UID are those of an entry: an index of the
entries by their files' names and sizes (cheap: no file is read) names the candidates, whose files are
then hashed; the result is reported under the series' path of today.

Series that ended in ``verdict: "error"`` are not kept (an out-of-memory error or a dead
worker may not recur, and a series that cannot be read costs little to try again). Entries that do not
match are scanned again and replaced; an unreadable one (a crash during a write cannot leave one, but a
disk error can) is scanned again too. The folder holds what the JSON report holds (paths, which exports
often name after patients, and UIDs; the findings' heatmaps, not pixels) and must be guarded as the reports
are: whoever can read it learns what they say. Whoever can write it cannot write a verdict the next scan
takes: each entry carries an HMAC under a key outside the folder (:mod:`~medforensics.scan.journal_key`),
and an entry that fails it is scanned again and counted in :meth:`Journal.summary`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from medforensics._atomic import check_writable, write_bytes_atomic, write_text_atomic
from medforensics._code import code_hash
from medforensics._json import json_digest
from medforensics.errors import MedforensicsError, OutputError
from medforensics.logging import get_logger
from medforensics.scan.detector import report_info, sha256_file
from medforensics.scan.journal_key import entry_mac, journal_key, verify_mac
from medforensics.scan.result import Finding, SeriesResult

log = get_logger("scan.journal")

#: The file that marks a folder as a scan journal (a folder holding other files is refused).
MARKER = "medforensics-journal.json"
#: Version of the entries' layout: entries of another version are not read.
FORMAT = 2
#: Entries an index of one file layout names (series of the same file names and sizes, newest first).
INDEX_KEEP = 8
#: SeriesResult fields stored as tuples (JSON gives lists back).
_TUPLES = ("shape", "spacing_mm", "center_voxel", "center_mm", "bbox_voxel")


def _per_file(files: Iterable[Path], what: Callable[[Path], Any]) -> str | None:
    """SHA-256 over ``(path below the files' common folder, what(file))`` of every file, sorted; None when
    a file cannot be read."""
    paths = [Path(p) for p in files]
    try:
        base = os.path.commonpath([str(p.parent) for p in paths]) if paths else ""
        return json_digest(sorted((os.path.relpath(p, base), what(p)) for p in paths))
    except (OSError, ValueError):
        return None


def files_digest(files: Iterable[Path]) -> str | None:
    """SHA-256 over a series' files: each one's path below their common folder and the SHA-256 of its bytes
    (taken before the series is read, so a result is never filed under bytes it was not computed from).
    None when a file cannot be read: such a series is not kept (its scan reports why)."""
    return _per_file(files, sha256_file)


def files_layout(files: Iterable[Path]) -> str | None:
    """SHA-256 over a series' files' paths below their common folder and their sizes (no file is read): what
    a copy of the series elsewhere has too. None when a file cannot be reached."""
    return _per_file(files, lambda p: p.stat().st_size)


def _kind_and_uid(identity: str) -> tuple[str, str]:
    """The kind and series UID of a :func:`series_identity` (its first and last field: neither holds "|")."""
    return identity.split("|", 1)[0], identity.rsplit("|", 1)[-1]


@dataclasses.dataclass
class Lookup:
    """What :meth:`Journal.lookup` found of a series: its stored result (None: scan it), whether its volume
    could be read, and its files' digest when the lookup took it (for :meth:`Journal.put`, not to hash them
    twice)."""

    result: SeriesResult | None = None
    loaded: bool = False
    digest: str | None = None


def _detector_id(detector: Any) -> Any:
    """What of a detector decides its scores: its report info (weights hash, threshold, precision here), its
    calibration and those of a detector it hands series to (the noise specialist)."""
    if detector is None:
        return None
    calib = getattr(detector, "calibration", None)
    return {
        "info": report_info(detector).to_dict(),
        "calibration": repr(calib),
        "specialist": _detector_id(getattr(detector, "specialist", None)),
    }


def scan_settings(detector: Any, detector2d: Any, explain: str | None) -> dict[str, Any]:
    """What decides a series' result besides the series itself (see module docs; not the signature check,
    which a kept result gets again)."""
    out: dict[str, Any] = {
        "detector": _detector_id(detector),
        "detector2d": _detector_id(detector2d),
        "explain": explain,
    }
    for name in ("max_slice_mm", "max_pixel_mm", "clone_check", "clone_region"):
        out[name] = getattr(detector, name, None)
    return out


# ------------------------------------------------------------------------------------------ (de)serialising
def _plain(value: Any) -> Any:
    """``value`` as JSON holds it: tuples as lists, numpy scalars as Python numbers."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _fields(obj: Any, skip: Iterable[str]) -> dict[str, Any]:
    return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.name not in skip}


def _tuples(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: (tuple(v) if k in _TUPLES and isinstance(v, list) else v) for k, v in raw.items()}


def result_record(res: SeriesResult) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``res`` as a JSON-ready dict (every field, full precision, findings in their order) and its findings'
    heatmaps and masks by name (``heatmap_<i>``, ``mask_<i>``)."""
    record = _fields(res, ("findings", "key"))
    record["findings"] = [_fields(f, ("heatmap", "mask")) for f in res.findings]
    arrays: dict[str, np.ndarray] = {}
    for i, f in enumerate(res.findings):
        if f.heatmap is not None:
            arrays[f"heatmap_{i}"] = np.asarray(f.heatmap)
        if f.mask is not None:
            arrays[f"mask_{i}"] = np.asarray(f.mask)
    return record, arrays


def result_from_record(record: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> SeriesResult:
    """The :class:`SeriesResult` :func:`result_record` stored (``ValueError``/``KeyError``/``TypeError`` for
    a record that is not one)."""
    raw = dict(record)
    findings = []
    for i, f in enumerate(raw.pop("findings")):
        finding = Finding(**_tuples(dict(f)))
        finding.heatmap = arrays.get(f"heatmap_{i}")
        finding.mask = arrays.get(f"mask_{i}")
        findings.append(finding)
    return SeriesResult(**_tuples(raw), findings=findings)


# ----------------------------------------------------------------------------------------------- journal
class Journal:
    """The journal folder of one scan (see module docs); :meth:`bind` gives it the scan's settings."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.settings = ""
        self.reused = self.written = self.stale = self.unreadable = self.copies = self.forged = 0
        self._write_failed = False
        self._key = b""
        self._lock = threading.Lock()

    @staticmethod
    def check(folder: str | os.PathLike[str]) -> None:
        """:class:`OutputError` before any work when ``folder`` cannot be a journal: a file, a folder
        holding other files than a journal's, or one that cannot be written."""
        folder = Path(folder)
        check_writable(folder, folder=True)
        if folder.is_dir() and any(folder.iterdir()) and not (folder / MARKER).is_file():
            raise OutputError(
                "already holds other files and is not a scan journal: choose a new or empty folder",
                path=folder,
            )

    def create(self) -> None:
        """Check the folder (:meth:`check`), read or make the key its entries are authenticated with
        (:mod:`~medforensics.scan.journal_key`) and make the folder a journal (the folder and its marker
        file); :class:`OutputError` when that cannot be done."""
        self.check(self.folder)
        if not (self.folder / MARKER).is_file():
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(
                    f"cannot be made ({exc.strerror or type(exc).__name__})", path=self.folder
                ) from None
            marker = {"what": "medforensics scan journal: one entry per scanned series", "format": FORMAT}
            write_text_atomic(self.folder / MARKER, json.dumps(marker) + "\n")
        self._key = self._key or journal_key()

    def bind(self, settings: Mapping[str, Any]) -> None:
        """Set the scan's settings (what decides a result besides the series); :meth:`create` the folder."""
        self.settings = json_digest({**settings, "code": code_hash(), "format": FORMAT})
        self.create()

    def _name(self, identity: str) -> str:
        return hashlib.sha256(identity.encode("utf-8", "surrogateescape")).hexdigest()[:32]

    def _fingerprint(self, identity: str, digest: str) -> str:
        return json_digest([identity, self.settings, digest])

    def _content(self, identity: str, digest: str) -> str:
        return json_digest(["content", *_kind_and_uid(identity), self.settings, digest])

    def _index(self, identity: str, layout: str) -> Path:
        """The index file of the entries whose series have ``layout`` (:func:`files_layout`)."""
        return self.folder / f"{self._name(json_digest(['layout', *_kind_and_uid(identity), layout]))}.layout"

    def lookup(self, identity: str, files: Iterable[Path]) -> Lookup:
        """The stored result of the series ``identity`` whose files are ``files`` as they are now: from its
        entry when that matches the settings and the files' digest, else from the entry of a series of the
        same UID, file names and bytes at another path. The files are hashed only when an
        entry may match. The result comes without its signature status (and finding), for the caller to
        check, and (from elsewhere) with the path of the series it was scanned as."""
        counts: Counter[str] = Counter()
        try:
            return self._lookup(identity, list(files), counts)
        finally:
            with self._lock:  # lookups may run in threads (:meth:`lookup_all`)
                for name, n in counts.items():
                    setattr(self, name, getattr(self, name) + n)

    def lookup_all(
        self,
        items: Sequence[tuple[str, Sequence[Path]] | None],
        threads: int,
        on_each: Callable[[int], None] | None = None,
    ) -> list[Lookup]:
        """:meth:`lookup` of each ``(identity, files)`` (None: not looked up, an empty :class:`Lookup`), on
        up to ``threads`` threads (hashing a series' files releases the GIL): an archive's resumed scan with
        ``--jobs`` looks every series up before the workers start. ``on_each(i)`` is called here, in order,
        as each is done; an interrupt drops the lookups not started."""
        ex = ThreadPoolExecutor(max(1, threads))
        out: list[Lookup] = []
        try:
            for i, got in enumerate(ex.map(lambda it: Lookup() if it is None else self.lookup(*it), items)):
                out.append(got)
                if on_each is not None:
                    on_each(i)
        finally:
            ex.shutdown(wait=True, cancel_futures=True)
        return out

    def _lookup(self, identity: str, files: list[Path], counts: Counter[str]) -> Lookup:
        entry = self.folder / f"{self._name(identity)}.json"
        digest, stale = None, False
        if entry.is_file():
            digest = files_digest(files)
            if digest is None:
                return Lookup()
            fingerprint = self._fingerprint(identity, digest)
            bad = counts["forged"] + counts["unreadable"]
            got = self._read(entry, lambda d: d.get("fingerprint") == fingerprint, counts)
            if got is not None:
                counts["reused"] += 1
                return Lookup(*got, digest=digest)
            stale = counts["forged"] + counts["unreadable"] == bad  # an entry of other files or settings
        got, digest = self._copy(identity, files, entry.name, digest, counts)
        if got is not None:
            counts["reused"] += 1
            counts["copies"] += 1
            return Lookup(*got, digest=digest)
        counts["stale"] += stale
        return Lookup(digest=digest)

    def _copy(
        self, identity: str, files: list[Path], own: str, digest: str | None, counts: Counter[str]
    ) -> tuple[tuple[SeriesResult, bool] | None, str | None]:
        """The result of an entry of the same series at another path (its index's candidates; not the
        entry ``own``), and the files' digest when it was taken (``digest``: already taken)."""
        layout = files_layout(files)
        index = self._index(identity, layout) if layout is not None else None
        if index is None or not index.is_file():
            return None, digest
        try:
            names = [str(n) for n in json.loads(index.read_text(encoding="utf-8"))]
        except (OSError, ValueError, TypeError):
            return None, digest
        digest = digest or files_digest(files)
        if digest is None:
            return None, None
        content = self._content(identity, digest)
        for name in names:
            if Path(name).name == name and name.endswith(".json") and name != own:
                got = self._read(self.folder / name, lambda d: d.get("content") == content, counts)
                if got is not None:
                    return got, digest
        return None, digest

    def _read(
        self, entry: Path, matches: Callable[[dict[str, Any]], bool], counts: Counter[str]
    ) -> tuple[SeriesResult, bool] | None:
        """The result and ``loaded`` of ``entry`` when it is of this format and ``matches`` (else None); one
        that fails its authentication or cannot be read is logged and counted in ``counts``."""
        try:
            data = json.loads(entry.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                return None
            blob = b""
            if data.get("arrays"):  # a name of this entry's own: never another entry's arrays
                if Path(data["arrays"]).name != data["arrays"] or not data["arrays"].startswith(entry.stem):
                    raise ValueError("arrays file outside its entry")
                blob = (self.folder / data["arrays"]).read_bytes()
            if not verify_mac(self._key, data, blob):
                log.warning(
                    "journal entry %s fails its authentication (changed outside medforensics, or written "
                    "under another key): not taken, its series is scanned again",
                    entry.name,
                )
                counts["forged"] += 1
                return None
            if not matches(data):
                return None
            arrays: dict[str, np.ndarray] = {}
            if blob:
                with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
                    arrays = {k: npz[k] for k in npz.files}
            res, loaded = result_from_record(data["result"], arrays), bool(data["loaded"])
            # its signature status is not kept: a certificate may have expired since, it is checked again
            res.findings = [f for f in res.findings if f.type != "signature"]
            res.signature = None
        except FileNotFoundError:
            return None  # an index names an entry that is gone
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            log.warning("journal entry %s unreadable (%s): scanned again", entry.name, type(err).__name__)
            counts["unreadable"] += 1
            return None
        return res, loaded

    def put(
        self, identity: str, digest: str | None, res: SeriesResult, loaded: bool, files: Iterable[Path] = ()
    ) -> None:
        """Store ``res``, the result of the series ``identity`` whose files had :func:`files_digest`
        ``digest`` before it was read, and whether its volume could be read: its arrays first, then the entry
        that names them (a crash between the two leaves the old entry or none), then the entry's name in the
        index of its ``files``' layout (for copies elsewhere). A write that fails is logged once and the scan
        goes on without the journal; a series whose files could not be hashed (``digest`` None) is not
        kept."""
        if self._write_failed or digest is None:
            return
        entry = self.folder / f"{self._name(identity)}.json"
        record, arrays = result_record(res)
        fingerprint = self._fingerprint(identity, digest)
        # the arrays' file is named by the fingerprint: an entry never names arrays of another scan of it
        npz = f"{entry.stem}.{fingerprint[:16]}.npz" if arrays else None
        try:
            blob = b""
            if npz is not None:
                buf = io.BytesIO()
                np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
                blob = buf.getvalue()
                write_bytes_atomic(self.folder / npz, blob)
            data = {"format": FORMAT, "fingerprint": fingerprint, "arrays": npz, "loaded": loaded}
            data["content"] = self._content(identity, digest)
            data["result"] = record
            data = json.loads(json.dumps(data, allow_nan=True))  # as it will be read back
            data["mac"] = entry_mac(self._key, data, blob)
            write_text_atomic(entry, json.dumps(data, allow_nan=True) + "\n")
            self._add_to_index(identity, files, entry.name)
        except (MedforensicsError, OSError, TypeError, ValueError) as err:
            if npz is not None:  # arrays no entry names
                (self.folder / npz).unlink(missing_ok=True)
            self._write_failed = True
            log.warning("journal %s not written, the scan goes on without it: %s", self.folder, err)
            return
        for old in self.folder.glob(f"{entry.stem}.*.npz"):  # an earlier scan's arrays of this series
            if old.name != npz:
                old.unlink(missing_ok=True)
        self.written += 1

    def _add_to_index(self, identity: str, files: Iterable[Path], name: str) -> None:
        """Name the entry ``name`` first in the index of its files' layout (the newest :data:`INDEX_KEEP`)."""
        layout = files_layout(files)
        if layout is None:
            return
        index = self._index(identity, layout)
        try:
            names = [str(n) for n in json.loads(index.read_text(encoding="utf-8"))]
        except (OSError, ValueError, TypeError):
            names = []
        names = [name, *(n for n in names if n != name)][:INDEX_KEEP]
        write_text_atomic(index, json.dumps(names) + "\n")

    def summary(self) -> str:
        """One line: what the journal gave and took."""
        copies = f" ({self.copies} of them found at another path)" if self.copies else ""
        parts = [f"{self.reused} series reused{copies}", f"{self.written} scanned and kept"]
        if self.stale:
            parts.append(f"{self.stale} changed since (files or settings) and scanned again")
        if self.forged:
            why = "failed their authentication (changed outside medforensics?)"
            parts.append(f"{self.forged} {why} and scanned again")
        if self.unreadable:
            parts.append(f"{self.unreadable} unreadable and scanned again")
        if self._write_failed:
            parts.append("writing failed part-way (see the log)")
        return f"journal {self.folder}: " + ", ".join(parts)


def series_identity(kind: str, shown_path: str, key_suffix: str, series_uid: str | None) -> str:
    """Which series an entry is of: its kind, its absolute path as reported (an archive member's
    ``archive/member``), the ``#k`` of its key when a folder holds several, and its series UID."""
    return "|".join((kind, os.path.abspath(shown_path) + key_suffix, series_uid or ""))
