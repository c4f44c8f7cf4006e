"""``evaluate`` of a dense localiser or the bundled detector: each data-set scan scanned as ``scan`` does."""

from __future__ import annotations

import csv
import functools
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from medforensics.cli import app
from medforensics.evaluate.scan_level import ScanRow, is_scan_level, scan_metrics
from tests.forge._tiny_ct import shared_tiny_dataset


@functools.lru_cache(maxsize=1)
def _dense_model() -> Path:
    import atexit

    from medforensics.train.dense import train_dense
    from tests.train._dense import tiny_config

    root = Path(tempfile.mkdtemp(prefix="medforensics-scan-level-"))
    atexit.register(shutil.rmtree, root, True)
    train_dense(tiny_config(root / "m", steps=2, eval_every=2))
    return root / "m"


def _evaluate(data: Path, out: Path, *more: str) -> Any:
    args = ["evaluate", "--model", str(_dense_model()), "--data", str(data), "--out", str(out), *more]
    return CliRunner().invoke(app, args)


def _manifest(root: Path) -> list[dict[str, str]]:
    with (root / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _tests(root: Path) -> list[dict[str, str]]:
    return [r for r in _manifest(root) if r["split"] == "test"]


def test_every_scan_of_the_split_is_scanned_and_compared_with_its_truth(tmp_path: Path) -> None:
    data, _ = shared_tiny_dataset()
    out = tmp_path / "eval"
    res = _evaluate(data, out)  # the test split (a third of the scans: quicker than --split all)
    assert res.exit_code == 0, res.output
    assert "scans (0 errors) AUC" in res.stdout and "TB/TM/FB/FM labels" in res.stdout
    ev = json.loads((out / "evaluation.json").read_text())
    rows = _tests(data)
    assert 0 < len(rows) < len(_manifest(data))
    assert ev["level"] == "scan" and ev["n"] == len(rows) and ev["n_errors"] == 0
    assert sorted(r["uuid"] for r in ev["scans"]) == sorted(r["uuid"] for r in rows)
    c = ev["operating_point"]["confusion"]
    fakes = sum(r["type"] in ("FB", "FM", "SYN") for r in rows)
    assert c["tp"] + c["fn"] == fakes and c["tn"] + c["fp"] == len(rows) - fakes
    flagged = sum(r["verdict"] != "authentic" for r in ev["scans"])
    assert c["tp"] + c["fp"] == flagged  # the operating point is the scan's own verdicts
    assert sum(map(sum, ev["labels"]["confusion"])) <= len(rows)  # a scan given no label is in no cell
    assert ev["localisation"]["tampered_located"] == sum(r["type"] in ("FB", "FM") for r in rows)
    assert set(ev["per_label"]) == {r["type"] for r in rows}
    assert ev["model"]["name"] == "test_tamperseg3d" and "per_experiment" not in ev  # a forge data set
    for name in ("confusion.png", "roc.png", "scores.png", "reliability.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_a_scan_that_cannot_be_read_is_an_error_row_and_the_rest_go_on(tmp_path: Path) -> None:
    data, _ = shared_tiny_dataset()
    mine = tmp_path / "data"
    shutil.copytree(data, mine)
    victim = _tests(mine)[0]["uuid"]
    for f in (mine / "scans" / victim).iterdir():
        f.write_bytes(b"not an image")
    out = tmp_path / "eval"
    res = _evaluate(mine, out)
    assert res.exit_code == 0, res.output
    ev = json.loads((out / "evaluation.json").read_text())
    assert ev["n_errors"] == 1 and ev["n"] == len(_tests(mine)) - 1
    (bad,) = [r for r in ev["scans"] if r["error"]]
    assert bad["uuid"] == victim and bad["score"] is None


def test_an_out_inside_the_data_set_is_refused_before_any_scan(tmp_path: Path) -> None:
    data, _ = shared_tiny_dataset()
    mine = tmp_path / "data"
    shutil.copytree(data, mine)
    res = _evaluate(mine, mine / "eval")
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert not (mine / "eval").exists()


def test_a_ct_gan_layout_is_scored_as_its_forge_twin(tmp_path: Path) -> None:
    """The public CT-GAN data set's layout (a scan folder per uuid, labels_exp*.csv of labelled points, no
    manifest or masks): the same scans get the same scores, and localisation is measured from the points."""
    data, _ = shared_tiny_dataset()
    twin = tmp_path / "ctgan"
    twin.mkdir()
    tests = {r["uuid"] for r in _tests(data)}
    for uuid in tests:
        shutil.copytree(data / "scans" / uuid, twin / uuid)
    lines = (data / "labels.csv").read_text().splitlines(keepends=True)
    (twin / "labels_exp1.csv").write_text(
        "".join(lines[:1] + [x for x in lines[1:] if x.split(",")[1] in tests])
    )
    assert _evaluate(data, tmp_path / "forge").exit_code == 0  # the same scans: the forge's test split
    res = _evaluate(twin, tmp_path / "twin")  # no splits.csv: every scan is a test scan
    assert res.exit_code == 0, res.output
    forge = {r["uuid"]: r for r in json.loads((tmp_path / "forge/evaluation.json").read_text())["scans"]}
    ev = json.loads((tmp_path / "twin/evaluation.json").read_text())
    got = {r["uuid"].removeprefix("exp1/"): r for r in ev["scans"]}
    assert sorted(got) == sorted(forge)
    for uuid, r in got.items():
        f = forge[uuid]
        assert (r["score"], r["verdict"], r["label"], r["type"]) == (
            f["score"],
            f["verdict"],
            f["label"],
            f["type"],
        )
        if f["strongest_mm"] is None:
            continue
        # the labelled point (the attack's centre) against the mask's centroid: a few mm apart at most
        assert r["strongest_mm"] is not None and abs(r["strongest_mm"] - f["strongest_mm"]) < 5.0
    assert set(ev["per_method"]) <= {"inject (not recorded)", "remove (not recorded)", "none"}
    assert ev["localisation"]["tampered_located"] == sum(r["type"] in ("FB", "FM") for r in got.values())


def test_the_ct_gan_experiments_are_reported_apart(tmp_path: Path) -> None:
    """Two label files (the CT-GAN data set's labels_exp1.csv and labels_exp2.csv): each scan is keyed and
    summed under its experiment, whose figures add up to the whole."""
    data, _ = shared_tiny_dataset()
    twin = tmp_path / "ctgan"
    twin.mkdir()
    tests = sorted(r["uuid"] for r in _tests(data))
    for uuid in tests:
        shutil.copytree(data / "scans" / uuid, twin / uuid)
    lines = (data / "labels.csv").read_text().splitlines(keepends=True)
    halves = {"exp1": set(tests[::2]), "exp2": set(tests[1::2])}
    for exp, mine in halves.items():
        rows = [x for x in lines[1:] if x.split(",")[1] in mine]
        (twin / f"labels_{exp}.csv").write_text("".join(lines[:1] + rows))
    res = _evaluate(twin, tmp_path / "ev")
    assert res.exit_code == 0, res.output
    ev = json.loads((tmp_path / "ev/evaluation.json").read_text())
    per = ev["per_experiment"]
    assert sorted(per) == ["exp1", "exp2"]
    assert {r["uuid"] for r in ev["scans"]} == {f"{e}/{u}" for e, us in halves.items() for u in us}
    assert [per[e]["n"] for e in ("exp1", "exp2")] == [len(halves["exp1"]), len(halves["exp2"])]
    for e in ("exp1", "exp2"):
        mine = [r for r in ev["scans"] if r["experiment"] == e]
        right = sum((r["verdict"] != "authentic") == (r["type"] in ("FB", "FM", "SYN")) for r in mine)
        assert per[e]["accuracy"] == pytest.approx(right / len(mine))


def test_a_folder_that_is_no_data_set_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    res = _evaluate(tmp_path / "data", tmp_path / "out")
    assert res.exit_code == 2 and "neither a forge data set" in res.output
    assert not (tmp_path / "out").exists()


def test_the_scan_limits_apply_as_scans_do(tmp_path: Path) -> None:
    """``--max-pixel-mm`` / ``--max-slice-mm`` as ``scan`` takes them: the data set's 1.4 mm pixels refused
    under a 0.5 mm limit (every TB/TM/FB/FM scan not assessed, an error row naming its pixels; the SYN
    scans still synthetic: enlarged slices do not depend on the tamper detector), scored under a wider
    one."""
    data, _ = shared_tiny_dataset()
    res = _evaluate(data, tmp_path / "a", "--max-pixel-mm", "0.5")
    assert res.exit_code == 0, res.output
    scans = json.loads((tmp_path / "a/evaluation.json").read_text())["scans"]
    syn = [r for r in scans if r["type"] == "SYN"]
    assert syn and all(r["verdict"] == "synthetic" and r["error"] is None for r in syn)
    others = [r for r in scans if r["type"] != "SYN"]
    assert others and all("pixels 1.41 mm" in str(r["error"]) for r in others)
    res = _evaluate(data, tmp_path / "b", "--max-slice-mm", "9")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "b/evaluation.json").read_text())["limits_mm"]["max_slice"] == 9.0
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "config.json").write_text(json.dumps({"model": "cnn3d"}))
    args = ["evaluate", "--model", str(zoo), "--data", str(data), "--out", str(tmp_path / "c")]
    res = CliRunner().invoke(app, [*args, "--max-pixel-mm", "2"])
    assert res.exit_code == 2 and "apply at scan level only" in res.output


def test_jobs_give_the_same_evaluation(tmp_path: Path) -> None:
    """``--jobs 2`` scans two data-set scans at a time in worker processes: the same rows in the same order
    and the same metrics as one at a time; a zoo model refuses it (no scans to share)."""
    data, _ = shared_tiny_dataset()
    one, two = (
        _evaluate(data, tmp_path / "one", "--split", "test"),
        _evaluate(data, tmp_path / "two", "--split", "test", "--jobs", "2"),
    )
    assert one.exit_code == 0 and two.exit_code == 0, (one.output, two.output)
    assert "SYN labelled SYN " in one.output  # the closing line counts the fully synthetic scans found
    a = json.loads((tmp_path / "one/evaluation.json").read_text())
    b = json.loads((tmp_path / "two/evaluation.json").read_text())
    assert (a["jobs"], b["jobs"]) == (1, 2) and len(a["scans"]) >= 4
    assert a["scans"] == b["scans"] and a["operating_point"] == b["operating_point"]
    assert a["per_label"] == b["per_label"] and a["localisation"] == b["localisation"]
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "config.json").write_text(json.dumps({"model": "cnn3d"}))
    args = ["evaluate", "--model", str(zoo), "--data", str(data), "--out", str(tmp_path / "z"), "--jobs", "2"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "--jobs apply at scan level only" in res.output


def test_which_folders_are_scored_at_scan_level(tmp_path: Path) -> None:
    assert is_scan_level(None) and is_scan_level(_dense_model())
    (tmp_path / "config.json").write_text(json.dumps({"model": "cnn3d"}))
    assert not is_scan_level(tmp_path)


def _row(type_: str, score: float, verdict: str, label: str, dist: float | None = None) -> ScanRow:
    method = {"FB": "ctgan-remove", "FM": "blob-inject"}.get(type_, "none")
    return ScanRow("u", type_, method, "p", "test", score, verdict, label, 0.7, dist, dist, dist is not None)


def test_scan_metrics_on_known_rows() -> None:
    rows = [
        _row("TB", 0.1, "authentic", "TB"),
        _row("TM", 0.2, "authentic", "TB"),  # label wrong, verdict right
        _row("TB", 0.8, "tampered", "FM"),  # a false alarm
        _row("FM", 0.9, "tampered", "FM", 3.0),
        _row("FM", 0.6, "authentic", "TB", 25.0),  # missed; its strongest region 25 mm off
        _row("FB", 0.95, "tampered", "FB", 12.0),  # flagged, 12 mm off: not localised
        ScanRow("e", "FB", "ctgan-remove", "p", "test", error="unreadable"),
    ]
    m = scan_metrics(rows)
    assert m["n_errors"] == 1
    assert m["operating_point"]["confusion"] == {"tn": 2, "fp": 1, "fn": 1, "tp": 2}
    # AUC of the scores: fakes 0.9, 0.6, 0.95 against 0.1, 0.2, 0.8: 8 of 9 pairs ordered (0.6 < 0.8)
    assert m["operating_point"]["roc_auc"] == pytest.approx(8 / 9)
    assert m["labels"]["accuracy"] == pytest.approx(3 / 6)
    assert m["labels"]["tb_tm_fb_fm"] == {"n": 6, "right": 3, "accuracy": pytest.approx(3 / 6)}
    # a SYN scan (no CT-GAN label) counts in the confusion, not in the TB/TM/FB/FM accuracy
    syn = ScanRow("s", "SYN", "dcgan-synth", "p", "test", 0.95, "synthetic", "SYN", 0.7, 40.0, 40.0, True)
    with_syn = scan_metrics([*rows, _row("SYN", 0.3, "authentic", "TB"), syn])
    assert with_syn["labels"]["accuracy"] == pytest.approx(4 / 8)
    # a whole synthetic volume has no place to localise: its method's rate is undefined, not 0
    assert with_syn["per_method"]["dcgan-synth"]["localised"] is None
    assert with_syn["per_method"]["dcgan-synth"]["flagged"] == 1.0
    assert with_syn["labels"]["tb_tm_fb_fm"]["accuracy"] == pytest.approx(3 / 6)
    # a tampered scan whose edit's centre the data set does not give counts as tampered, not as located
    loc = scan_metrics([*rows, _row("FM", 0.2, "authentic", "TB")])["localisation"]
    assert (loc["tampered"], loc["tampered_located"]) == (4, 3)
    assert loc["top_finding_within"] == pytest.approx(1 / 3)
    assert m["labels"]["classes"] == ["TB", "TM", "FB", "FM"]
    assert m["per_label"]["TM"]["accuracy"] == 1.0 and m["per_label"]["TM"]["label_accuracy"] == 0.0
    assert m["localisation"]["top_finding_within"] == pytest.approx(1 / 3)
    assert m["localisation"]["median_distance_mm"] == pytest.approx(12.0)
    assert m["per_method"]["blob-inject"]["flagged"] == 0.5
    assert m["per_method"]["ctgan-remove"]["roc_auc"] == 1.0
    assert np.isfinite(m["calibration"]["ece"])


def test_no_scan_scanned_is_an_error() -> None:
    from medforensics.errors import ConfigError

    with pytest.raises(ConfigError, match="no scan could be scanned"):
        scan_metrics([ScanRow("e", "FB", "m", "p", "test", error="unreadable")])
