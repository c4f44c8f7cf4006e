"""Data-set builder on tiny real-pixel sources: classes, CT-GAN labels, masks, records, patient split."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from medforensics.errors import ConfigError
from medforensics.forge.base import held_out_attacks, list_attacks
from medforensics.forge.dataset import (
    DatasetConfig,
    assign_splits,
    build_dataset,
    check_no_leakage,
    scan_path,
)
from medforensics.io.datasets.ctgan import read_ctgan_labels
from medforensics.io.volume import Volume
from tests.forge._ctdata import chest_ct, ct_crop  # noqa: F401
from tests.forge._tiny_ct import build_tiny_dataset, shared_tiny_dataset, tiny_sources


@pytest.fixture(scope="module")
def tiny() -> tuple[Path, dict]:
    return shared_tiny_dataset()


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_every_class_and_available_method_is_present(tiny: tuple[Path, dict]) -> None:
    _, summary = tiny
    totals = summary["counts_total"]
    assert set(totals) == {"TB", "TM", "FB", "FM", "SYN"}
    assert all(n == 6 for n in totals.values()), totals  # balanced
    used = {m for ms in summary["methods"].values() for m in ms}
    skipped = {s.split(":")[0] for s in summary["skipped"]}
    held = set(held_out_attacks())
    assert held == {"clone-remove", "image-clone"} and not held & used  # held-out attacks only when named
    assert used | skipped == set(list_attacks()) - held  # each other method used, or skipped with a reason
    assert {"blob-inject", "copy-move", "inpaint-remove", "dcgan-synth"} <= used
    per_method = summary["counts_per_method"]
    for kind, label in (("inject", "FM"), ("remove", "FB"), ("synthesize", "SYN")):
        for m in summary["methods"][kind]:
            assert per_method.get(f"{label}:{m}", 0) >= 1, m
    assert summary["failures"] == []


def test_labels_csv_is_ctgan_format_and_locations_hit_masks(tiny: tuple[Path, dict]) -> None:
    from medforensics.forge.ctgan.data import read_any
    from medforensics.io.nifti import read_nifti

    out, _ = tiny
    assert (out / "labels.csv").read_text().splitlines()[0] == "type,uuid,z,x,y"
    labels = read_ctgan_labels(out / "labels.csv")
    assert len(labels) == 30
    for lab in labels:
        scan = read_any(scan_path(out, lab.uuid))
        mask = read_nifti(out / "masks" / f"{lab.uuid}.nii.gz").array > 0.5
        assert scan.shape == mask.shape and scan.shape[1:] == (96, 96)
        record = json.loads((out / "records" / f"{lab.uuid}.json").read_text())
        assert record["type"] == lab.type
        if lab.type in ("TB", "SYN"):
            assert (lab.z, lab.x, lab.y) == (0, 0, 0)
            assert record["candidate_zyx"] is not None
        else:  # z = slice, x = column, y = row, inside the scan, on the nodule / attacked voxels
            assert 0 <= lab.z < scan.shape[0] and 0 <= lab.y < scan.shape[1] and 0 <= lab.x < scan.shape[2]
            near = mask[lab.z, max(0, lab.y - 2) : lab.y + 3, max(0, lab.x - 2) : lab.x + 3]
            assert near.any(), lab
        if lab.type == "TB":
            assert not mask.any()
        if lab.type in ("FM", "FB", "SYN"):
            assert record["attack"]["label"] == lab.type and record["attack"]["method"] == record["method"]


def test_split_has_no_patient_leakage_and_counts_add_up(tiny: tuple[Path, dict]) -> None:
    out, summary = tiny
    rows = _rows(out / "splits.csv")
    assert list(rows[0]) == ["uuid", "patient", "split"]
    check_no_leakage(rows)
    patients: dict[str, set[str]] = {}
    for r in rows:
        patients.setdefault(r["patient"], set()).add(r["split"])
    assert all(len(s) == 1 for s in patients.values())
    assert {s for ss in patients.values() for s in ss} == {"train", "val", "test"}
    counted = sum(sum(c.values()) for c in summary["counts"].values())
    assert counted == len(rows) == 30
    manifest = _rows(out / "manifest.csv")
    assert {r["uuid"] for r in manifest} == {r["uuid"] for r in rows}
    assert all(r["new_series_uid"].startswith("2.25.") and r["source_series_uid"] for r in manifest)
    assert len({r["new_series_uid"] for r in manifest}) == 30  # no UID collisions between derived copies


def test_scans_read_back_as_the_source_crop(tiny: tuple[Path, dict]) -> None:
    """Pixels and geometry survive writing and reading (no slice-order flip, no offset)."""
    from medforensics.io.reader import read_volume

    out, _ = tiny
    sources = {s.name: s.volume for s in tiny_sources()}
    checked = 0
    for lab in read_ctgan_labels(out / "labels.csv"):
        rec = json.loads((out / "records" / f"{lab.uuid}.json").read_text())
        if lab.type not in ("TB", "TM") or rec["augmentation"]:
            continue
        scan = read_volume(scan_path(out, lab.uuid))
        (z0, y0, x0), (dz, dy, dx) = rec["crop_start_zyx"], rec["crop_shape_zyx"]
        src = sources[rec["source"]]
        np.testing.assert_array_equal(scan.array, src.array[z0 : z0 + dz, y0 : y0 + dy, x0 : x0 + dx])
        np.testing.assert_allclose(
            scan.index_to_patient((1, 2, 3)), src.index_to_patient((z0 + 1, y0 + 2, x0 + 3)), atol=1e-3
        )
        assert scan.series_uid == rec["new_uids"]["series"]
        checked += 1
    assert checked >= 2


def test_builder_is_deterministic(tiny: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = tiny
    again = tmp_path / "again"
    build_tiny_dataset(again)
    assert (again / "labels.csv").read_text() == (out / "labels.csv").read_text()
    assert (again / "manifest.csv").read_text() == (out / "manifest.csv").read_text()
    a = read_ctgan_labels(out / "labels.csv")[0].uuid
    from medforensics.forge.ctgan.data import read_any

    np.testing.assert_array_equal(read_any(scan_path(out, a)).array, read_any(scan_path(again, a)).array)


def test_leakage_check_and_split_assignment() -> None:
    with pytest.raises(ValueError):
        check_no_leakage([{"patient": "p", "split": "train"}, {"patient": "p", "split": "test"}])
    cfg = DatasetConfig(val_frac=0.2, test_frac=0.2)
    splits = assign_splits([f"p{i}" for i in range(10)], {"p0", "p1", "p2"}, cfg)
    assert sorted(splits.values()).count("train") == 6
    assert {splits[p] for p in ("p0", "p1", "p2")} == {"train", "val", "test"}


def test_bad_inputs(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("x")
    with pytest.raises(ConfigError):
        build_dataset(tmp_path / "busy", tiny_sources()[:1], DatasetConfig(per_class=1))
    with pytest.raises(ConfigError):
        build_dataset(
            tmp_path / "new", tiny_sources()[:1], DatasetConfig(per_class=1, methods=["no-such-attack"])
        )
    assert not (tmp_path / "new").exists()


def test_cli_dataset_bad_input_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from medforensics.cli import app

    runner = CliRunner()
    out = tmp_path / "ds"
    res = runner.invoke(app, ["forge", "dataset", "--out", str(out), "--sources", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "no usable CT source" in res.output
    assert not out.exists()
    res = runner.invoke(
        app, ["forge", "dataset", "--out", str(out), "--val-frac", "0.6", "--test-frac", "0.5"]
    )
    assert res.exit_code == 2 and not out.exists()


def test_nifti_source_is_keyed_by_its_name_not_where_it_is_installed(ct_crop: Volume, tmp_path: Path) -> None:  # noqa: F811
    from medforensics.forge.dataset_sources import load_source
    from medforensics.io.nifti import write_nifti

    keys = []
    for sub in ("site-a", "site-b"):
        path = tmp_path / sub / "ct.nii.gz"
        path.parent.mkdir()
        write_nifti(ct_crop, path)
        keys.append(load_source(path, name="sample:ct.nii.gz").patient)
    assert keys[0] == keys[1]
    assert load_source(path).patient != keys[0]  # no name: its path keys it


def test_tb_scans_show_no_annotated_nodule(tiny: tuple[Path, dict]) -> None:
    """A TB scan is an unmodified scan without a nodule: its crop holds no annotated nodule of its source
    (a crop around a healthy site used to show the patient's real nodule beside it)."""
    from medforensics.forge.dataset_sources import nodules_in_box

    out, _ = tiny
    sources = {s.name: s for s in tiny_sources()}
    tb = 0
    for lab in read_ctgan_labels(out / "labels.csv"):
        rec = json.loads((out / "records" / f"{lab.uuid}.json").read_text())
        box = (tuple(rec["crop_start_zyx"]), tuple(rec["crop_shape_zyx"]))
        held = nodules_in_box(sources[rec["source"]], *box)
        if lab.type == "TB":
            tb += 1
            assert not held, f"TB scan {lab.uuid} holds a nodule"
        elif lab.type == "TM":
            assert held
    assert tb >= 2


def test_crop_avoiding_nodules_keeps_the_site_and_says_when_it_cannot() -> None:
    from medforensics.forge.dataset_sources import (
        SITE_MARGIN_MM,
        Source,
        crop_avoiding_nodules,
        crop_box,
        nodules_in_box,
    )
    from medforensics.io.annotations import Nodule

    vol = Volume(np.zeros((8, 200, 200), np.float32), spacing=(2.5, 1.0, 1.0))
    src = Source("synthetic", "p", vol, [Nodule((4.0, 150.0, 150.0), (0.0, 0.0, 0.0), diameter_mm=10.0)])
    site = (4, 100, 100)
    rng = np.random.default_rng(0)
    start, shape = crop_box(vol, site, 8, 128, rng)
    assert nodules_in_box(src, start, shape)  # the usual crop shows the nodule 71 mm away
    found = crop_avoiding_nodules(src, site, 8, 128, rng)
    assert found is not None
    (z0, y0, x0), (dz, dy, dx) = found
    assert not nodules_in_box(src, *found)
    assert z0 <= site[0] < z0 + dz
    for c, s, n in ((site[1], y0, dy), (site[2], x0, dx)):
        assert s + SITE_MARGIN_MM <= c <= s + n - 1 - SITE_MARGIN_MM
    assert crop_avoiding_nodules(src, site, 8, 200, rng) is None  # the whole slice: nowhere to avoid it


def test_removals_and_copies_take_the_annotated_size(tiny: tuple[Path, dict]) -> None:
    """FB removals and copy-move donors are annotated nodules: the readers' size is used (6 mm in the tiny
    sources), not a measurement of the crop (session 28: the donor's annotation was dropped)."""
    out, _ = tiny
    seen = set()
    for path in (out / "records").glob("*.json"):
        attack = json.loads(path.read_text()).get("attack") or {}
        if attack.get("method") in ("ctgan-remove", "inpaint-remove", "copy-move"):
            p = attack["params"]
            assert (p["diameter_mm"], p["diameter_from"]) == (6.0, "annotation"), path.name
            seen.add(attack["method"])
    assert seen == {"ctgan-remove", "inpaint-remove", "copy-move"}


def test_a_held_out_attack_is_used_when_named(tmp_path: Path) -> None:
    from medforensics.forge.dataset import DatasetConfig, build_dataset

    cfg = DatasetConfig(
        per_class=2, depth=12, crop=96, seed=1, methods=["clone-remove"], classes=("TB", "FB")
    )
    summary = build_dataset(tmp_path / "ds", tiny_sources(), cfg)
    assert summary["methods"]["remove"] == ["clone-remove"]
    assert summary["counts_per_method"]["FB:clone-remove"] == 2 and summary["failures"] == []


def test_noise_settings_are_recorded_and_a_volume_build_replays_the_old_forge(
    tiny: tuple[Path, dict], tmp_path: Path
) -> None:
    """Every noise-matched attack records where it measured noise (``slice`` by default); a data set built
    with ``noise_plane="volume"`` and ``noise_z="matched"`` records them, and an attack kwarg overrides the
    data set's setting."""
    out, _ = tiny
    planes = {
        a["method"]: a["params"].get("noise_plane")
        for a in (json.loads(p.read_text()).get("attack") for p in (out / "records").glob("*.json"))
        if a
    }
    assert planes.pop("dcgan-synth") is None  # whole-image synthesis matches no noise
    assert set(planes) == {"blob-inject", "copy-move", "ctgan-inject", "ctgan-remove", "inpaint-remove"}
    assert set(planes.values()) == {"slice"}
    cfg = DatasetConfig(
        per_class=1,
        depth=12,
        crop=96,
        seed=1,
        methods=["inpaint-remove", "blob-inject"],
        classes=("FM", "FB"),
        noise_plane="volume",
        noise_z="matched",
        attack_kwargs={"blob-inject": {"noise_plane": "slice"}},
    )
    build_dataset(tmp_path / "ds", tiny_sources(), cfg)
    recorded = {
        a["method"]: (a["params"]["noise_plane"], a["params"]["noise_z"])
        for a in (json.loads(p.read_text())["attack"] for p in (tmp_path / "ds" / "records").glob("*.json"))
    }
    assert recorded == {"inpaint-remove": ("volume", "matched"), "blob-inject": ("slice", "matched")}
    with pytest.raises(ConfigError, match="noise_plane"):
        build_dataset(tmp_path / "bad", tiny_sources(), DatasetConfig(per_class=1, noise_plane="3d"))
    with pytest.raises(ConfigError, match="noise_z"):
        build_dataset(tmp_path / "bad", tiny_sources(), DatasetConfig(per_class=1, noise_z="along"))
    assert not (tmp_path / "bad").exists()


def test_mixed_noise_z_draws_each_sample_and_keeps_the_rest_of_the_data_set(tmp_path: Path) -> None:
    """``noise_z="mixed"``: the noise-matched attacks' samples record ``independent`` or ``matched`` (both
    occur), the crops and attack parameters are those of the same data set built ``independent``, its
    independent samples are bit-identical to that build's and some matched ones differ."""
    from medforensics.io.reader import read_volume

    base = dict(
        per_class=6,
        depth=12,
        crop=96,
        seed=3,
        methods=["inpaint-remove", "blob-inject"],
        classes=("FM", "FB"),
    )
    built = {}
    for z in ("independent", "mixed"):
        build_dataset(tmp_path / z, tiny_sources(), DatasetConfig(**base, noise_z=z))  # type: ignore[arg-type]
        recs = [json.loads(p.read_text()) for p in sorted((tmp_path / z / "records").glob("*.json"))]
        built[z] = {(r["method"], tuple(r["crop_start_zyx"]), r["attack"]["seed"]): r for r in recs}
    assert json.loads((tmp_path / "mixed" / "dataset.json").read_text())["config"]["noise_z"] == "mixed"
    assert built["mixed"].keys() == built["independent"].keys()
    drawn = {"independent": 0, "matched": 0}
    differ = 0
    for key, r in built["mixed"].items():
        ind = built["independent"][key]
        z = r["attack"]["params"].pop("noise_z")
        assert ind["attack"]["params"].pop("noise_z") == "independent"
        assert r["attack"]["params"] == ind["attack"]["params"]
        a = read_volume(scan_path(tmp_path / "mixed", r["uuid"])).array
        b = read_volume(scan_path(tmp_path / "independent", ind["uuid"])).array
        if z == "independent":
            assert np.array_equal(a, b)
        drawn[z] += 1
        differ += int(not np.array_equal(a, b))
    assert min(drawn.values()) > 0
    assert differ > 0
    with pytest.raises(ConfigError, match="noise_z"):
        build_dataset(tmp_path / "bad", tiny_sources(), DatasetConfig(per_class=1, noise_z="sometimes"))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_writer_processes_write_the_same_data_set_file_for_file(
    tiny: tuple[Path, dict], tmp_path: Path
) -> None:
    out, summary = tiny
    again = build_tiny_dataset(tmp_path / "jobs2", jobs=2)
    assert again == summary
    mine, theirs = _files(tmp_path / "jobs2"), _files(out)
    assert len(mine) > 50 and sorted(mine) == sorted(theirs)
    assert [k for k in mine if mine[k] != theirs[k]] == []


def test_failed_samples_are_retried_where_their_method_worked_and_jobs_change_nothing(tmp_path: Path) -> None:
    from medforensics.forge import base
    from tests.forge._flaky import FlakyBlob

    base.register_attack("test-flaky-blob")(FlakyBlob)
    try:
        cfg = DatasetConfig(
            per_class=9, depth=12, crop=96, seed=3, methods=["test-flaky-blob"], classes=("TB", "FM")
        )
        calls: list[tuple[int, int, str]] = []
        one = build_dataset(tmp_path / "one", tiny_sources(), cfg, progress=lambda *c: calls.append(c))
        two = build_dataset(tmp_path / "two", tiny_sources(), cfg, jobs=2)
    finally:
        base._REGISTRY.pop("test-flaky-blob")
    assert one == two and _files(tmp_path / "one") == _files(tmp_path / "two")
    failed = [f for f in one["failures"] if "(retry)" not in f]
    assert failed and all(f.startswith("FM/test-flaky-blob/") and "cannot be made" in f for f in failed)
    assert calls[-1][:2] == (9 + 9 + len(failed), 9 + 9 + len(failed))  # every sample and retry counted
    assert [c[0] for c in calls] == list(range(1, len(calls) + 1)) and {c[2] for c in calls} == {
        "TB none",
        "FM test-flaky-blob",
    }
    retried_failed = len(one["failures"]) - len(failed)
    made = one["counts_total"]["FM"]
    assert made == 9 - retried_failed < 9  # each failure retried once: made there, or reported
    assert retried_failed < len(failed)  # some retries made
    records = [json.loads(p.read_text()) for p in (tmp_path / "one" / "records").glob("*.json")]
    seeds = [r["attack"]["seed"] for r in records if r["type"] == "FM"]
    assert len(seeds) == made and all(s % 3 for s in seeds)
    with pytest.raises(ConfigError, match="jobs must be 1-256"):
        build_dataset(tmp_path / "bad", tiny_sources(), DatasetConfig(per_class=1), jobs=0)


def test_a_bug_in_a_worker_ends_the_build_and_leaves_nothing(tmp_path: Path) -> None:
    from medforensics.forge import base
    from tests.forge._flaky import CrashingBlob

    base.register_attack("test-crashing-blob")(CrashingBlob)
    try:
        cfg = DatasetConfig(
            per_class=9, depth=12, crop=96, seed=3, methods=["test-crashing-blob"], classes=("TB", "FM")
        )
        with pytest.raises(RuntimeError, match="a bug"):
            build_dataset(tmp_path / "out", tiny_sources(), cfg, jobs=2)
    finally:
        base._REGISTRY.pop("test-crashing-blob")
    assert list(tmp_path.iterdir()) == []  # neither the data set nor its temporary folder


def test_a_one_image_edit_is_skipped_with_its_reason(tmp_path: Path) -> None:
    """image-clone edits one slice; named for a data set of 12-slice crops it is skipped up front, and why
    (a removal on one slice would leave the nodule on the others), while clone-remove, its 3-D
    counterpart, is used."""
    from medforensics.forge.dataset import DatasetConfig, build_dataset
    from tests.forge._tiny_ct import tiny_sources

    cfg = DatasetConfig(
        per_class=2, depth=12, crop=96, seed=3, val_frac=0.34, test_frac=0.33,
        methods=["image-clone", "clone-remove"],
    )  # fmt: skip
    summary = build_dataset(tmp_path / "d", tiny_sources(), cfg)
    assert [s for s in summary["skipped"] if s.startswith("image-clone:")] == [
        "image-clone: image-clone edits one image: a crop of 12 slices would keep the nodule on the others "
        "(clone-remove is the clone stamp across slices)"
    ]
    assert summary["counts_per_method"].get("FB:clone-remove", 0) >= 1
    assert not any(k.endswith(":image-clone") for k in summary["counts_per_method"])


def test_round_trip_share_resamples_samples_of_every_class_and_keeps_the_rest(tmp_path: Path) -> None:
    """``round_trip_mm``: a share of the samples of each class (authentic ones too) is zoomed through such
    voxels and back, recorded per sample; every draw is as without it (crops, attacks, masks), the other
    samples are bit-identical, and bad values are refused before anything is written."""
    from medforensics.io.nifti import read_nifti
    from medforensics.io.reader import read_volume

    base = dict(per_class=4, depth=12, crop=96, seed=3, methods=["blob-inject"], classes=("TB", "FM"))
    built = {}
    for name, extra in (("plain", {}), ("trip", {"round_trip_mm": 1.0, "round_trip_share": 0.5})):
        build_dataset(tmp_path / name, tiny_sources(), DatasetConfig(**base, **extra))  # type: ignore[arg-type]
        recs = [json.loads(p.read_text()) for p in sorted((tmp_path / name / "records").glob("*.json"))]
        built[name] = {(r["type"], tuple(r["crop_start_zyx"])): r for r in recs}
    assert built["trip"].keys() == built["plain"].keys()
    tripped = {"TB": 0, "FM": 0}
    for key, r in built["trip"].items():
        p = built["plain"][key]
        assert p["round_trip_mm"] is None and r["round_trip_mm"] in (None, 1.0)
        assert r["attack"] == p["attack"] and r["augmentation"] == p["augmentation"]
        a = read_volume(scan_path(tmp_path / "trip", r["uuid"])).array
        b = read_volume(scan_path(tmp_path / "plain", p["uuid"])).array
        assert np.array_equal(a, b) == (r["round_trip_mm"] is None)
        masks = [
            read_nifti(tmp_path / n / "masks" / f"{x['uuid']}.nii.gz").array
            for n, x in (("trip", r), ("plain", p))
        ]
        assert np.array_equal(*masks)  # the mask stays the edit's
        tripped[r["type"]] += r["round_trip_mm"] is not None
    assert min(tripped.values()) > 0, tripped  # authentic and tampered samples alike
    for bad in ({"round_trip_mm": 0.0}, {"round_trip_mm": 1.0, "round_trip_share": 1.5}):
        with pytest.raises(ConfigError, match="round_trip"):
            build_dataset(tmp_path / "bad", tiny_sources(), DatasetConfig(per_class=1, **bad))  # type: ignore[arg-type]
    assert not (tmp_path / "bad").exists()
