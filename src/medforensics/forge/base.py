"""Attack protocol and registry.

Every attack is a deterministic function ``(volume, params, seed) -> (tampered volume, mask, record)``
behind a name, with a random sampler of its parameters (TorchIO's habit: the random part only samples
parameters; the sampled parameters ARE the ground truth and are stored in the :class:`AttackRecord`).

Contract (relied on by the data-set builder, the detectors and ``scan``):

* :class:`AttackRecord` is JSON-serialisable through :meth:`AttackRecord.to_dict`.
* ``Attack.sample_params(volume, rng, center=None) -> dict`` draws the parameters (JSON-serialisable,
  including the centre); ``center`` (z, y, x) pins the location.
* ``Attack.apply(volume, params, seed=0) -> (Volume, mask, AttackRecord)`` is deterministic: the same
  inputs give bit-identical output. ``mask`` is a bool (z, y, x) array, True exactly where pixels changed.
  The input volume is never modified; the output has the same geometry, UIDs, datasets and metadata.
* :func:`register_attack` (class decorator), :func:`create_attack`, :func:`list_attacks`,
  :func:`run_attack` (sample then apply).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from medforensics.errors import ConfigError, InputError
from medforensics.io.volume import Volume

#: Attack kinds and the CT-GAN label each one produces.
KIND_LABELS: dict[str, str] = {"inject": "FM", "remove": "FB", "synthesize": "SYN"}

_REGISTRY: dict[str, type] = {}


def _jsonable(value: Any) -> Any:
    """Numpy scalars/arrays and tuples to plain JSON types (recursively)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


@dataclass
class AttackRecord:
    """Ground truth of one attack (JSON-serialisable through :meth:`to_dict`)."""

    method: str
    kind: str
    label: str
    params: dict[str, Any]
    seed: int
    center_voxel: tuple[int, int, int] | None = None
    center_mm: tuple[float, float, float] | None = None
    bbox_voxel: tuple[int, int, int, int, int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only."""
        return dict(_jsonable(asdict(self)))


@runtime_checkable
class Attack(Protocol):
    """What every registered attack provides."""

    name: str
    kind: str
    modalities: tuple[str, ...]

    def sample_params(
        self, volume: Volume, rng: np.random.Generator, center: tuple[int, int, int] | None = None
    ) -> dict[str, Any]: ...

    def apply(
        self, volume: Volume, params: dict[str, Any], seed: int = 0
    ) -> tuple[Volume, np.ndarray, AttackRecord]: ...


def register_attack(name: str) -> Callable[[type], type]:
    """Class decorator: register an attack class under ``name`` (sets ``cls.name``)."""

    def deco(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"attack {name!r} registered twice")
        if getattr(cls, "kind", None) not in KIND_LABELS:
            raise ValueError(f"attack {name!r}: kind must be one of {sorted(KIND_LABELS)}")
        cls.name = name  # type: ignore[attr-defined]
        _REGISTRY[name] = cls
        return cls

    return deco


def _ensure_builtin() -> None:
    """Import the modules that register the built-in attacks (lazily, to avoid import cycles)."""
    import importlib

    for mod in (
        "medforensics.forge.classical",
        "medforensics.forge.image_edits",
        "medforensics.forge.ctgan.attack",
        "medforensics.forge.dcgan",
    ):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as err:  # a module not written yet must not break the others
            if err.name != mod:
                raise


def list_attacks(kind: str | None = None) -> list[str]:
    """Registered attack names (sorted), optionally only those of one ``kind``."""
    _ensure_builtin()
    if kind is not None and kind not in KIND_LABELS:
        raise ConfigError(f"unknown attack kind {kind!r}; known: {', '.join(sorted(KIND_LABELS))}")
    return sorted(n for n, c in _REGISTRY.items() if kind is None or c.kind == kind)  # type: ignore[attr-defined]


def held_out_attacks() -> list[str]:
    """Attacks kept out of data sets unless named (class attribute ``held_out``): attacks no bundled detector
    is trained on, so that they stay unseen ones to evaluate against."""
    _ensure_builtin()
    return sorted(n for n, c in _REGISTRY.items() if getattr(c, "held_out", False))


def attack_class(name: str) -> type:
    """The class registered as ``name``; an unknown name raises :class:`ConfigError` listing known names."""
    _ensure_builtin()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown attack {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create_attack(name: str, **kwargs: Any) -> Attack:
    """Instantiate a registered attack; an unknown name raises :class:`ConfigError` listing known names."""
    attack: Attack = attack_class(name)(**kwargs)
    return attack


def run_attack(
    name: str,
    volume: Volume,
    *,
    seed: int,
    center: tuple[int, int, int] | None = None,
    **kwargs: Any,
) -> tuple[Volume, np.ndarray, AttackRecord]:
    """Sample parameters with ``seed`` (optionally at ``center``), then apply them."""
    attack = create_attack(name, **kwargs)
    params = attack.sample_params(volume, np.random.default_rng(seed), center=center)
    return attack.apply(volume, params, seed=seed)


# ---------------------------------------------------------------------- helpers shared by attacks
def pose_params(rng: np.random.Generator) -> dict[str, Any]:
    """The sampled orientation (``rot90``, ``flip``) and ``noise_scale`` shared by the cube attacks."""
    return {
        "rot90": int(rng.integers(4)),
        "flip": bool(rng.random() < 0.5),
        "noise_scale": round(float(rng.uniform(0.9, 1.1)), 3),
    }


class NoiseMatched:
    """Mixin of the attacks that top the edited region's noise up to the lung's around it
    (:func:`~medforensics.forge.cubes.top_up_noise`). ``noise_plane`` says where that noise is measured
    (``slice``: in-plane, the default; ``volume``: 3-D, as every attack did before session 41); ``noise_z``
    whether the added noise is ``independent`` between slices (the default) or ``matched`` to the scanner's
    inter-slice correlation (a stronger attacker). Both are recorded in the parameters (:meth:`noise_params`);
    parameters recorded without them replay the way they were forged (3-D, independent)."""

    def __init__(self, noise_plane: str = "slice", noise_z: str = "independent") -> None:
        from medforensics.forge.cubes import check_noise_plane, check_noise_z

        self.noise_plane = check_noise_plane(noise_plane)
        self.noise_z = check_noise_z(noise_z)

    def noise_params(self) -> dict[str, str]:
        """The touch-up's settings, as :meth:`sample_params` records them."""
        return {"noise_plane": self.noise_plane, "noise_z": self.noise_z}

    @staticmethod
    def touch_up(
        original: np.ndarray,
        new: np.ndarray,
        sl: tuple[slice, ...],
        w: np.ndarray,
        seed: int,
        params: dict[str, Any],
        core: np.ndarray | None = None,
    ) -> None:
        """Add noise to ``new[sl]`` (in place, weighted by ``w``) so the edited region (``w > 0.5``) matches
        the aerated lung the edit left alone (``w == 0``), as recorded ``params`` say (absent: the 3-D plane
        and independent slices they were forged with). ``core``: where the edit's present noise is measured
        (default ``w > 0.5``)."""
        from medforensics.forge.cubes import LEGACY_NOISE_PLANE, top_up_noise

        ring = (w == 0) & (original[sl] < -500)
        new[sl] += w * top_up_noise(
            original[sl],
            new[sl],
            ring,
            w > 0.5 if core is None else core,
            np.random.default_rng(seed),
            float(params.get("noise_scale", 1.0)),
            plane=str(params.get("noise_plane", LEGACY_NOISE_PLANE)),
            z=str(params.get("noise_z", "independent")),
        )


def check_modality(attack: Attack, volume: Volume) -> None:
    """Raise :class:`InputError` when ``volume``'s modality is not one the attack handles."""
    if attack.modalities and volume.modality not in attack.modalities:
        raise InputError(
            f"attack {attack.name!r} needs {'/'.join(attack.modalities)} input, "
            f"got modality {volume.modality}",
            path=volume.source,
        )


def make_record(
    attack: Attack,
    volume: Volume,
    params: dict[str, Any],
    seed: int,
    mask: np.ndarray,
    center: tuple[int, int, int] | None,
) -> AttackRecord:
    """Build the record: centre in voxels and mm, bbox of ``mask`` (exclusive ends)."""
    bbox: tuple[int, int, int, int, int, int] | None = None
    if mask.any():
        nz = np.nonzero(mask)
        lo = [int(a.min()) for a in nz]
        hi = [int(a.max()) + 1 for a in nz]
        bbox = (lo[0], lo[1], lo[2], hi[0], hi[1], hi[2])
    center_mm = None
    if center is not None:
        center = (int(center[0]), int(center[1]), int(center[2]))
        mm = volume.index_to_patient(np.asarray(center, dtype=np.float64))
        center_mm = (round(float(mm[0]), 3), round(float(mm[1]), 3), round(float(mm[2]), 3))
    return AttackRecord(
        method=attack.name,
        kind=attack.kind,
        label=KIND_LABELS[attack.kind],
        params=_jsonable(params),
        seed=int(seed),
        center_voxel=center,
        center_mm=center_mm,
        bbox_voxel=bbox,
    )


def rounded_like(source: np.ndarray, new_array: np.ndarray) -> np.ndarray:
    """``new_array`` as float32, rounded when every ``source`` pixel is an integer (CT from DICOM), so that
    writing it back as integers changes nothing else."""
    out = np.asarray(new_array, dtype=np.float32)
    return np.round(out).astype(np.float32) if np.array_equal(source, np.round(source)) else out


def finish(
    attack: Attack,
    volume: Volume,
    new_array: np.ndarray,
    params: dict[str, Any],
    seed: int,
    center: tuple[int, int, int] | None,
) -> tuple[Volume, np.ndarray, AttackRecord]:
    """Common tail of every ``apply``: round like the source, compute the exact mask, copy, record.

    Where the source pixels are all integers (CT from DICOM), the result is rounded too, so that writing it
    back as integers changes exactly the voxels in the mask.
    """
    src = volume.array
    out = rounded_like(src, new_array)
    mask = out != src
    result = volume.copy()
    result.array = out
    return result, mask, make_record(attack, volume, params, seed, mask, center)
