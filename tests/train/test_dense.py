"""Training the dense localiser on the tiny forge data set: outputs, calibration, refusals."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from medforensics.train.dense import train_dense
from tests.train._dense import tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("dense") / "model"
    return out, train_dense(tiny_config(out, steps=6, eval_every=3))


def test_training_writes_a_complete_model_folder(trained: tuple[Path, dict]) -> None:
    out, metrics = trained
    for name in (
        "model.safetensors",
        "config.json",
        "metrics.json",
        "calibration.json",
        "model_card.md",
        "train_log.csv",
    ):
        assert (out / name).is_file(), name
    cal = json.loads((out / "calibration.json").read_text())
    assert 0.0 <= cal["series_threshold"] <= 1.0 and len(cal["platt"]) == 2
    assert metrics["best_step"] in (3, 6)
    splits = metrics["splits"]
    patients = [set(s["patients"]) for s in splits.values()]
    assert all(not (a & b) for i, a in enumerate(patients) for b in patients[i + 1 :])
    assert 0.0 <= metrics["val"]["auc"] <= 1.0
    # the voxel sizes of the training and validation scans, as scan's caveats read them
    from medforensics.io.reader import read_volume
    from medforensics.scan.coverage import read_spacing_range, spacing_range
    from tests.forge._tiny_ct import shared_tiny_dataset

    root, _ = shared_tiny_dataset()
    with (root / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    seen = [read_volume(root / "scans" / r["uuid"]).spacing for r in rows if r["split"] in ("train", "val")]
    assert seen and metrics["data_spacing"] == spacing_range(seen)
    assert json.loads((out / "metrics.json").read_text())["data_spacing"] == metrics["data_spacing"]
    assert read_spacing_range(metrics, out)["pixel_mm"][0] > 0
    card = (out / "model_card.md").read_text()
    assert "## Data seen" in card
    px = metrics["data_spacing"]["pixel_mm"]
    assert f"Training and validation CTs: pixels {px[0]}-{px[1]} mm" in card
    scores = card.split("## Scores")[1].split("##")[0]
    assert re.search(r"- val: AUC (\d\.\d{3}|n/a), top region", scores), scores  # rounded, not 0.86057...
    assert not re.search(r"\d\.\d{5}", scores), scores


def test_scores_tied_at_a_ceiling_are_counted_and_flagged_in_the_card(
    trained: tuple[Path, dict], tmp_path: Path
) -> None:
    """The session-9 failure: half the validation scans at one saturated score put the threshold on it."""
    import shutil

    from medforensics.train.dense_report import calibrate, model_card

    labels = ("TB", "TM", "FM", "FB") * 10
    spread = [
        {"score": float(v), "label": lab} for v, lab in zip(np.linspace(0.05, 0.95, 40), labels, strict=True)
    ]
    assert calibrate(spread)["tied_at_top"] == 1
    ceiling = spread[:20] + [{"score": 0.805, "label": lab} for lab in labels[:20]]
    cal = calibrate(ceiling)
    assert (cal["tied_at_top"], cal["tied_authentic"]) == (20, 10)
    confident = spread[:20] + [{"score": 1.0, "label": lab} for lab in ("FM", "FB") * 10]
    assert (calibrate(confident)["tied_at_top"], calibrate(confident)["tied_authentic"]) == (20, 0)

    out, metrics = trained
    folder = tmp_path / "m"
    shutil.copytree(out, folder)
    cfg = tiny_config(folder, steps=6, eval_every=3)
    assert "Warning" not in model_card(cfg, metrics)
    stored = json.loads((folder / "calibration.json").read_text())
    n = len(metrics["val_scores"])
    (folder / "calibration.json").write_text(json.dumps({**stored, "tied_at_top": n, "tied_authentic": 1}))
    card = model_card(cfg, metrics)
    assert "Warning" in card and "1 of them authentic" in card
    (folder / "calibration.json").write_text(json.dumps({**stored, "tied_at_top": n, "tied_authentic": 0}))
    card = model_card(cfg, metrics)
    assert "Warning" not in card and "all of them tampered" in card
    assert "more than 3 mm apart (1.2 x the grid's slice spacing" in card
    card = model_card(tiny_config(folder, steps=6, eval_every=3, max_slice_mm=6.0), metrics)
    assert "more than 6 mm apart (set in its config" in card  # the limit scan applies to this model


def test_classifier_tools_refuse_a_dense_folder_in_one_line(trained: tuple[Path, dict]) -> None:
    from medforensics.errors import InputError
    from medforensics.train.checkpoint import load_trained

    with pytest.raises(InputError, match="dense localiser"):
        load_trained(trained[0])


def test_hard_negatives_are_the_models_false_alarms_in_the_lung(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    import torch

    import medforensics.models.tamperseg as ts
    from medforensics.train.dense import Item, mine_hard_negatives, window
    from medforensics.train.dense_batches import _draw

    hu = np.full((8, 40, 40), 40.0, np.float32)
    hu[:, :, :20] = -850.0  # aerated lung on the left, soft tissue on the right
    prob = torch.zeros((3, *hu.shape))
    prob[0] = 1.0
    prob[0, 3:6, 28:33, 8:13] = 0.0  # a false alarm in the lung ...
    prob[0, 3:6, 28:33, 32:37] = 0.0  # ... and one deep in soft tissue, outside what the scan reads
    monkeypatch.setattr(ts, "predict_map", lambda model, image, precision="bf16": prob)
    sp = (2.5, 1.4, 1.4)
    authentic = Item(window(hu)[None], np.zeros(hu.shape, np.int64), "TB", "none", "p", "a", sp)
    tampered = Item(window(hu)[None], np.ones(hu.shape, np.int64), "FM", "x", "p", "t", sp)
    cfg = tiny_config(hard_negative=1.0)
    rng = np.random.default_rng(0)
    assert mine_hard_negatives(torch.nn.Identity(), [authentic, tampered], cfg, rng) == 1
    assert authentic.hard is not None and authentic.hard.tolist() == [[4, 30, 10]]
    assert tampered.hard is None
    assert _draw([authentic], cfg, rng) == (authentic, authentic.hard)
    off = tiny_config(hard_negative=0.0)
    assert all(_draw([authentic], off, rng)[1] is None for _ in range(20))  # TB: anywhere


def test_device_and_workers_are_checked_before_training() -> None:
    import torch

    from medforensics.errors import ConfigError
    from medforensics.train.dense import resolve_device

    with pytest.raises(ConfigError, match="device must be"):
        train_dense(tiny_config(device="tpu"))
    with pytest.raises(ConfigError, match="workers"):
        train_dense(tiny_config(workers=-1))
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            resolve_device("cuda")


def test_training_with_batch_workers_does_not_depend_on_their_number(tmp_path: Path) -> None:
    runs = [
        train_dense(tiny_config(tmp_path / str(w), steps=4, eval_every=2, hard_every=2, workers=w))
        for w in (1, 2)
    ]
    assert [r["val_scores"] for r in runs[:1]] == [r["val_scores"] for r in runs[1:]]
    assert (tmp_path / "2" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"steps": 0}, "steps must be 1"),
        ({"batch_size": 1}, "batch_size must be 2"),
        ({"eval_every": 0}, "eval_every must be 1"),
        ({"self_blend_noise": "pink"}, "self_blend_noise must be one of mixed, fresh; got 'pink'"),
        ({"seed": -1}, "seed must be 0 or more"),
        ({"lr": float("nan")}, "lr must be a finite number above 0"),
        ({"weight_decay": -1.0}, "weight_decay must be a finite number of 0 or more"),
        ({"mirror_consistency": float("nan")}, "mirror_consistency must be a finite number of 0 or more"),
        ({"mirror_consistency": -0.5}, "mirror_consistency must be a finite number of 0 or more"),
        ({"pixel_copies_mm": [1.0, 0.0]}, "pixel_copies_mm must be pixel sizes of 0.1-5 mm, got 0.0"),
        ({"pixel_copies_mm": ["1"]}, "pixel_copies_mm must be pixel sizes of 0.1-5 mm, got '1'"),
        ({"dose_copies": [0.5, 1.0]}, r"dose_copies must be fractions of the scans' dose in .0, 1., got 1.0"),
        ({"dose_copies": [0.0]}, r"dose_copies must be fractions of the scans' dose in .0, 1., got 0.0"),
        ({"round_trip_copies_mm": [1.0, 0.0]}, "round_trip_copies_mm must be voxel sizes of 0.1-5 mm, got 0"),
    ],
)
def test_counts_that_cannot_train_are_one_line_errors(change: dict, message: str) -> None:
    from dataclasses import replace

    from medforensics.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        train_dense(replace(tiny_config(), **change))


def test_ten_steps_train(tmp_path: Path) -> None:
    """Ten steps once made torch's one-cycle schedule divide by zero (a 1-step warm-up ending at step 0).
    In fp32 (the other tests train in bf16 where the CPU has it): scoring the validation scans once left
    the weights as inference tensors, and the next training step crashed."""
    metrics = train_dense(tiny_config(tmp_path, steps=10, eval_every=5, hard_every=5, precision="fp32"))
    assert metrics["best_step"] in (5, 10) and metrics["precision_run"] == "fp32"


def test_progress_lines_and_a_log_written_after_each_evaluation(tmp_path: Path) -> None:
    """A run stopped by a time limit keeps the log of its evaluations (``finish_dense`` then keeps it)."""
    import csv

    seen: list[tuple[str, list[str]]] = []

    def progress(msg: str) -> None:
        log = tmp_path / "train_log.csv"
        steps = [r["step"] for r in csv.DictReader(log.open())] if log.is_file() else []
        seen.append((msg, steps))

    train_dense(tiny_config(tmp_path, steps=4, eval_every=2, hard_every=2), progress=progress)
    assert "train" in seen[0][0] and "scans loaded" in seen[0][0] and seen[0][1] == []
    assert [m.split(":")[0] for m, _ in seen[1:]] == ["step 2/4", "step 4/4"]
    assert [steps for _, steps in seen[1:]] == [["2"], ["2", "4"]]  # on disk when the line is printed
    assert "val scan AUC" in seen[1][0]
    rows = list(csv.DictReader((tmp_path / "train_log.csv").open()))
    mine, evals, total = ([float(r[k]) for r in rows] for k in ("mine_seconds", "eval_seconds", "seconds"))
    assert mine[0] > 0 and mine[1] == mine[0]  # mined at step 2 (not at the last step), in both rows
    assert 0 < evals[0] < evals[1]
    assert all(m + e <= t + 0.1 for m, e, t in zip(mine, evals, total, strict=True))  # seconds: 0.1 s steps


def test_cli_names_the_config_of_a_value_that_cannot_train(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from medforensics.cli import app

    cfg = tmp_path / "dense.json"
    body = {"model": "test_tamperseg3d", "data": tiny_config().data, "out": str(tmp_path / "run"), "steps": 0}
    cfg.write_text(json.dumps(body))
    res = CliRunner().invoke(app, ["train", "--config", str(cfg)])
    assert res.exit_code == 2 and f"{cfg}: steps must be 1 or more" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "run").exists()


def test_cli_summary_line_gives_the_aucs_rounded(tmp_path: Path) -> None:
    """The closing line printed the raw floats ("test scan AUC 0.30000000000000004")."""
    from typer.testing import CliRunner

    from medforensics.cli import app

    cfg = tmp_path / "dense.json"
    body = {"model": "test_tamperseg3d", "data": tiny_config().data, "out": str(tmp_path / "run")}
    cfg.write_text(json.dumps({**body, "patch": [8, 32, 32], "batch_size": 2, "steps": 2, "eval_every": 2}))
    res = CliRunner().invoke(app, ["train", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    assert re.search(r"val scan AUC (\d\.\d{4}|n/a), test scan AUC (\d\.\d{4}|n/a)$", res.stdout.strip())


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_dense_trains_on_cuda_with_batch_workers(tmp_path: Path) -> None:
    m = train_dense(tiny_config(tmp_path, steps=4, eval_every=2, hard_every=2, device="cuda", workers=2))
    assert m["device"] != "cpu" and (tmp_path / "model.safetensors").is_file()
    assert m["best_step"] in (2, 4) and m["test"]["auc"] is not None


def test_a_run_stopped_by_a_time_limit_is_finished_from_its_checkpoint(tmp_path: Path) -> None:
    from medforensics.errors import InputError
    from medforensics.scan.detector import load_detector
    from medforensics.train.dense import finish_dense

    cfg = tiny_config(tmp_path / "m", steps=2, eval_every=1)
    first = train_dense(cfg)
    log = (tmp_path / "m" / "train_log.csv").read_text()
    for f in (tmp_path / "m").iterdir():  # what a killed run leaves (and last/)
        if f.name not in ("model.safetensors", "train_log.csv", "last"):
            f.unlink()
    metrics = finish_dense(cfg, "trained elsewhere")
    assert (tmp_path / "m" / "train_log.csv").read_text() == log and len(log.splitlines()) == 3
    assert (
        metrics["stopped_early"]
        and metrics["train_seconds"] is None
        and metrics["note"] == "trained elsewhere"
    )
    assert metrics["test"]["auc"] == pytest.approx(first["test"]["auc"])  # the same weights, scored alike
    assert json.loads((tmp_path / "m" / "metrics.json").read_text())["stopped_early"] is True
    assert "stopped early" in (tmp_path / "m" / "model_card.md").read_text()
    load_detector(tmp_path / "m")  # a complete model folder
    with pytest.raises(InputError, match=r"no model\.safetensors"):
        finish_dense(tiny_config(tmp_path / "empty"))


def test_training_can_start_from_another_runs_weights(tmp_path: Path) -> None:
    from medforensics.errors import InputError
    from medforensics.train.checkpoint import load_weights
    from medforensics.train.dense import dense_model

    train_dense(tiny_config(tmp_path / "a", steps=2, eval_every=1))
    train_dense(tiny_config(tmp_path / "b", steps=1, eval_every=1, lr=1e-12, init_from=str(tmp_path / "a")))
    a, b, fresh = (dense_model("test_tamperseg3d", 2) for _ in range(3))
    load_weights(a, tmp_path / "a" / "model.safetensors")
    load_weights(b, tmp_path / "b" / "model.safetensors")
    w = "down.0.0.0.weight"
    assert torch.allclose(a.state_dict()[w], b.state_dict()[w], atol=1e-6)  # started there, barely moved
    assert not torch.allclose(a.state_dict()[w], fresh.state_dict()[w], atol=1e-3)
    from medforensics.scan.detector import sha256_file

    sha_a = sha256_file(tmp_path / "a" / "model.safetensors")[:12]  # before b: what b started from
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["init_from"]["sha256"] == sha_a
    assert "Fine-tuned: training started from the weights" in (tmp_path / "b" / "model_card.md").read_text()
    assert sha_a in (tmp_path / "b" / "model_card.md").read_text()
    assert "Fine-tuned" not in (tmp_path / "a" / "model_card.md").read_text()
    with pytest.raises(InputError, match="no weights to start from"):
        train_dense(tiny_config(tmp_path / "d", steps=1, init_from=str(tmp_path / "nowhere")))
    with pytest.raises(InputError, match="do not fit"):  # a 2-channel model is no start for a 3-channel one
        train_dense(tiny_config(tmp_path / "c", steps=1, zcorr_channel=True, init_from=str(tmp_path / "a")))


def test_a_model_trained_with_self_blended_copies_says_so(tmp_path: Path) -> None:
    metrics = train_dense(
        tiny_config(tmp_path, steps=2, eval_every=2, self_blend=1, self_blend_noise="fresh")
    )
    assert "FB:self-blend" in "".join(metrics["splits"]["train"]["labels"])
    card = (tmp_path / "model_card.md").read_text()
    assert "- Self-blended copies: every authentic training scan" in card and "(fresh noise)" in card


def test_mirror_tied_training_keeps_every_kernel_mirror_symmetric(
    tmp_path: Path, trained: tuple[Path, dict]
) -> None:
    from medforensics.train.checkpoint import load_weights
    from medforensics.train.dense import dense_model

    train_dense(tiny_config(tmp_path, steps=3, eval_every=3, mirror_tied=True))
    tied, plain = dense_model("test_tamperseg3d", 2), dense_model("test_tamperseg3d", 2)
    load_weights(tied, tmp_path / "model.safetensors")
    load_weights(plain, trained[0] / "model.safetensors")
    kernels = [k for k, w in tied.state_dict().items() if w.ndim == 5]
    assert kernels
    for k in kernels:
        w = tied.state_dict()[k]
        assert torch.equal(w, w.flip(-1)) and torch.equal(w, w.flip(-2)), k
    assert any(not torch.allclose(w, w.flip(-1)) for w in plain.state_dict().values() if w.ndim == 5)
    assert "- Mirror-tied: every convolution kernel" in (tmp_path / "model_card.md").read_text()
    assert "Mirror-tied" not in (trained[0] / "model_card.md").read_text()


def _loss_parts(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, dims: tuple[int, ...]) -> tuple:
    from medforensics.train.dense import loss_fn

    cfg = tiny_config()
    a, b = model(x), model(x.flip(dims)).flip(dims)
    p = 1.0 - torch.softmax(a, dim=1)[:, 0]
    q = 1.0 - torch.softmax(b, dim=1)[:, 0]
    return loss_fn(a, y, cfg), loss_fn(b, y, cfg), (p - q).pow(2).mean()


def test_mirror_pairs_average_two_views_cycled_by_step_and_consistency_adds_their_disagreement() -> None:
    from dataclasses import replace

    from medforensics.train.dense import dense_model, step_loss

    torch.manual_seed(0)
    model = dense_model("test_tamperseg3d", 2).eval()
    x = torch.randn(2, 2, 8, 32, 32)
    y = torch.zeros(2, 8, 32, 32, dtype=torch.long)
    y[0, 2:5, 4:12, 20:28] = 1  # an edit on one side only: the mirror views differ
    plain, pairs = tiny_config(), replace(tiny_config(), mirror_pairs=True)
    with torch.no_grad():
        assert torch.allclose(step_loss(model, x, y, plain, 1), _loss_parts(model, x, y, (-1,))[0])
        for step, dims in ((1, (-1,)), (2, (-2,)), (3, (-2, -1)), (4, (-1,))):
            first, second, disagreement = _loss_parts(model, x, y, dims)
            assert float(disagreement) > 0
            got = step_loss(model, x, y, pairs, step)
            assert torch.allclose(got, 0.5 * (first + second)), step
            weighted = replace(tiny_config(), mirror_consistency=3.0)  # implies the pairs
            assert torch.allclose(step_loss(model, x, y, weighted, step), got + 3.0 * disagreement), step


def test_mirror_consistency_costs_nothing_where_the_network_is_mirror_symmetric() -> None:
    """Tied kernels (exactly symmetric, grids that divide the patch) give the mirrored map of a mirrored
    input, so the consistency term is zero: it only measures what the mirror views disagree on."""
    from dataclasses import replace

    from medforensics.models.tamperseg import tie_mirrors
    from medforensics.train.dense import dense_model, step_loss

    torch.manual_seed(1)
    model = dense_model("test_tamperseg3d", 2).eval()
    with torch.no_grad():
        model.head.weight.mul_(40.0)  # confident maps: an untrained network's are nearly uniform
    x = torch.randn(1, 2, 8, 32, 32)
    y = torch.zeros(1, 8, 32, 32, dtype=torch.long)
    y[0, 2:5, 4:12, 20:28] = 1
    pairs, weighted = (
        replace(tiny_config(), mirror_pairs=True),
        replace(tiny_config(), mirror_consistency=50.0),
    )
    with torch.no_grad():
        for dims in ((-1,), (-2,), (-2, -1)):
            assert float(_loss_parts(model, x, y, dims)[2]) > 1e-5
        tie_mirrors(model)
        for step, dims in ((1, (-1,)), (2, (-2,)), (3, (-2, -1))):
            assert float(_loss_parts(model, x, y, dims)[2]) < 1e-10
            extra = step_loss(model, x, y, weighted, step) - step_loss(model, x, y, pairs, step)
            assert abs(float(extra)) < 1e-6


def test_mirror_consistency_training_is_on_the_card(tmp_path: Path, trained: tuple[Path, dict]) -> None:
    train_dense(tiny_config(tmp_path, steps=2, eval_every=2, mirror_consistency=20.0))
    card = (tmp_path / "model_card.md").read_text()
    assert "- Mirror pairs: every batch also seen in an in-plane mirror view, with a consistency term" in card
    assert "(weight 20)" in card
    assert "Mirror pairs" not in (trained[0] / "model_card.md").read_text()


def test_the_patch_term_is_the_binary_cross_entropy_of_each_patchs_peak() -> None:
    """Written out (CUDA autocast refuses F.binary_cross_entropy), it must still be that loss."""
    from dataclasses import replace

    import torch.nn.functional as F

    from medforensics.train.dense import loss_fn

    torch.manual_seed(0)
    logits = torch.randn(3, 3, 6, 16, 16)
    y = torch.zeros(3, 6, 16, 16, dtype=torch.long)
    y[0, 1:4, 2:8, 3:9] = 2  # one patch holds an edit, two do not
    base = replace(tiny_config(), peak_weight=0.0)
    p = 1.0 - torch.softmax(logits, dim=1)[:, 0]
    peak = F.avg_pool3d(p[:, None], 3, stride=1, padding=1).amax(dim=(1, 2, 3, 4)).clamp(1e-4, 1 - 1e-4)
    want = F.binary_cross_entropy(peak, torch.tensor([1.0, 0.0, 0.0]))
    got = loss_fn(logits, y, replace(base, peak_weight=2.0)) - loss_fn(logits, y, base)
    assert float(want) > 0.1 and torch.allclose(got, 2.0 * want, atol=1e-6)


def test_scan_scores_average_the_mirror_views_they_are_asked_for() -> None:
    """``scan_scores(views=...)`` scores each scan on the map averaged over that many in-plane mirror views,
    as ``predict_map`` gives it (a random network is not mirror-symmetric, so 1 and 4 views differ)."""
    from medforensics.models.tamperseg import predict_map, tamper_evidence
    from medforensics.train.dense import model_from_config, scan_scores
    from medforensics.train.dense_data import Item

    torch.manual_seed(0)
    model = model_from_config({"model": "test_tamperseg3d", "noise_channel": True}).eval()
    rng = np.random.default_rng(0)
    items = [
        Item(
            rng.random((2, 8, 32, 32), np.float32),
            np.zeros((8, 32, 32), np.int64),
            label,
            "m",
            "p",
            str(k),
            (2.5, 1.4, 1.4),
        )
        for k, label in enumerate(("TB", "FM"))
    ]
    for views in (1, 4):
        got = scan_scores(model, items, "fp32", views=views)["scores"]
        want = [
            float(
                tamper_evidence(predict_map(model, it.image, precision="fp32", views=views), it.spacing).max()
            )
            for it in items
        ]
        assert got == pytest.approx(want, abs=1e-6)
    assert scan_scores(model, items, "fp32", views=4)["scores"] != pytest.approx(
        scan_scores(model, items, "fp32")["scores"], abs=1e-6
    )
