"""The benchmark on a tiny look-alike forge data set, the method filter and leave-one-attack-out."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medforensics.errors import ConfigError
from medforensics.evaluate.benchmark import BenchmarkConfig, run_benchmark
from medforensics.evaluate.leaderboard import COLUMNS
from medforensics.train.data import (
    ArraySource,
    ForgeDatasetSource,
    ensure_splits,
    leave_method_out,
    sample_methods,
)

#: (label, method) of the scans every patient gets.
KINDS = [
    ("TB", "none"),
    ("TM", "none"),
    ("FM", "blob-inject"),
    ("FM", "copy-move"),
    ("FB", "inpaint-remove"),
]
METHODS = ["blob-inject", "copy-move", "inpaint-remove"]


def make_layout(root: Path, patients: int = 6, seed: int = 0) -> Path:
    """``forge dataset``-like folder: NIfTI scans, labels.csv, splits.csv, records/<uuid>.json.

    Injected scans carry a bright ball, removed ones a flattened (dark) ball, at the labelled location;
    TB/TM rows take their centre from the record's ``candidate_zyx``.
    """
    from medforensics.io.nifti import write_nifti
    from medforensics.io.volume import Volume

    rng = np.random.default_rng(seed)
    (root / "scans").mkdir(parents=True)
    (root / "records").mkdir()
    (root / "masks").mkdir()
    labels, splits = ["type,uuid,z,x,y"], ["uuid,patient,split"]
    zz, yy, xx = np.mgrid[:20, :40, :40]
    ball = (zz - 10) ** 2 / 4 + (yy - 20) ** 2 + (xx - 22) ** 2 <= 16
    for p in range(patients):
        split = ("train", "train", "val", "test", "train", "test")[p % 6]
        for k, (label, method) in enumerate(KINDS):
            uuid = f"p{p}-s{k}"
            arr = rng.normal(-700, 40, (20, 40, 40)).astype(np.float32)
            if label in ("TM", "FM"):
                arr[ball] = 40.0 if label == "TM" else 150.0
            elif label == "FB":
                arr[ball] = -950.0
            vol = Volume(arr, spacing=(2.0, 1.0, 1.0), modality="CT")
            write_nifti(vol, root / "scans" / f"{uuid}.nii.gz")
            # masks are named like the scans (as forge writes them): the source must not read them
            write_nifti(vol.with_array(np.zeros(arr.shape, np.float32)), root / "masks" / f"{uuid}.nii.gz")
            labels.append(f"{label},{uuid},0,0,0" if label == "TB" else f"{label},{uuid},10,22,20")
            splits.append(f"{uuid},patient{p},{split}")
            rec = {"uuid": uuid, "type": label, "method": method, "candidate_zyx": [10, 20, 22]}
            (root / "records" / f"{uuid}.json").write_text(json.dumps(rec))
    (root / "labels.csv").write_text("\n".join(labels) + "\n")
    (root / "splits.csv").write_text("\n".join(splits) + "\n")
    return root


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_layout(tmp_path_factory.mktemp("forge") / "ds")


def test_records_give_method_and_centre_and_filter(layout: Path) -> None:
    samples = list(ForgeDatasetSource(layout, "2d", 16))
    assert len(samples) == 6 * len(KINDS)
    assert sample_methods(samples) == METHODS
    assert all(s.array.std() > 0.01 for s in samples)  # cut from the scans, not the (empty) masks
    tb = next(s for s in samples if s.label == "TB")
    assert tb.meta["method"] == "none" and tb.meta["center_voxel"] == [10.0, 20.0, 22.0]
    assert {s.meta["method"] for s in samples if s.label == "FB"} == {"inpaint-remove"}
    only = list(ForgeDatasetSource(layout, "2d", 16, methods=["none", "copy-move"]))
    assert {(s.label, s.meta["method"]) for s in only} == {
        ("TB", "none"),
        ("TM", "none"),
        ("FM", "copy-move"),
    }
    assert len(only) == 6 * 3


def test_leave_method_out_selects_train_and_test(layout: Path) -> None:
    samples = list(ForgeDatasetSource(layout, "2d", 16))
    kept = leave_method_out(samples, "copy-move")
    fit = [s for s in kept if s.meta["split"] != "test"]
    test = [s for s in kept if s.meta["split"] == "test"]
    assert "copy-move" not in {s.meta["method"] for s in fit}
    assert {"blob-inject", "inpaint-remove"} <= {s.meta["method"] for s in fit}
    assert {s.meta["method"] for s in test} == {"none", "copy-move"}
    n_test_auth = sum(s.meta["split"] == "test" and s.label in ("TB", "TM") for s in samples)
    assert sum(s.label in ("TB", "TM") for s in test) == n_test_auth
    with pytest.raises(ConfigError, match="no test sample"):
        leave_method_out(samples, "ctgan-inject")


def test_ensure_splits_assigns_whole_patients() -> None:
    src = ArraySource([np.zeros((1, 4, 4))] * 20, ["TB", "FM"] * 10, [f"g{i // 2}" for i in range(20)])
    out = ensure_splits(list(src), 0.2, 0.2, seed=3)
    by_group: dict[str, set[str]] = {}
    for s in out:
        by_group.setdefault(s.group, set()).add(s.meta["split"])
    assert all(len(v) == 1 for v in by_group.values())
    assert {next(iter(v)) for v in by_group.values()} == {"train", "val", "test"}
    assert all("split" not in s.meta for s in src)  # inputs untouched
    with pytest.raises(ConfigError, match="needs a split"):
        leave_method_out(list(src), "x")


def test_benchmark_writes_leaderboard_and_loao(layout: Path, tmp_path: Path) -> None:
    cfg = BenchmarkConfig(
        out=tmp_path / "bench",
        models=["test_cnn3d", "test_svm"],
        epochs=2,
        batch_size=8,
        size_2d=16,
        speed_samples=8,
    )
    res = run_benchmark(layout, cfg)
    out = tmp_path / "bench"
    with (out / "leaderboard.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    header = list(rows[0])
    assert header[: len(COLUMNS)] == list(COLUMNS)
    assert [f"unseen_auc_{m}" for m in METHODS] == [
        c for c in header if c.startswith("unseen_auc_") and "mean" not in c
    ]
    assert {r["model"] for r in rows} == {"test_cnn3d", "test_svm"}
    for r in rows:
        assert r["error"] == ""
        for col in ("roc_auc", "in_dist_auc", "unseen_auc_mean", "img_per_s", "train_s", "acc_TB", "acc_FB"):
            assert float(r[col]) >= 0.0 and (col in ("img_per_s", "train_s") or float(r[col]) <= 1.0)
    with (out / "loao.csv").open() as fh:
        loao = list(csv.DictReader(fh))
    assert sorted((r["model"], r["held_out"]) for r in loao) == sorted(
        (m, h) for m in ("test_cnn3d", "test_svm") for h in METHODS
    )
    # the held-out run of copy-move tested on copy-move fakes + authentic test samples only
    m = json.loads((out / "models/test_svm/loao/copy-move/metrics.json").read_text())
    assert m["data"]["test"]["labels"] == {"TB": 2, "TM": 2, "FM": 2}
    assert m["data"]["train"]["labels"]["FM"] == 3  # blob-inject only (in-distribution: 6)
    assert not (out / "models/test_svm/loao/copy-move/model.safetensors").exists()
    md = (out / "leaderboard.md").read_text()
    assert "| rank | model |" in md and "Leave-one-attack-out" in md and "copy-move" in md
    # the epoch each CNN keeps is the best by validation AUC (what the leaderboard ranks), not by loss
    assert json.loads((out / "models/test_cnn3d/in-dist/config.json").read_text())["monitor"] == "val_auc"
    ev = json.loads((out / "models/test_cnn3d/in-dist/eval/evaluation.json").read_text())
    assert ev["n"] == 10 and (out / "models/test_cnn3d/in-dist/eval/roc.png").is_file()
    assert res["recommended_ct"] == "test_cnn3d" and res["machine"]["device"] == "cpu"
    assert res["rows"][0]["rank"] == 1


def test_benchmark_bad_config(layout: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown model"):
        run_benchmark(layout, BenchmarkConfig(out=tmp_path / "b", models=["resnet5O"]))
    with pytest.raises(ConfigError, match="protocol"):
        run_benchmark(layout, BenchmarkConfig(out=tmp_path / "b", models=["test_svm"], protocols=("cv",)))
    with pytest.raises(ConfigError, match="device must be"):
        run_benchmark(layout, BenchmarkConfig(out=tmp_path / "b", models=["test_svm"], device="gpu0"))
    assert not (tmp_path / "b").exists()


def test_benchmark_cli_errors_are_one_line(layout: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from medforensics.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["benchmark", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "does not exist" in res.output and "Traceback" not in res.output
    res = runner.invoke(
        app, ["benchmark", "--data", str(layout), "--out", str(tmp_path / "o"), "--models", "vgg61"]
    )
    assert res.exit_code == 2 and "unknown model 'vgg61'" in res.output
    assert not (tmp_path / "o").exists()


#: The tiny dense localiser's settings in a benchmark (its trainer's keys): seconds, not minutes.
TINY_DENSE = {"test_tamperseg3d": {"patch": [8, 32, 32], "batch_size": 2, "steps": 2, "eval_every": 2}}


def test_the_dense_localiser_is_benchmarked_at_scan_level_beside_the_zoo(tmp_path: Path) -> None:
    """Every registered model, the dense localiser included (before: left out of 'all', refused by name):
    trained with its own trainer on the data set's split, each test scan scanned as ``scan`` does."""
    from tests.forge._tiny_ct import shared_tiny_dataset

    assert "tamperseg3d" in BenchmarkConfig(out=tmp_path).validate()
    data, _ = shared_tiny_dataset()
    with (data / "manifest.csv").open(newline="") as fh:
        manifest = list(csv.DictReader(fh))
    tampering = sorted({r["method"] for r in manifest if r["type"] in ("FB", "FM")})
    synthesis = sorted({r["method"] for r in manifest if r["type"] == "SYN"})
    assert tampering and synthesis
    out = tmp_path / "bench"
    from tests.evaluate.test_scan_level import _dense_model

    start = str(_dense_model() / "model.safetensors")  # the in-distribution run may start from weights
    kwargs = {"test_tamperseg3d": {**TINY_DENSE["test_tamperseg3d"], "init_from": start}}
    cfg = BenchmarkConfig(out=out, models=["test_tamperseg3d", "test_svm"], epochs=1, model_kwargs=kwargs)
    res = run_benchmark(data, cfg)
    assert json.loads((out / "models/test_tamperseg3d/in-dist/config.json").read_text())["init_from"] == start
    row = next(r for r in res["rows"] if r["model"] == "test_tamperseg3d")
    assert "error" not in row and row["family"] == "dense" and row["input"] == "3d scan"
    ev = json.loads((out / "models/test_tamperseg3d/eval/in-dist/evaluation.json").read_text())
    assert ev["level"] == "scan" and ev["split"] == "test"
    assert row["in_dist_auc"] == ev["operating_point"]["roc_auc"] and row["n"] == ev["n"]
    assert ev["n"] + ev["n_errors"] == sum(r["split"] == "test" for r in manifest)
    dense_loao = {r["held_out"]: r for r in res["loao"] if r["model"] == "test_tamperseg3d"}
    assert sorted(dense_loao) == sorted(tampering + synthesis)
    for m in tampering:  # trained without m, tested on m's tampered test scans against the authentic ones
        cfg_m = json.loads((out / f"models/test_tamperseg3d/loao/{m}/config.json").read_text())
        assert cfg_m["exclude_methods"] == [m] and cfg_m["init_from"] is None  # weights that saw m: a leak
        held = json.loads((out / f"models/test_tamperseg3d/eval/loao-{m}/evaluation.json").read_text())
        assert dense_loao[m]["auc"] == held["per_method"][m]["roc_auc"]
    assert all(dense_loao[m]["auc"] is None and "SYN" in dense_loao[m]["note"] for m in synthesis)
    svm_loao = {r["held_out"] for r in res["loao"] if r["model"] == "test_svm"}
    assert set(synthesis) <= svm_loao  # the zoo's methods still come from its own samples
    assert "scored at scan level" in (out / "leaderboard.md").read_text()


def test_the_dense_localiser_needs_a_data_set_folder(tmp_path: Path) -> None:
    cfg = BenchmarkConfig(
        out=tmp_path / "b", models=["test_tamperseg3d", "test_svm"], model_kwargs=TINY_DENSE
    )
    res = run_benchmark(_memory(["TB", "FM"] * 12, [f"p{i // 2}" for i in range(24)]), cfg)
    row = next(r for r in res["rows"] if r["model"] == "test_tamperseg3d")
    assert "forge data set folder" in row["error"]


def _memory(labels: list[str], groups: list[str], splits: list[str] | None = None, methods: bool = True):  # type: ignore[no-untyped-def]
    """A callable data argument: in-memory 32 px noise samples for any spec, with methods when asked."""
    from medforensics.train.data import ListSource, Sample

    def source(spec):  # type: ignore[no-untyped-def]
        rng = np.random.default_rng(0)
        shape = (
            (1, spec.size, spec.size, spec.size) if spec.kind == "3d" else (spec.slices, spec.size, spec.size)
        )
        out = []
        for i, (lab, g) in enumerate(zip(labels, groups, strict=True)):
            meta = {"method": ("none" if lab in ("TB", "TM") else "blob-inject") if methods else None}
            if splits:
                meta["split"] = splits[i]
            out.append(Sample(rng.random(shape, dtype=np.float32), lab, g, meta))
        return ListSource(out)

    return source


GOOD = _memory(["TB", "FM"] * 6, [f"p{i // 2}" for i in range(12)])


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"preset": "turbo"}, "preset must be one of"),  # was a warning per model, then exit 0
        ({"seed": -1}, "seed must be >= 0"),  # was an internal error in numpy
        ({"seed": 2**64}, r"seed must be .* < 2\*\*32"),  # was a warning per model, then exit 0
        ({"models": []}, "no models to benchmark"),  # was the whole zoo
        ({"monitor": "val_f1"}, "monitor must be one of val_loss, val_auc"),
    ],
)
def test_bad_benchmark_settings_fail_before_anything(
    tmp_path: Path, kw: dict[str, object], message: str
) -> None:
    cfg = BenchmarkConfig(**{"out": tmp_path / "b", "models": ["test_svm"], **kw})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=message):
        run_benchmark(GOOD, cfg)
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_memory(["TB"] * 12, [f"p{i // 2}" for i in range(12)]), "one class"),
        (
            _memory(["TB", "FM"] * 6, ["p0"] * 12, ["train", "test"] * 6),
            "split leaks a patient",
        ),
        (_memory(["TB", "FM"] * 6, ["p0"] * 12), "no validation samples"),
        (_memory(["TB", "FM"] * 6, [f"p{i // 2}" for i in range(12)], methods=False), "attack methods"),
    ],
)
def test_a_data_set_no_model_can_use_fails_before_training(
    tmp_path: Path, data: object, message: str
) -> None:
    cfg = BenchmarkConfig(out=tmp_path / "b", models=["test_svm", "test_random_forest"])
    with pytest.raises(ConfigError, match=message):  # was a warning per model, exit 0, "recommended None"
        run_benchmark(data, cfg)  # type: ignore[arg-type]
    assert not (tmp_path / "b" / "models").exists()


def test_every_model_failing_is_an_error(tmp_path: Path) -> None:
    cfg = BenchmarkConfig(
        out=tmp_path / "b",
        models=["test_svm"],
        protocols=("in-dist",),
        model_kwargs={"test_svm": {"bogus": 1}},
    )
    with pytest.raises(ConfigError, match=r"every model failed; the first: .*bogus"):
        run_benchmark(GOOD, cfg)


@pytest.mark.parametrize("where", ["file", "file/sub", "ds", "ds/bench", "mine", "theirs"])
def test_a_benchmark_out_over_the_data_or_other_files_is_refused(
    layout: Path, tmp_path: Path, where: str
) -> None:
    from medforensics.errors import OutputError

    ds = Path(shutil.copytree(layout, tmp_path / "ds"))
    (tmp_path / "file").write_text("precious")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "leaderboard.md").write_text("my notes")
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "benchmark.json").write_text('{"mine": 1}')
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(OutputError):  # internal errors, or exit 0 with the data set / notes changed
        run_benchmark(ds, BenchmarkConfig(out=tmp_path / where, models=["test_svm"]))
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize(("option", "value"), [("--models", ""), ("--models", " , ,"), ("--protocols", "")])
def test_an_empty_list_option_is_an_error_not_everything(
    layout: Path, tmp_path: Path, option: str, value: str
) -> None:
    from typer.testing import CliRunner

    from medforensics.cli import app

    args = ["benchmark", "-d", str(layout), "-o", str(tmp_path / "o"), "--models", "test_svm", option, value]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and f"{option} names nothing" in res.output  # ran the whole zoo / both
    assert not (tmp_path / "o").exists()


def test_an_interrupted_benchmark_resumes_with_the_runs_not_yet_done(
    layout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medforensics.train.loop as loop

    trained: list[str] = []
    real_train = loop.train

    def counting(tc: object, source: object) -> object:
        trained.append(Path(str(tc.out)).relative_to(tmp_path).as_posix())  # type: ignore[attr-defined]
        return real_train(tc, source)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "train", counting)

    def cfg(out: str, **kw: object) -> BenchmarkConfig:
        base = {"models": ["test_svm", "test_cnn3d"], "epochs": 2, "batch_size": 8, "size_2d": 16}
        return BenchmarkConfig(out=tmp_path / out, speed_samples=8, **{**base, **kw})  # type: ignore[arg-type]

    def stop(msg: str) -> None:
        if msg.startswith("test_cnn3d: leave-one-attack-out"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_benchmark(layout, cfg("b"), progress=stop)
    assert len(trained) == 5  # test_svm in-dist and its three held-out runs, test_cnn3d in-dist
    trained.clear()
    resumed = run_benchmark(layout, cfg("b"), resume=True)
    assert trained == [f"b/models/test_cnn3d/loao/{m}" for m in METHODS]
    assert resumed["reused_runs"] == [
        "test_svm in-dist",
        *(f"test_svm loao {m}" for m in METHODS),
        "test_cnn3d in-dist",
    ]
    assert "5 training run(s) were taken from an earlier" in (tmp_path / "b" / "leaderboard.md").read_text()
    trained.clear()
    whole = run_benchmark(layout, cfg("whole"))  # uninterrupted: the same leaderboard
    assert len(trained) == 8

    def scores(res: dict[str, Any]) -> list[Any]:
        keys = ("model", "roc_auc", "unseen_auc_mean", "accuracy", "tpr_at_1pct_fpr")
        return [[r.get(k) for k in keys] for r in res["rows"]] + [[r["auc"] for r in res["loao"]]]

    assert scores(resumed) == scores(whole)
    trained.clear()
    run_benchmark(layout, cfg("b"))  # without --resume every run trains again
    assert len(trained) == 8
    trained.clear()
    other = run_benchmark(layout, cfg("b", epochs=3, models=["test_svm"]), resume=True)
    assert len(trained) == 4 and other["reused_runs"] == []  # other settings: nothing is taken


def test_benchmark_cli_resume_and_ctrl_c(
    layout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import medforensics.evaluate.benchmark as benchmark
    from medforensics.cli import app

    args = ["benchmark", "--data", str(layout), "--out", str(tmp_path / "o"), "--models", "test_svm"]
    args += ["--protocols", "in-dist", "--size-2d", "16"]
    runner = CliRunner()
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, [*args, "--resume"])
    assert again.exit_code == 0 and "1 run(s) taken from the earlier run" in again.output

    def interrupted(*_a: object, **_k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(benchmark, "run_benchmark", interrupted)
    stopped = runner.invoke(app, args)
    assert "1 finished training run(s) kept in" in stopped.output and "--resume goes on" in stopped.output
