"""A device call's first check: two training steps of the dense detector, as ``train_dense`` takes them
(``train_step``: the run's model, channels, precision and loss, channels-last, autocast), on random patches
on the device.

Session 43's first call spent 286 s forging before the first training step failed (CUDA autocast refuses
``F.binary_cross_entropy``); this fails in seconds instead. ``run_dense.sh`` runs it before forging.

    python3 benchmarks/device/smoke.py [--device cuda] [DENSE_ARGS ...]   # --zcorr, --linear-head, ...
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict

import torch

from medforensics.models.inference import resolve_device
from medforensics.train.dense import DenseConfig, in_channels, model_from_config, train_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--zcorr", action="store_true")
    ap.add_argument("--linear-head", action="store_true")
    ap.add_argument("--mirror-pairs", action="store_true")
    ap.add_argument("--mirror-consistency", type=float, default=0.0)
    args, _ = ap.parse_known_args()  # the rest of make_dense_detector's options do not matter here
    cfg = DenseConfig(
        data="",
        out="",
        device=args.device,
        zcorr_channel=args.zcorr,
        linear_head=args.linear_head,
        mirror_pairs=args.mirror_pairs,
        mirror_consistency=args.mirror_consistency,
    )
    dev = resolve_device(cfg.device)
    torch.manual_seed(0)
    model = model_from_config(asdict(cfg)).to(dev).to(memory_format=torch.channels_last_3d)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(args.batch_size, in_channels(asdict(cfg)), *cfg.patch)
    y = torch.zeros(args.batch_size, *cfg.patch, dtype=torch.long)
    y[0, 4:8, 30:40, 30:40] = 1
    t0 = time.perf_counter()
    for step in (1, 2):
        loss = train_step(model, opt, x, y, cfg, step, dev)
        if not torch.isfinite(loss.detach()):
            raise SystemExit(f"smoke: step {step} gave a loss of {float(loss.detach())}")
    print(
        f"smoke: 2 training steps on {dev} ({cfg.precision}), loss {float(loss.detach()):.4f}, "
        f"{time.perf_counter() - t0:.1f} s"
    )


if __name__ == "__main__":
    main()
