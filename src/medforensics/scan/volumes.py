"""The volumes a scan hands to its report writers: re-read on demand (:class:`LazyVolumes`), by key."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping

from medforensics.io.reader import SeriesRef, load
from medforensics.io.volume import Volume


class LazyVolumes(Mapping[str, Volume]):
    """Volumes by ``SeriesResult.key``, re-read on access and only the last one kept in memory.

    What the report writers get when a scan keeps ``"lazy"`` volumes: memory stays that of one series
    however many a scan covers (each writer reads each series again, which costs time, not memory).
    """

    def __init__(self, stream_above: int | None = None) -> None:
        self._refs: dict[str, SeriesRef] = {}
        self._last: tuple[str, Volume] | None = None
        self._stream_above = stream_above

    def add(self, path: str, ref: SeriesRef) -> None:
        """Remember how to read the series reported under ``path``."""
        self._refs[path] = ref

    def __getitem__(self, key: str) -> Volume:
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        self._last = None  # drop the previous one before reading the next
        vol = load(self._refs[key], stream_above=self._stream_above)
        self._last = (key, vol)
        return vol

    def without_pixels(self, key: str) -> Volume | None:
        """The volume of ``key`` with its headers and geometry read but its pixels left in the files
        (decoded only where used): what the DICOM SR and SEG writers need (None for an unknown key)."""
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        ref = self._refs.get(key)
        return None if ref is None else load(ref, stream_above=0)

    def __iter__(self) -> Iterator[str]:
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)


def volume_keys(paths: list[str]) -> list[str]:
    """A unique key per series: its path, or ``path#k`` (k-th series there) when a folder holds several."""
    counts = Counter(paths)
    seen: Counter[str] = Counter()
    out = []
    for p in paths:
        out.append(p if counts[p] == 1 else f"{p}#{seen[p]}")
        seen[p] += 1
    return out
