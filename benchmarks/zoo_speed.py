"""Parameter count and CPU inference speed of every registered model at its default input size.

CNNs: bf16 autocast + channels_last, batch 32, after warm-up, with 1 and 2 threads. Feature models:
feature extraction + prediction on 64 px crops (fitted on random data first). Writes a Markdown table.

    python benchmarks/zoo_speed.py --out benchmarks/zoo_speed.md [--threads 1 2] [--models cnn resnet18]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from medforensics._atomic import write_text_atomic
from medforensics.models import create_model, list_models, model_info
from medforensics.models.inference import autocast, memory_format


def _dims(kind: str) -> int:
    """Spatial dimensions of an input kind (the dense localiser takes 3-D patches, cubes here)."""
    return 3 if kind in ("3d", "dense3d") else 2


def cnn_speed(name: str, threads: int, batch: int, seconds: float) -> float:
    """Images/s of a CNN (bf16 + channels_last) over at least ``seconds`` after two warm-up batches."""
    torch.set_num_threads(threads)
    info = model_info(name)
    model = create_model(name).eval()
    s = info.input_size
    x = torch.rand(batch, info.in_channels, *((s,) * _dims(info.input_kind)))
    fmt = memory_format(x.ndim)
    model = model.to(memory_format=fmt)
    x = x.contiguous(memory_format=fmt)
    with torch.inference_mode(), autocast("bf16"):
        for _ in range(2):
            model(x)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds or n < 2:
            model(x)
            n += 1
    return n * batch / (time.perf_counter() - t0)


def feature_speed(name: str, batch: int) -> float:
    """Images/s of a feature model: features + prediction on 64 px crops (single process)."""
    rng = np.random.default_rng(0)
    s = model_info(name).input_size
    train = rng.random((64, 1, s, s)).astype(np.float32)
    model = create_model(name).fit(train, np.arange(64) % 2)
    x = rng.random((batch, 1, s, s)).astype(np.float32)
    t0 = time.perf_counter()
    model.predict_proba(x)
    return batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/zoo_speed.md"))
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--models", nargs="*", default=None)
    args = ap.parse_args()
    names = args.models or list_models()
    load = os.getloadavg()[0]
    head = " | ".join(f"img/s {t} thr" for t in args.threads)
    lines = [
        f"# Zoo speed (CPU inference, bf16 autocast + channels_last, batch {args.batch})",
        "",
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average at start {load:.2f}. Feature models: features + prediction, one process.",
        "",
        f"| model | kind | input | family | parameters | {head} |",
        "| --- | --- | --- | --- | --- | " + " | ".join("---" for _ in args.threads) + " |",
    ]
    for name in names:
        info = model_info(name)
        shape = f"{info.in_channels}x" + "x".join([str(info.input_size)] * _dims(info.input_kind))
        if info.family == "cnn":
            params = sum(p.numel() for p in create_model(name).parameters())
            speeds = [cnn_speed(name, t, args.batch, args.seconds) for t in args.threads]
        else:
            params = None
            speeds = [feature_speed(name, args.batch)] + [float("nan")] * (len(args.threads) - 1)
        cells = " | ".join("-" if np.isnan(v) else f"{v:,.0f}" for v in speeds)
        p = f"{params / 1e6:.2f} M" if params else "-"
        lines.append(f"| {name} | {info.input_kind} | {shape} | {info.family} | {p} | {cells} |")
        print(lines[-1], flush=True)
    lines.append(f"\nLoad average at end {os.getloadavg()[0]:.2f}.")
    write_text_atomic(args.out, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
