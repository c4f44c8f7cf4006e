"""Train, calibrate and bundle the 2-D synthesis detector (real vs DCGAN-synthetic CT / MR / X-ray).

Usage::

    python benchmarks/leaderboard/make_detector2d.py --work /tmp/bench/det2d [--per-class 400]

Inputs are 64x64 single-channel images in [0, 1] ("display-normalised": CT windowed to [-1000, 400] HU,
MR and X-ray scaled between their 0.5 and 99.5 percentiles), which is why the config's ``hu_window`` is
[0, 1]: callers normalise first, then the detector's window is the identity. Real images are random crops
(the DCGAN's own crop/rotate sampler) of the real images available offline; fakes are samples of the
bundled DCGAN generators (``medforensics/assets/dcgan``). Real crops are grouped in contiguous blocks of
their base images, fakes in blocks of latent seeds; splits are drawn per group.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from medforensics._atomic import write_text_atomic
from medforensics.forge.dcgan import bundled_weights, generate, load_generator
from medforensics.forge.dcgan_data import CropSampler, load_training_images
from medforensics.train import config_from_dict, train
from medforensics.train.data import ArraySource

ASSETS = Path(__file__).resolve().parents[2] / "src" / "medforensics" / "assets" / "detector2d"
MODALITIES = ("ct", "mr", "xray")
BLOCKS = 10


def images(per_class: int, seed: int) -> tuple[list[np.ndarray], list[str], list[str], dict[str, list[str]]]:
    """Arrays (1, 64, 64) in [0, 1], labels REAL/FAKE, groups, and the real sources per modality."""
    xs: list[np.ndarray] = []
    labels: list[str] = []
    groups: list[str] = []
    sources: dict[str, list[str]] = {}
    for m_i, mod in enumerate(MODALITIES):
        data = load_training_images(mod)
        sources[mod] = data.sources
        gen = torch.Generator().manual_seed(seed * 100 + m_i)
        n_base = len(data.images)
        for b in range(BLOCKS):  # real crops drawn from one contiguous block of base images
            lo, hi = b * n_base // BLOCKS, max((b + 1) * n_base // BLOCKS, b * n_base // BLOCKS + 1)
            sub = type(data)(data.images[lo:hi], data.sources, data.flips, data.max_rotation_deg)
            crops = CropSampler(sub, 64).sample(per_class // BLOCKS, gen).numpy()
            xs += list((crops + 1) / 2)
            labels += ["REAL"] * len(crops)
            groups += [f"{mod}-real-{b}"] * len(crops)
        g = load_generator(bundled_weights(mod))
        for b in range(BLOCKS):
            fake = generate(g, per_class // BLOCKS, seed=seed * 1000 + m_i * 100 + b)[:, None]
            xs += list((np.clip(fake, -1, 1) + 1) / 2)
            labels += ["FAKE"] * len(fake)
            groups += [f"{mod}-fake-{b}"] * len(fake)
    return [x.astype(np.float32) for x in xs], labels, groups, sources


def card(metrics: dict, sources: dict[str, list[str]], per_class: int) -> str:
    t = metrics["test"]
    op = t["operating_point"]
    cal = metrics["operating_point"]
    src = "; ".join(f"{m}: {', '.join(s)}" for m, s in sources.items())
    lines = [
        "# Model card: medforensics 2-D synthesis detector (`cnn`, real vs DCGAN-synthetic)",
        "",
        f"2-D CNN (4 conv stages 32-256 channels, {metrics['parameters']:,} parameters) on 64x64 images in "
        "[0, 1]: CT windowed to [-1000, 400] HU, MR / X-ray scaled between their 0.5 and 99.5 percentiles. "
        "Output: probability that the image is synthetic (Platt-calibrated on validation data).",
        "",
        "## Data seen",
        "",
        f"{per_class} real crops and {per_class} DCGAN samples per modality (CT, MR, X-ray). Real images "
        f"(all available offline): {src}. Fakes: the bundled DCGAN generators "
        "(`assets/dcgan/*.safetensors`). "
        "Groups (blocks of base images / latent seeds) never cross splits.",
        "",
        "| split | samples | groups | labels |",
        "| --- | --- | --- | --- |",
    ]
    for k, s in metrics["data"].items():
        lines.append(f"| {k} | {s['n']} | {s['patients']} | {s['labels']} |")
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
        "## Limitations",
        "- Knows one generator family (this project's 64-px DCGANs). Other synthesis methods (diffusion, "
        "StyleGAN, CT-GAN in-painting) are unseen and may not be detected.",
        "- Very few real source images (a handful of patients per modality; real crops overlap in anatomy "
        "across splits of the same patient), so the real-image variety is small.",
        "- Inputs are 64-px images: callers resize slices / crops to 64x64 after normalising.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/bench/det2d")
    ap.add_argument("--per-class", type=int, default=400)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-install", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    xs, labels, groups, sources = images(a.per_class, a.seed)
    work = Path(a.work)
    cfg = config_from_dict(
        {
            "model": "cnn",
            "out": str(work / "train"),
            "preset": "cpu-fast",
            "epochs": a.epochs,
            "early_stopping_patience": 5,
            "seed": a.seed,
            "data": {"task": "binary", "size": 64, "hu_window": [0.0, 1.0]},
        }
    )
    res = train(cfg, ArraySource(xs, labels, groups))
    metrics = dict(res.metrics)
    metrics["version"] = f"cnn-synth2d-{time.strftime('%Y%m%d')}-seed{a.seed}"
    metrics["input_normalisation"] = (
        "CT: window [-1000, 400] HU -> [0, 1]; MR/X-ray: 0.5-99.5 percentile -> [0, 1]"
    )
    op = metrics["operating_point"]
    out = work / "bundle"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for name in ("model.safetensors", "train_log.csv"):
        shutil.copy2(res.out / name, out / name)
    resolved = json.loads((res.out / "config.json").read_text())
    resolved.update(out=".", resume=None)
    write_text_atomic(out / "config.json", json.dumps(resolved, indent=1))
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=1, default=str))
    calib = {"platt": op["calibration"]["platt"], "threshold": op["threshold"], "max_fpr": op["max_fpr"]}
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


if __name__ == "__main__":
    main()
