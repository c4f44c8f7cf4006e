"""Explanation heatmaps for the CNN detectors (MONAI's Grad-CAM and occlusion sensitivity).

Both return a float32 map over the model input (same spatial shape, values in [0, 1]) for one class: the
tampering class the detector chose. Grad-CAM needs one forward and one backward pass (the default);
occlusion needs one forward pass per occluded position (slower, model-agnostic).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from scipy import ndimage
from torch import nn

from medforensics.errors import ConfigError

METHODS = ("gradcam", "occlusion")


def last_conv_layer(model: nn.Module) -> str:
    """Name of the block holding the last convolution (Grad-CAM's target layer)."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d)]
    if not names:
        raise ConfigError(f"{type(model).__name__} has no convolution: Grad-CAM needs a CNN")
    last = names[-1]
    parent = last.rsplit(".", 1)[0] if "." in last else last
    modules = dict(model.named_modules())
    # a conv-BN-activation block: take its output (after the activation) when it is a small Sequential
    if parent != last and isinstance(modules.get(parent), nn.Sequential) and len(modules[parent]) <= 4:
        return parent
    return last


def _normalise(x: NDArray[Any]) -> NDArray[np.float32]:
    x = np.asarray(x, np.float32)
    lo, hi = float(x.min()), float(x.max())
    if not np.isfinite(lo) or hi - lo < 1e-12:
        return np.zeros_like(x, dtype=np.float32)
    return ((x - lo) / (hi - lo)).astype(np.float32)


def gradcam(
    model: nn.Module, x: NDArray[Any], class_idx: int, layer: str | None = None
) -> NDArray[np.float32]:
    """Grad-CAM of ``class_idx`` for one input ``x`` (C, *spatial); map of shape ``spatial`` in [0, 1]."""
    from monai.visualize import GradCAM

    model.eval()
    name = layer or last_conv_layer(model)
    target = dict(model.named_modules())[name]
    hooks = (target._forward_hooks, target._backward_hooks)
    before = [set(h) for h in hooks]
    try:
        cam = GradCAM(nn_module=model, target_layers=name)
        xt = torch.as_tensor(np.asarray(x, np.float32))[None].requires_grad_(False)
        with torch.enable_grad():
            out = cam(xt, class_idx=int(class_idx))
    finally:
        # MONAI never removes the hooks it registers: left on, every later forward pass of the model would
        # run (and keep the activations of) every Grad-CAM made so far, and the model could not be pickled
        for h, keep in zip(hooks, before, strict=True):
            for k in set(h) - keep:
                del h[k]
    return _normalise(out.detach().float().numpy()[0, 0])


def occlusion(
    model: nn.Module, x: NDArray[Any], class_idx: int, mask_size: int | None = None, n_batch: int = 32
) -> NDArray[np.float32]:
    """Occlusion sensitivity of ``class_idx``: how much its probability changes when a patch around each
    voxel is hidden (MONAI's Gaussian occluder), scaled to [0, 1]."""
    from monai.visualize import OcclusionSensitivity

    model.eval()
    spatial = np.asarray(x).shape[1:]
    size = mask_size or max(2, min(spatial) // 4)
    occ = OcclusionSensitivity(nn_module=model, mask_size=size, n_batch=n_batch, verbose=False, overlap=0.5)
    xt = torch.as_tensor(np.asarray(x, np.float32))[None]
    with torch.inference_mode():
        sens, _ = occ(xt)
    # sens: (1, classes, *spatial) = class probability with the patch around each voxel occluded
    with torch.inference_mode():
        base = torch.softmax(model(xt).float(), 1)[0, int(class_idx)].item()
    change = np.abs(base - sens[0, int(class_idx)].float().numpy())
    return _normalise(change)


def explain(
    model: nn.Module, x: NDArray[Any], class_idx: int, method: str = "gradcam"
) -> NDArray[np.float32]:
    """Heatmap by ``method`` (``gradcam`` or ``occlusion``)."""
    if method == "gradcam":
        return gradcam(model, x, class_idx)
    if method == "occlusion":
        return occlusion(model, x, class_idx)
    raise ConfigError(f"unknown explanation method {method!r}; known: {', '.join(METHODS)}")


def resample_to_box(
    heat: NDArray[Any],
    cube_center: tuple[float, float, float],
    cube_step: tuple[float, float, float],
    box: tuple[int, int, int, int, int, int],
) -> NDArray[np.float32]:
    """Resample a cube-grid heatmap onto the volume voxels of ``box`` (z0, y0, x0, z1, y1, x1), in [0, 1].

    Cube voxel ``c`` sits at volume index ``cube_center + (c - (n-1)/2) * cube_step`` per axis.
    """
    n = np.asarray(heat.shape, np.float64)
    axes = []
    for ax in range(3):
        idx = np.arange(box[ax], box[ax + 3], dtype=np.float64)
        axes.append((idx - cube_center[ax]) / cube_step[ax] + (n[ax] - 1) / 2.0)
    coords = np.stack(np.meshgrid(*axes, indexing="ij"))
    out = ndimage.map_coordinates(np.asarray(heat, np.float32), coords, order=1, mode="nearest")
    return np.clip(out, 0.0, 1.0).astype(np.float32)
