"""Operating points split by the series' inter-slice noise correlation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medforensics.errors import ConfigError, InputError
from medforensics.evaluate.metrics import apply_platt
from medforensics.scan.detector import read_calibration
from medforensics.train.dense import DenseConfig
from medforensics.train.dense_calibration import SeriesScore, fit_lossy_point, fit_operating_points


def _val() -> list[SeriesScore]:
    clean_auth = [SeriesScore(0.05 + 0.01 * i, 0.3, True) for i in range(40)]  # up to 0.44
    noisy_auth = [SeriesScore(0.80 + 0.01 * i, 0.03, True) for i in range(10)]  # up to 0.89
    tampered = [SeriesScore(0.6 + 0.01 * i, 0.3, False) for i in range(40)]
    tampered += [SeriesScore(0.85 + 0.01 * i, 0.03, False) for i in range(10)]
    return clean_auth + noisy_auth + tampered


def test_each_noise_kind_gets_the_threshold_its_own_authentic_series_set() -> None:
    cal = fit_operating_points(_val())
    ab = cal["platt"]
    clean, unc = cal["series_threshold"], cal["uncorrelated_noise"]["series_threshold"]
    # no authentic validation series of either kind reaches its threshold, and only just
    assert apply_platt([0.44], ab)[0] < clean < apply_platt([0.45], ab)[0]
    assert apply_platt([0.89], ab)[0] < unc < apply_platt([0.90], ab)[0]
    # one threshold for all would have been set by the noisy series: the clean tampered ones at 0.6-0.79
    # would have been missed
    assert apply_platt([0.6], ab)[0] >= clean and apply_platt([0.79], ab)[0] < unc
    unc = cal["uncorrelated_noise"]
    assert unc["below"] == 0.15 and "10 authentic" in unc["fitted_on"]


def test_whole_training_series_keep_each_threshold_above_them() -> None:
    whole = [SeriesScore(0.5, 0.35, True), SeriesScore(0.95, 0.02, True)]
    cal = fit_operating_points(_val(), whole)
    ab = cal["platt"]
    assert cal["series_threshold"] > apply_platt([0.5], ab)[0]
    assert cal["uncorrelated_noise"]["series_threshold"] > apply_platt([0.95], ab)[0]
    assert "kept above 1 whole" in cal["fitted_on"]


def test_no_uncorrelated_authentic_series_means_one_operating_point() -> None:
    val = [s for s in _val() if s.slice_corr == 0.3 or not s.authentic]
    assert "uncorrelated_noise" not in fit_operating_points(val)
    with pytest.raises(InputError, match="authentic and tampered"):
        fit_operating_points([s for s in val if s.authentic])


def test_the_scan_reads_the_second_operating_point(tmp_path: Path) -> None:
    cal = fit_operating_points(_val())
    (tmp_path / "calibration.json").write_text(json.dumps(cal))
    c = read_calibration(tmp_path)
    assert c.threshold_for(0.3) == (cal["series_threshold"], "scanner noise")
    assert c.threshold_for(0.03) == (cal["uncorrelated_noise"]["series_threshold"], "uncorrelated noise")
    assert c.threshold_for(None)[1] == "scanner noise"
    bads = (({"below": 0.15}, "unreadable"), ({"below": 0.15, "series_threshold": 2.0}, "thresholds"))
    for bad, why in bads:
        (tmp_path / "calibration.json").write_text(json.dumps({**cal, "uncorrelated_noise": bad}))
        with pytest.raises(InputError, match=why):
            read_calibration(tmp_path)


def test_the_lossy_point_is_set_by_lossy_copies_and_read_before_the_others(tmp_path: Path) -> None:
    cal = fit_operating_points(_val())
    ab = (cal["platt"][0], cal["platt"][1])
    lossy_val = [SeriesScore(0.3 + 0.01 * i, 0.3, True, f"s{i}+j2k-20") for i in range(60)]  # up to 0.89
    lossy_val += [SeriesScore(0.95, 0.3, False)]
    whole = [SeriesScore(0.93, 0.3, True)]
    point = fit_lossy_point(lossy_val, whole, ab, ["j2k-20"])
    assert point["series_threshold"] > apply_platt([0.93], ab)[0]  # above the whole training series
    assert point["codecs"] == ["j2k-20"] and "60 authentic, 1 tampered" in point["fitted_on"]
    assert point["fitted_on"].endswith("each coded j2k-20")
    assert fit_lossy_point(lossy_val, [], ab, ["j2k-20"])["series_threshold"] < point["series_threshold"]
    with pytest.raises(InputError, match="no authentic"):
        fit_lossy_point([s for s in lossy_val if not s.authentic], whole, ab, ["j2k-20"])
    (tmp_path / "calibration.json").write_text(json.dumps({**cal, "lossy": point}))
    c = read_calibration(tmp_path)
    assert c.threshold_for(0.3, lossy=True) == (point["series_threshold"], "lossy coding")
    assert c.threshold_for(0.03, lossy=True)[1] == "lossy coding"  # before the uncorrelated-noise point
    assert c.threshold_for(0.3) == (cal["series_threshold"], "scanner noise")
    (tmp_path / "calibration.json").write_text(json.dumps(cal))
    assert read_calibration(tmp_path).threshold_for(0.3, lossy=True)[1] == "scanner noise"
    for bad, why in (({}, "unreadable"), ({"series_threshold": -1}, "thresholds")):
        (tmp_path / "calibration.json").write_text(json.dumps({**cal, "lossy": bad}))
        with pytest.raises(InputError, match=why):
            read_calibration(tmp_path)


def test_recalibration_swaps_only_the_cards_operating_point_lines(tmp_path: Path) -> None:
    from medforensics.train.dense_calibration import write_recalibration

    (tmp_path / "calibration.json").write_text(json.dumps({"platt": [1, 0], "threshold": 0.9}))
    card = ["# Card", "- Trained 9 s.", "- Operating point: series threshold 0.9000 (old).", "", "## Data"]
    (tmp_path / "model_card.md").write_text("\n".join(card) + "\n")
    cal = fit_operating_points(_val())
    write_recalibration(tmp_path, cal, _val())
    lines = (tmp_path / "model_card.md").read_text().splitlines()
    assert lines[:2] == card[:2] and lines[-2:] == card[-2:]
    assert lines[2].startswith("- Operating point:") and f"{cal['series_threshold']:.4f}" in lines[2]
    assert lines[3].startswith("- Series whose noise is uncorrelated") and len(lines) == len(card) + 1
    assert json.loads((tmp_path / "calibration_training.json").read_text())["threshold"] == 0.9
    assert json.loads((tmp_path / "calibration.json").read_text()) == cal
    assert len(json.loads((tmp_path / "calibration_scores.json").read_text())) == len(_val())
    write_recalibration(tmp_path, cal, _val())  # again: the training calibration is not overwritten
    assert json.loads((tmp_path / "calibration_training.json").read_text())["threshold"] == 0.9
    assert (tmp_path / "model_card.md").read_text().splitlines() == lines
    assert "mirror views" not in lines[2]
    write_recalibration(tmp_path, {**cal, "views": 4}, _val())  # the card says how the maps were drawn
    lines = (tmp_path / "model_card.md").read_text().splitlines()
    assert "every map the mean of 4 in-plane mirror views" in lines[2] and len(lines) == len(card) + 1
    write_recalibration(tmp_path, {**cal, "views": 8}, _val())
    eight = (tmp_path / "model_card.md").read_text().splitlines()
    assert "the mean of 8 in-plane views (mirrors and their transposes)" in eight[2]
    write_recalibration(tmp_path, {**cal, "views": 4}, _val())
    write_recalibration(tmp_path, {**cal, "views": 4, "screen": 0.85}, _val())
    screened = (tmp_path / "model_card.md").read_text().splitlines()
    assert (
        "as `scan` draws it (the views after the first where the first view's raw evidence reaches 0.85)"
        in screened[2]
        and len(screened) == len(lines)
    )
    lossy = {"series_threshold": 0.95, "codecs": ["jls-3"], "fitted_on": "3 authentic"}
    write_recalibration(tmp_path, {**cal, "lossy": lossy}, _val()[:3], "calibration_lossy_scores.json")
    lines = (tmp_path / "model_card.md").read_text().splitlines()
    assert lines[4].startswith("- Series stored lossy") and "0.9500 instead (3 authentic)" in lines[4]
    assert len(lines) == len(card) + 2 and lines[-2:] == card[-2:]
    assert len(json.loads((tmp_path / "calibration_lossy_scores.json").read_text())) == 3
    assert len(json.loads((tmp_path / "calibration_scores.json").read_text())) == len(_val())


def test_recalibration_scores_the_models_own_validation_split(tmp_path: Path) -> None:
    import csv

    from medforensics.train.dense import train_dense
    from medforensics.train.dense_calibration import recalibrate
    from tests.train._dense import tiny_config

    cfg = tiny_config(tmp_path / "m", steps=2, eval_every=2, zcorr_channel=True, noise_channel=True)
    with (Path(cfg.data) / "manifest.csv").open(newline="") as fh:
        val = [r for r in csv.DictReader(fh) if r["split"] == "val"]
    held = sorted({r["method"] for r in val if r["type"] in ("FB", "FM")})[0]
    cfg.exclude_methods = [held]
    metrics = train_dense(cfg)  # training ends with this recalibration (``scan_calibration``)
    want = {r["uuid"] for r in val if r["method"] != held and r["type"] in ("TB", "TM", "FB", "FM")}
    fitted = json.loads((Path(cfg.out) / "calibration_scores.json").read_text())
    assert {s["name"] for s in fitted} == want
    written = json.loads((Path(cfg.out) / "calibration.json").read_text())
    assert metrics["scan_calibration"] == written
    assert json.loads((Path(cfg.out) / "metrics.json").read_text())["scan_calibration"] == written
    assert (Path(cfg.out) / "calibration_training.json").is_file()
    cal, scores = recalibrate(cfg.out, cfg.data)
    assert {s.name for s in scores} == want  # the held-out method never sets a threshold
    assert all(s.slice_corr is not None for s in scores)  # a zcorr model measures every series
    # deterministic: recalibrating again changes nothing (the lossy point is added after it)
    assert cal == {k: v for k, v in written.items() if k != "lossy"}
    lossy = json.loads((Path(cfg.out) / "calibration_lossy_scores.json").read_text())
    assert {s["name"].rsplit("+", 1)[0] for s in lossy} == want  # nor the lossy point
    assert 0.0 <= cal["series_threshold"] <= 1.0 and len(cal["platt"]) == 2
    assert "views" not in cal
    # fitted on maps averaged over mirror views: recorded, so the scan draws its maps the same way
    cal2, scores2 = recalibrate(cfg.out, cfg.data, views=2)
    assert cal2["views"] == 2 and [s.name for s in scores2] == [s.name for s in scores]
    assert [s.raw for s in scores2] != [s.raw for s in scores]
    (Path(cfg.out) / "calibration.json").write_text(json.dumps(cal2))
    assert read_calibration(Path(cfg.out)).views == 2
    # with a screen no first view reaches, the other view is never drawn: one view's scores, recorded
    cal_s, scores_s = recalibrate(cfg.out, cfg.data, views=2, screen=1.0)
    assert (cal_s["views"], cal_s["screen"]) == (2, 1.0)
    assert [s.raw for s in scores_s] == [s.raw for s in scores]
    with pytest.raises(ConfigError, match=r"screen must lie in \[0, 1\], not 1.5"):
        recalibrate(cfg.out, cfg.data, views=2, screen=1.5)
    # patients dealt to splits by the caller (a data set forged again) instead of the manifest
    with (Path(cfg.data) / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    one = sorted({r["patient"] for r in rows if r["split"] == "test"})[0]
    dealt = {r["patient"]: ("val" if r["patient"] == one else "train") for r in rows}
    _, scores3 = recalibrate(cfg.out, cfg.data, splits=dealt)
    want3 = {r["uuid"] for r in rows if r["patient"] == one and r["method"] != held}
    assert {s.name for s in scores3} == want3 - {
        r["uuid"] for r in rows if r["type"] not in ("TB", "TM", "FB", "FM")
    }


def test_augmented_calibration_keeps_thresholds_above_every_augmented_whole_series(tmp_path: Path) -> None:
    import csv

    from medforensics.io.reader import read_volume
    from medforensics.train.dense import train_dense
    from medforensics.train.dense_calibration import _raw_detector, augmented_copies, recalibrate
    from medforensics.train.dense_report import above_whole_series
    from tests.train._dense import tiny_config

    cfg = tiny_config(tmp_path / "m", steps=2, eval_every=2, lossy_codecs=[])
    with (Path(cfg.data) / "manifest.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["type"] in ("TB", "TM")]
    val_p = next(str(Path(cfg.data) / "scans" / r["uuid"]) for r in rows if r["split"] == "val")
    train_p = next(str(Path(cfg.data) / "scans" / r["uuid"]) for r in rows if r["split"] == "train")
    train_dense(cfg)
    plain, _ = recalibrate(cfg.out, cfg.data, [train_p], [val_p], noise_copies=0)
    cal, val = recalibrate(cfg.out, cfg.data, [train_p], [val_p], noise_copies=0, augmented=True)
    assert [s.name for s in val] == [s.name for s in recalibrate(cfg.out, cfg.data, [], [val_p])[1]]
    assert cal["platt"] == plain["platt"]  # the copies only bound the thresholds
    det = _raw_detector(cfg.out, 1)
    copies = [augmented_copies(det, read_volume(p), Path(p).name) for p in (val_p, train_p)]
    assert [len(c) for c in copies] == [11, 11]
    assert copies[0][0].name == f"{Path(val_p).name}+aug:rotate-10"
    raw = [s.raw for c in copies for s in c]
    assert len(set(raw)) > 1  # the copies are scored, not the stored series again
    floor = above_whole_series(plain["series_threshold"], raw, cal["platt"])
    assert cal["series_threshold"] == pytest.approx(floor)
    assert cal["series_threshold"] >= plain["series_threshold"]
    assert "and 22 augmented copies of whole series" in cal["fitted_on"]
    assert "augmented" not in plain["fitted_on"]


def test_the_lossy_point_is_added_from_coded_copies_of_the_validation_split(tmp_path: Path) -> None:
    import csv

    from medforensics.train.dense import train_dense
    from medforensics.train.dense_calibration import add_lossy_point
    from tests.train._dense import tiny_config

    default = DenseConfig(data="x", out="y").lossy_codecs
    assert default == ["j2k-10", "j2k-20", "jls-3"]  # every codec by default
    cfg = tiny_config(
        tmp_path / "m", steps=2, eval_every=2, zcorr_channel=True, noise_channel=True, lossy_codecs=default
    )
    metrics = train_dense(cfg)  # training ends with it (config lossy_codecs)
    before = json.loads((Path(cfg.out) / "calibration.json").read_text())
    assert before["lossy"]["codecs"] == default
    assert metrics["scan_calibration"] == before
    with (Path(cfg.data) / "manifest.csv").open(newline="") as fh:
        val = {r["uuid"] for r in csv.DictReader(fh) if r["split"] == "val" and r["type"] != "SYN"}
    written = json.loads((Path(cfg.out) / "calibration_lossy_scores.json").read_text())
    assert {s["name"] for s in written} == {f"{u}+{c}" for u in val for c in cfg.lossy_codecs}
    cal, scores = add_lossy_point(cfg.out, cfg.data, codecs=["jls-3"])
    assert {s.name for s in scores} == {f"{u}+jls-3" for u in val}
    drop = {"lossy"}
    assert {k: v for k, v in cal.items() if k not in drop} == {
        k: v for k, v in before.items() if k not in drop
    }
    assert cal["lossy"]["codecs"] == ["jls-3"] and 0.0 <= cal["lossy"]["series_threshold"] <= 1.0
    with pytest.raises(ValueError, match="unknown lossy codec"):
        add_lossy_point(cfg.out, cfg.data, codecs=["jpeg-99"])


def test_a_model_trained_with_thick_copies_is_calibrated_on_them_too(tmp_path: Path) -> None:
    import csv

    from medforensics.train.dense import train_dense
    from tests.train._dense import tiny_config

    cfg = tiny_config(tmp_path / "m", steps=2, eval_every=2, zcorr_channel=True, thick_mm=5.0)
    with (Path(cfg.data) / "manifest.csv").open(newline="") as fh:
        val = {r["uuid"] for r in csv.DictReader(fh) if r["split"] == "val" and r["type"] != "SYN"}
    train_dense(cfg)
    names = {s["name"] for s in json.loads((Path(cfg.out) / "calibration_scores.json").read_text())}
    plain = names & val
    assert plain == val and names - plain  # every validation series, and thick copies of them
    assert all(n.split("+thick")[0] in val for n in names - plain)
    assert json.loads((Path(cfg.out) / "config.json").read_text())["thick_mm"] == 5.0


def test_a_noise_specialist_validated_on_noisy_series_only_sets_both_points_from_them() -> None:
    val = [s for s in _val() if s.slice_corr == 0.03]
    cal = fit_operating_points(val)
    assert cal["series_threshold"] == cal["uncorrelated_noise"]["series_threshold"]
    assert cal["fitted_on"].startswith("no validation series with scanner noise")
    ab = cal["platt"]
    assert apply_platt([0.89], ab)[0] < cal["series_threshold"] < apply_platt([0.90], ab)[0]


def test_a_noise_specialist_is_calibrated_on_the_noisy_copies_it_trained_on(tmp_path: Path) -> None:
    import csv

    from medforensics.train.dense import train_dense
    from medforensics.train.dense_data import noise_augmented
    from tests.train._dense import tiny_config

    cfg = tiny_config(tmp_path / "m", steps=2, eval_every=2, zcorr_channel=True, noise_only=True)
    with (Path(cfg.data) / "manifest.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "val" and r["type"] != "SYN"]
    train_dense(cfg)
    names = {s["name"] for s in json.loads((Path(cfg.out) / "calibration_scores.json").read_text())}
    assert names == {r["uuid"] if noise_augmented(r) else r["uuid"] + "+noise0" for r in rows}
    assert any(noise_augmented(r) for r in rows) and any(not noise_augmented(r) for r in rows)
    assert "- Noise specialist (config `noise_only`)" in (Path(cfg.out) / "model_card.md").read_text()
    # its validation series are noisy copies: no lossy point is fitted on clean ones for it
    assert "lossy" not in json.loads((Path(cfg.out) / "calibration.json").read_text())
