"""``benchmarks/label_accuracy.py``'s truth for TB crops of data sets forged before session 15, which could
show the patient's annotated nodule: TM when the crop holds its centre, not scored when only part shows."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from medforensics.forge import dataset_sources
from medforensics.io.annotations import Nodule
from medforensics.io.volume import Volume

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _module() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("label_accuracy", BENCH / "label_accuracy.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# uuid -> (type, crop start); crops are 4 x 20 x 20 of a 4 x 100 x 100 volume, the nodule at (2, 50, 50)
CROPS = {
    "centre-in": ("TB", (0, 40, 40)),
    "part": ("TB", (0, 55, 30)),  # the nodule's edge (radius 8 voxels) reaches y 58: part of it shows
    "clear": ("TB", (0, 0, 0)),
    "tm": ("TM", (0, 40, 40)),
    "fm": ("FM", (0, 0, 0)),
}


@pytest.fixture()
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    vol = Volume(np.zeros((4, 100, 100), np.int16), spacing=(1.0, 0.5, 0.5), modality="CT")
    nodule = Nodule(center_voxel=(2.0, 50.0, 50.0), center_mm=(0.0, 0.0, 0.0), diameter_mm=8.0)
    src = dataset_sources.Source("lidc:p", "p", vol, [nodule])
    monkeypatch.setattr(dataset_sources, "auto_sources", lambda: [src])
    (tmp_path / "records").mkdir()
    with (tmp_path / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["uuid", "type", "method", "patient", "split", "source", "augmentation"])
        for uuid, (kind, start) in CROPS.items():
            w.writerow([uuid, kind, "none", "p", "test", "lidc:p", "[]"])
            rec = {"crop_start_zyx": list(start), "crop_shape_zyx": [4, 20, 20]}
            (tmp_path / "records" / f"{uuid}.json").write_text(json.dumps(rec), encoding="utf-8")
    return tmp_path


def test_tb_crops_showing_a_nodule_are_tm_or_not_scored(data: Path) -> None:
    mod = _module()
    manifest = mod.manifest_rows(data, {"test"}, set(), ("TB", "TM", "FB", "FM"))
    # only TB crops are judged again; the one clear of the nodule keeps its label
    assert mod.shown_nodule_truth(data, manifest) == {"centre-in": "TM", "part": "part"}


def test_rescore_counts_labels_on_the_decided_truth(data: Path) -> None:
    mod = _module()
    given = {"centre-in": "TM", "part": "TM", "clear": "TB", "tm": "TB", "fm": "FM"}
    rows = [
        {
            "uuid": u,
            "method": "none",
            "augmentation": "none",
            "true_label": k,
            "label": given[u],
            "verdict": "tampered" if k == "FM" else "authentic",
            "score": 0.9 if k == "FM" else 0.1,
            "error": None,
            "operating_point": "scanner noise",
            "noise_finding": False,
        }
        for u, (k, _start) in CROPS.items()
    ]
    before = {"model": "m", "sha256": "0" * 64, "data": str(data), "split": "test", "rows": rows}
    assert "label right for 2/5 scans" in mod.summarise(before)  # the data set's TB for centre-in and part
    after = mod.rescore(before)
    by = {r["uuid"]: r for r in after["rows"]}
    assert by["centre-in"]["true_label"] == "TM" and by["centre-in"]["data_label"] == "TB"
    assert by["part"]["label_scored"] is False and by["part"]["true_label"] == "TB"
    text = mod.summarise(after)
    # centre-in now right, part left out of the label count (its verdict still counts: 4 authentic scans)
    assert "label right for 3/4 scans" in text
    assert "| scanner noise | 4 | 0 | 1 | 1 | 3/4 |" in text
    assert "1 TB scan(s) whose crop holds" in text and "1 whose crop shows only part" in text
    # --data-labels scores the manifest's labels as they are
    assert "label right for 2/5 scans" in mod.summarise(mod.rescore(before, data_labels=True))
