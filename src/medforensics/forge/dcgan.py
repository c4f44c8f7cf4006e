"""DCGAN full-image synthesis (Radford et al. 2016), one model per modality (label SYN).

Generator: latent ``z`` -> transposed convolutions with BatchNorm + ReLU, ``tanh`` output in [-1, 1].
Discriminator: strided convolutions with LeakyReLU(0.2) (BatchNorm after the first), one logit.
Trained with Adam (lr 2e-4, beta1 0.5) on random crops of real slices (see :mod:`.dcgan_data`).
Bundled generator weights live in ``medforensics/assets/dcgan/<modality>.safetensors`` (float16) with a
JSON training record beside them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from medforensics._atomic import atomic_path, check_weights_out, write_bytes_atomic, write_text_atomic
from medforensics.errors import ConfigError, InputError
from medforensics.forge.base import AttackRecord, finish, register_attack
from medforensics.forge.dcgan_data import (
    MODALITIES,
    CropSampler,
    TrainingImages,
    ct_unwindow,
    load_training_images,
)
from medforensics.io.volume import Volume
from medforensics.logging import get_logger

#: Most PyTorch CPU threads a training run asks for (far more crashed OpenBLAS: a segfault).
MAX_THREADS = 256

log = get_logger("forge.dcgan")

#: Stabilisers (Salimans et al. 2016): one-sided label smoothing and decaying instance noise.
REAL_LABEL = 0.9
NOISE_START = 0.1
ASSET_DIR = Path(__file__).resolve().parents[1] / "assets" / "dcgan"


@dataclass(frozen=True)
class DCGANConfig:
    """Architecture of one DCGAN. ``size`` is a power of two >= 16."""

    size: int = 64
    nz: int = 64
    ngf: int = 32
    ndf: int = 32

    def __post_init__(self) -> None:
        if self.size < 16 or self.size & (self.size - 1):
            raise ConfigError(f"DCGAN size must be a power of two >= 16, got {self.size}")

    @property
    def n_up(self) -> int:
        """Number of 2x up-sampling stages after the 4x4 projection."""
        return int(math.log2(self.size)) - 2


#: Named variants (timm habit): the real ones and a tiny one for tests.
VARIANTS: dict[str, DCGANConfig] = {
    "dcgan-64": DCGANConfig(64, 64, 32, 32),
    "dcgan-128": DCGANConfig(128, 64, 24, 24),
    "test_dcgan": DCGANConfig(16, 8, 8, 8),
}


class Generator(nn.Module):
    """``(N, nz)`` latent -> ``(N, 1, size, size)`` image in [-1, 1]."""

    def __init__(self, cfg: DCGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch = cfg.ngf * 2 ** (cfg.n_up - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(cfg.nz, ch, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ch),
            nn.ReLU(True),
        ]
        for _ in range(cfg.n_up - 1):
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch // 2),
                nn.ReLU(True),
            ]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, 1, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])


class Discriminator(nn.Module):
    """``(N, 1, size, size)`` -> ``(N,)`` logit (real > 0)."""

    def __init__(self, cfg: DCGANConfig) -> None:
        super().__init__()
        ch = cfg.ndf
        layers: list[nn.Module] = [nn.Conv2d(1, ch, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for _ in range(cfg.n_up - 1):
            layers += [
                nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch * 2),
                nn.LeakyReLU(0.2, True),
            ]
            ch *= 2
        layers += [nn.Conv2d(ch, 1, 4, 1, 0, bias=False)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


def _init_weights(m: nn.Module) -> None:
    """DCGAN initialisation: conv N(0, 0.02), BatchNorm gamma N(1, 0.02), beta 0."""
    if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def build_dcgan(cfg: DCGANConfig, seed: int = 0) -> tuple[Generator, Discriminator]:
    """A freshly initialised (generator, discriminator) pair."""
    torch.manual_seed(seed)
    g, d = Generator(cfg), Discriminator(cfg)
    g.apply(_init_weights)
    d.apply(_init_weights)
    return g, d


def train_steps(
    g: Generator,
    d: Discriminator,
    sampler: CropSampler,
    steps: int,
    *,
    batch_size: int,
    gen: torch.Generator,
    opt: tuple[torch.optim.Optimizer, torch.optim.Optimizer] | None = None,
    deadline: float | None = None,
    real_label: float = 0.9,
    instance_noise: float = 0.0,
) -> tuple[list[float], list[float], tuple[torch.optim.Optimizer, torch.optim.Optimizer]]:
    """Run ``steps`` alternating D/G updates (non-saturating BCE, one-sided label smoothing, optional
    Gaussian instance noise on the discriminator's inputs). Returns D losses, G losses, optimisers."""
    if opt is None:
        opt = (
            torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999)),
            torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999)),
        )
    opt_d, opt_g = opt
    bce = nn.BCEWithLogitsLoss()
    ones, zeros = torch.ones(batch_size), torch.zeros(batch_size)
    smooth = torch.full((batch_size,), real_label)

    def noisy(x: torch.Tensor) -> torch.Tensor:
        return x + instance_noise * torch.randn(x.shape, generator=gen) if instance_noise > 0 else x

    d_losses: list[float] = []
    g_losses: list[float] = []
    g.train()
    d.train()
    for _ in range(steps):
        if deadline is not None and time.monotonic() > deadline:
            break
        real = sampler.sample(batch_size, gen)
        z = torch.randn(batch_size, g.cfg.nz, generator=gen)
        fake = g(z)
        opt_d.zero_grad(set_to_none=True)
        loss_d = bce(d(noisy(real)), smooth) + bce(d(noisy(fake.detach())), zeros)
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        loss_g = bce(d(noisy(fake)), ones)
        loss_g.backward()
        opt_g.step()
        d_losses.append(loss_d.item())
        g_losses.append(loss_g.item())
    return d_losses, g_losses, opt


def save_generator(g: Generator, path: str | Path, record: dict[str, Any]) -> None:
    """Generator weights as float16 safetensors (config in the metadata) + ``<path>.json`` record."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {
        k: v.detach().to(torch.float16).contiguous()
        for k, v in g.state_dict().items()
        if v.dtype.is_floating_point
    }
    tensors.update(
        {k: v.detach().contiguous() for k, v in g.state_dict().items() if not v.dtype.is_floating_point}
    )
    meta = {"config": json.dumps(asdict(g.cfg)), "modality": str(record.get("modality", ""))}
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    record = {**record, "weights_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    write_text_atomic(path.with_suffix(".json"), json.dumps(record, indent=1) + "\n")


def load_generator(weights: str | Path) -> Generator:
    """Load a generator saved by :func:`save_generator` (float32, eval mode)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(weights)
    if not path.is_file():
        raise InputError("DCGAN weights not found", path=path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        cfg = DCGANConfig(**json.loads(meta["config"]))
        state = {k: (v.float() if v.dtype.is_floating_point else v) for k, v in load_file(str(path)).items()}
        g = Generator(cfg)
        g.load_state_dict(state)
    except Exception as err:
        raise InputError(f"not a medforensics DCGAN weights file ({type(err).__name__})", path=path) from None
    return g.eval()


def bundled_weights(modality: str) -> Path:
    """Path of the bundled generator for ``modality``."""
    mod = modality.lower()
    if mod not in MODALITIES:
        raise ConfigError(f"unknown modality {modality!r}: choose one of {', '.join(MODALITIES)}")
    return ASSET_DIR / f"{mod}.safetensors"


@torch.no_grad()
def generate(g: Generator, n: int, seed: int = 0, z: torch.Tensor | None = None) -> NDArray[np.float32]:
    """``n`` images ``(n, size, size)`` in [-1, 1] from latents drawn with ``seed`` (or given ``z``)."""
    g.eval()
    if z is None:
        z = torch.randn(n, g.cfg.nz, generator=torch.Generator().manual_seed(seed))
    return g(z)[:, 0].numpy().astype(np.float32)


def slerp_latents(nz: int, n: int, seed: int, span: float = 0.35) -> torch.Tensor:
    """``n`` latents on a great-circle path between two random ones (smooth slice-to-slice change)."""
    gen = torch.Generator().manual_seed(seed)
    a, b = torch.randn(2, nz, generator=gen)
    omega = torch.arccos(torch.clamp(torch.dot(a / a.norm(), b / b.norm()), -1.0, 1.0))
    t = torch.linspace(0, span, n)[:, None]
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def train_dcgan(
    modality: str,
    out: str | Path,
    *,
    epochs: int = 30,
    size: int = 64,
    seed: int = 0,
    batch_size: int = 32,
    samples_per_epoch: int = 2048,
    max_seconds: float | None = None,
    threads: int = 1,
    variant: str | None = None,
    data: TrainingImages | None = None,
    snapshot_every: int = 0,
) -> dict[str, Any]:
    """Train one modality's DCGAN and write weights + record. Returns the record."""
    out = Path(out)
    check_weights_out(out)
    if not 1 <= threads <= MAX_THREADS:
        raise ConfigError(f"--threads must be 1 to {MAX_THREADS}, got {threads}")
    torch.set_num_threads(threads)
    cfg = VARIANTS[variant] if variant else VARIANTS.get(f"dcgan-{size}")
    if cfg is None:
        raise ConfigError(f"no DCGAN variant for size {size}: use 64 or 128")
    data = data or load_training_images(modality)
    if not data.images:
        raise InputError("no training images found", path=modality)
    g, d = build_dcgan(cfg, seed)
    gen = torch.Generator().manual_seed(seed)
    sampler = CropSampler(data, cfg.size)
    t0 = time.monotonic()
    deadline = t0 + max_seconds if max_seconds else None
    steps_per_epoch = max(1, samples_per_epoch // batch_size)
    history: list[dict[str, float]] = []
    opt = None
    for epoch in range(epochs):
        sigma = NOISE_START * max(0.0, 1.0 - epoch / max(1, epochs // 2))  # instance noise, off after half
        dl, gl, opt = train_steps(
            g,
            d,
            sampler,
            steps_per_epoch,
            batch_size=batch_size,
            gen=gen,
            opt=opt,
            deadline=deadline,
            real_label=REAL_LABEL,
            instance_noise=sigma,
        )
        if not dl:
            break
        if snapshot_every and (epoch + 1) % snapshot_every == 0:
            write_montage(generate(g, 16, seed=seed), Path(out).with_suffix(f".e{epoch + 1}.png"))
        history.append(
            {"epoch": epoch + 1, "steps": len(dl), "loss_d": float(np.mean(dl)), "loss_g": float(np.mean(gl))}
        )
        log.info(
            "dcgan %s epoch %d: D %.3f G %.3f",
            modality,
            epoch + 1,
            history[-1]["loss_d"],
            history[-1]["loss_g"],
        )
    seconds = time.monotonic() - t0
    steps = int(sum(h["steps"] for h in history))
    record = {
        "model": "dcgan",
        "variant": next(k for k, v in VARIANTS.items() if v == cfg),
        "modality": modality.lower(),
        "size": cfg.size,
        "config": asdict(cfg),
        "seed": seed,
        "data": {
            "sources": data.sources,
            "n_base_images": len(data.images),
            "augmentation": {
                "crop_scale": [sampler.min_scale, 1.0],
                "max_rotation_deg": data.max_rotation_deg,
                "flips": data.flips,
            },
            "images_seen": steps * batch_size,
        },
        "hyperparameters": {
            "optimizer": "Adam",
            "lr": 2e-4,
            "betas": [0.5, 0.999],
            "batch_size": batch_size,
            "epochs_requested": epochs,
            "samples_per_epoch": samples_per_epoch,
            "loss": "non-saturating BCE",
            "real_label": REAL_LABEL,
            "instance_noise": f"{NOISE_START} linearly to 0 over the first half",
            "threads": threads,
        },
        "steps": steps,
        "epochs_done": len(history),
        "seconds": round(seconds, 1),
        "stopped_early": bool(deadline and len(history) < epochs),
        "losses": history,
        "torch": torch.__version__,
    }
    save_generator(g, out, record)
    return record


def write_montage(images: NDArray[np.float32], path: str | Path, cols: int = 8, pad: int = 2) -> Path:
    """A grid of [-1, 1] images ``(n, h, w)`` as an 8-bit PNG (atomic)."""
    from medforensics.io.image2d import png_bytes

    n, h, w = images.shape
    cols = min(cols, n)
    rows = -(-n // cols)
    grid = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad), dtype=np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y : y + h, x : x + w] = np.round((np.clip(im, -1, 1) + 1) * 127.5).astype(np.uint8)
    return write_bytes_atomic(path, png_bytes(grid))


@functools.lru_cache(maxsize=8)
def _cached_generator(path: str) -> Generator:
    return load_generator(path)


def modality_key(modality: str) -> str:
    """DICOM modality -> DCGAN model key (``ct``, ``mr`` or ``xray``)."""
    mod = modality.upper()
    return "ct" if mod == "CT" else "mr" if mod == "MR" else "xray"


def to_units(
    images: NDArray[np.float32], key: str, lo_hi: tuple[float, float] | None = None
) -> NDArray[np.float32]:
    """[-1, 1] generator output -> image units: HU for CT, else linearly onto ``lo_hi`` (default 0-1000)."""
    if key == "ct":
        return ct_unwindow(images)
    lo, hi = lo_hi or (0.0, 1000.0)
    return ((np.clip(images, -1, 1) + 1) / 2 * (hi - lo) + lo).astype(np.float32)


@register_attack("dcgan-synth")
class DCGANSynth:
    """Fully synthetic content (label SYN): every slice replaced by a DCGAN sample.

    Slices follow latents on a short great-circle path (neighbouring slices change smoothly) and are
    resized to the volume's in-plane size; CT is in HU, other modalities are mapped onto the source's
    0.5-99.5 percentile range. ``weights`` overrides the bundled generator of the volume's modality.
    """

    kind = "synthesize"
    modalities: tuple[str, ...] = ("CT", "MR", "CR", "DX", "DR", "RG", "OT")
    name = "dcgan-synth"

    def __init__(self, weights: str | Path | None = None) -> None:
        self.weights = None if weights is None else Path(weights)

    def _weights(self, key: str) -> Path:
        return self.weights or bundled_weights(key)

    def sample_params(
        self, volume: Volume, rng: np.random.Generator, center: tuple[int, int, int] | None = None
    ) -> dict[str, Any]:
        key = modality_key(volume.modality)
        path = self._weights(key)
        return {
            "model": key,
            "weights": path.name,
            "latent_seed": int(rng.integers(2**31)),
            "path_span": 0.35,
        }

    def apply(
        self, volume: Volume, params: dict[str, Any], seed: int = 0
    ) -> tuple[Volume, np.ndarray, AttackRecord]:
        key = str(params["model"])
        g = _cached_generator(str(self._weights(key)))
        z = slerp_latents(
            g.cfg.nz, volume.shape[0], int(params["latent_seed"]), span=float(params["path_span"])
        )
        imgs = torch.from_numpy(generate(g, volume.shape[0], z=z))[:, None]
        imgs = torch.nn.functional.interpolate(
            imgs, size=volume.shape[1:], mode="bilinear", align_corners=False
        )
        lo_hi = None if key == "ct" else tuple(float(v) for v in np.percentile(volume.array, [0.5, 99.5]))
        out = to_units(imgs[:, 0].numpy(), key, lo_hi)  # type: ignore[arg-type]
        return finish(self, volume, out, params, seed, None)
