"""The learned CT-GAN attacks ``ctgan-inject`` and ``ctgan-remove`` (Mirsky et al. 2019).

Steps: cut a 32 mm cube at 1 mm around the target, blank a sphere in its centre, let the bundled 3-D U-Net
in-paint it (a nodule of the wanted diameter, or healthy lung), undo the normalisation, match the cube's
histogram to the untouched context, resample back onto the scan grid with a soft blend, and top the local
noise up to that of the surrounding lung (measured within slices; in 3-D before session 41).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medforensics.errors import ConfigError, InputError
from medforensics.forge import cubes as C
from medforensics.forge.base import (
    AttackRecord,
    NoiseMatched,
    check_modality,
    finish,
    pose_params,
    register_attack,
)
from medforensics.forge.ctgan.data import CUBE, hole_for, make_input
from medforensics.forge.ctgan.model import UNet3D
from medforensics.forge.lung import NODULE_MIN_MM, SOLID_HU, check_center, choose_center, measure_nodule_mm
from medforensics.io.volume import Volume
from medforensics.logging import get_logger

log = get_logger("forge.ctgan")

#: Diameters (mm) the injector draws by default: it makes solid-looking nodules up to ~14 mm; larger
#: requests (training range 8-22 mm) come out as faint ground-glass haze.
INJECT_DIAMETERS = (8.0, 14.0)


def bundled_weights(kind: str) -> Path:
    """Path of the bundled generator weights for ``kind`` ('inject' or 'remove')."""
    return Path(str(resources.files("medforensics") / "assets" / "forge" / f"ctgan-{kind}.safetensors"))


@lru_cache(maxsize=8)
def load_generator(path: str) -> tuple[UNet3D, str]:
    """Load (and cache) a generator from safetensors; returns the model and the file's short sha256."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    p = Path(path)
    if not p.is_file():
        raise ConfigError("CT-GAN weights not found (train them with `medforensics forge train-gan`)", path=p)
    with safe_open(str(p), framework="pt") as f:
        meta = f.metadata() or {}
    cfg = json.loads(meta.get("config", "{}"))
    gen = UNet3D(cfg.get("base", 12), cfg.get("depth", 3), cfg.get("in_channels", 3))
    gen.load_state_dict({k: v.float() for k, v in load_file(str(p)).items()})
    gen.eval()
    return gen, hashlib.sha256(p.read_bytes()).hexdigest()[:12]


class _CTGANAttack(NoiseMatched):
    """Shared body of the two learned attacks (``noise_plane``: see
    :class:`~medforensics.forge.base.NoiseMatched`)."""

    kind = ""
    name = ""
    modalities: tuple[str, ...] = ("CT",)

    def __init__(
        self, weights: str | Path | None = None, noise_plane: str = "slice", noise_z: str = "independent"
    ) -> None:
        super().__init__(noise_plane, noise_z)
        self.weights = Path(weights) if weights else bundled_weights(self.kind)

    def _diameter(
        self, volume: Volume, center: tuple[int, int, int], rng: np.random.Generator
    ) -> tuple[float, str | None]:
        """The nodule's diameter (mm) and where it came from (None: drawn)."""
        raise NotImplementedError

    def sample_params(
        self, volume: Volume, rng: np.random.Generator, center: tuple[int, int, int] | None = None
    ) -> dict[str, Any]:
        """Centre (auto: in the lung / an annotated nodule), diameter, hole, orientation, noise."""
        check_modality(self, volume)
        if center is None:
            center = choose_center(volume, rng, self.kind, radius_mm=13.0 if self.kind == "inject" else 8.0)
        center = check_center(volume, center, 6.0)
        d, origin = self._diameter(volume, center, rng)
        return {
            "center": list(center),
            "diameter_mm": round(d, 2),
            **({"diameter_from": origin} if origin else {}),
            "hole_mm": round(hole_for(d) if self.kind == "inject" else removal_hole(d), 2),
            **pose_params(rng),
            **self.noise_params(),
        }

    def apply(
        self, volume: Volume, params: dict[str, Any], seed: int = 0
    ) -> tuple[Volume, np.ndarray, AttackRecord]:
        """In-paint the centre of the cube at ``params['center']`` (deterministic)."""
        check_modality(self, volume)
        try:
            hole_mm = float(params["hole_mm"])
            center = check_center(volume, tuple(params["center"]), min(hole_mm / 2 + 1, 14.0))
            d = float(params["diameter_mm"]) if self.kind == "inject" else 0.0
            k, flip = int(params.get("rot90", 0)) % 4, bool(params.get("flip", False))
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"bad parameters for {self.name}: {err}") from err
        gen, sha = load_generator(str(self.weights))
        # a hole wider than MAX_HOLE_VOXELS leaves the generator no context: work on a coarser cube instead
        # (same 32 voxels, larger voxels), so big nodules are removed whole instead of leaving their rim
        iso = max(1.0, hole_mm / MAX_HOLE_VOXELS)
        hole = hole_mm / iso  # in cube voxels from here on
        cube, grid = C.extract_cube(volume.array, volume.spacing, center, CUBE * iso, iso)
        view = np.rot90(cube, k, axes=(1, 2))
        view = view[:, :, ::-1] if flip else view
        inp = torch.from_numpy(np.ascontiguousarray(make_input(view, d, hole))[None])
        with torch.no_grad():
            out = gen(inp)[0, 0].numpy()
        out = out[:, :, ::-1] if flip else out
        gen_hu = C.from_unit(np.ascontiguousarray(np.rot90(out, -k, axes=(1, 2))))
        dist = C.distance_cube(CUBE)
        context = (dist > hole / 2 + 1) & (cube > C.HU_MIN) & (cube < C.HU_MAX)
        gen_hu = C.match_context(gen_hu, cube, context)
        weight = C.blend_weight(CUBE, hole / 2, ramp=2.0)
        if self.kind == "remove":  # the in-painted lung lacks fine vessels: level it with the lung around
            lung_ctx = context & (cube < -200)
            if lung_ctx.sum() >= 32:
                delta = float(np.mean(cube[lung_ctx]) - np.mean(gen_hu[dist <= hole / 2]))
                gen_hu = gen_hu + np.clip(delta, -80.0, 80.0) * weight
        new, sl, w = C.paste_region(volume.array, grid, gen_hu, weight, hole / 2)
        self.touch_up(volume.array, new, sl, w, seed, params)
        full = {
            **params,
            "model": f"{self.weights.name}@{sha}",
            "cube_mirrored_voxels_zyx": list(grid.mirrored),
            "cube_voxel_mm": iso,
        }
        return finish(self, volume, new, full, seed, center)


@register_attack("ctgan-inject")
class CTGANInject(_CTGANAttack):
    """Inject a nodule with the learned CT-GAN in-painter (bundled weights)."""

    kind = "inject"

    def _diameter(
        self, volume: Volume, center: tuple[int, int, int], rng: np.random.Generator
    ) -> tuple[float, str | None]:
        return float(rng.uniform(*INJECT_DIAMETERS)), None


@register_attack("ctgan-remove")
class CTGANRemove(_CTGANAttack):
    """Remove the nodule at the centre with the learned CT-GAN in-painter (healthy lung)."""

    kind = "remove"

    def _diameter(
        self, volume: Volume, center: tuple[int, int, int], rng: np.random.Generator
    ) -> tuple[float, str | None]:
        return nodule_diameter(volume, center, self.name)


#: Largest nodule (mm) the removers take on; the hole is the nodule plus a 6 mm rim.
MAX_REMOVE_MM = 30.0
#: Diameter (mm) removed when nothing solid is at the centre to measure (a typical LIDC nodule: 3-30 mm).
FALLBACK_REMOVE_MM = 10.0
#: Widest hole (cube voxels) the generator in-paints at 1 mm; wider holes use larger cube voxels.
MAX_HOLE_VOXELS = 22.0


def removal_hole(diameter_mm: float) -> float:
    """Hole (mm) for removing a nodule of ``diameter_mm``: the whole nodule plus a 6 mm rim, 12-36 mm."""
    return float(np.clip(diameter_mm + 6.0, 12.0, MAX_REMOVE_MM + 6.0))


def nodule_diameter(
    volume: Volume, center: tuple[int, int, int], method: str, max_mm: float = MAX_REMOVE_MM
) -> tuple[float, str]:
    """Diameter (mm, at most ``max_mm``) of the nodule at ``center`` that ``method`` removes or copies, and
    its origin: ``annotation`` (an annotated nodule of ``volume.metadata['nodules']`` within 5 mm: its
    diameter), ``image`` (measured, :func:`~medforensics.forge.lung.measure_nodule_mm`) or ``fallback``
    (nothing solid there: :data:`FALLBACK_REMOVE_MM`, with a warning)."""
    for n in volume.metadata.get("nodules", []) or []:
        c = n.get("center_voxel") if isinstance(n, dict) else getattr(n, "center_voxel", None)
        dm = n.get("diameter_mm") if isinstance(n, dict) else getattr(n, "diameter_mm", None)
        if (
            c is not None
            and dm
            and np.linalg.norm((np.asarray(c) - center) * np.asarray(volume.spacing)) <= 5
        ):
            return float(min(dm, max_mm)), "annotation"
    if not volume.contains_index(center):
        raise InputError(f"centre {center} is outside the volume", path=volume.source)
    d = measure_nodule_mm(volume, center, max_mm)
    if d is not None:
        return d, "image"
    log.warning(
        "%s on series %s: nothing solid (over %.0f HU, %.0f mm or more) at the centre to measure; taking "
        "a %.0f mm nodule there (a guess: --annotations gives the readers' size)",
        method,
        volume.series_uid,
        SOLID_HU,
        NODULE_MIN_MM,
        FALLBACK_REMOVE_MM,
    )
    return FALLBACK_REMOVE_MM, "fallback"
