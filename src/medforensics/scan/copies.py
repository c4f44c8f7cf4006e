"""Series given more than once in one scan: byte-for-byte copies are scanned once.

Archives hold copies: the same study exported into two folders, a series copied beside its study, an
export made twice. Scanning each again gives the same result at the same cost; a copy instead takes the
result of the first one in the scan's order, reported under its own path with ``extra["same_as"]``
naming that first one (what a reader of the report wants to know of a copy anyway). A copy is a series of
the same kind and series UID whose files have the same names below their folder, the same sizes (both
compared first: no file is read unless they match) and the same SHA-256. Its signatures are checked on its
own files, as every series'.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence

from medforensics.io.reader import SeriesRef
from medforensics.scan.journal import files_digest, files_layout
from medforensics.scan.result import SeriesResult


def identical_series(refs: Sequence[SeriesRef], skip: Collection[int] = ()) -> dict[int, int]:
    """``{i: j}`` for each series ``i`` whose files are those of an earlier series ``j`` (the first of its
    copies), among ``refs`` but ``skip``. Only series whose kind, UID, file names and sizes agree are
    hashed."""
    groups: dict[tuple[str, str, str], list[int]] = {}
    for i, ref in enumerate(refs):
        if i not in skip and (layout := files_layout(ref.files)) is not None:
            groups.setdefault((ref.kind, ref.series_uid or "", layout), []).append(i)
    out: dict[int, int] = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        first: dict[str, int] = {}
        for i in members:
            digest = files_digest(refs[i].files)
            if digest is not None:
                out[i] = first.setdefault(digest, i)
    return {i: j for i, j in out.items() if i != j}


def copy_result(original: SeriesResult, path: str) -> SeriesResult:
    """The result of a copy of ``original`` at ``path``: its verdict, scores and findings (heatmaps and
    masks shared, not copied), without the signature status, which is the copy's own to check."""
    findings = [dataclasses.replace(f) for f in original.findings if f.type != "signature"]
    extra = {**original.extra, "same_as": original.path}
    return dataclasses.replace(original, path=path, findings=findings, signature=None, extra=extra, key="")
