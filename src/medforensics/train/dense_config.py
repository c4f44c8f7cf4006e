"""Configuration of the dense localiser's training (:class:`DenseConfig`), read strictly from JSON/TOML."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medforensics.errors import ConfigError
from medforensics.forge.lossy import DEFAULT_LOSSY_CODECS

#: Voxel size (z, y, x) mm the model works at (see :func:`medforensics.train.dense_data.to_model_grid`).
TARGET_MM: tuple[float, float, float] = (2.5, 1.4, 1.4)
#: ``scan`` assesses a CT whose slices lie at most this many grid slices apart (``target_mm[0]``; a model's
#: config may set ``max_slice_mm`` instead): 3 mm for the 2.5 mm grid.
MAX_SLICE_FACTOR = 1.2


def slice_limit(max_slice_mm: float | None, target_z_mm: float = TARGET_MM[0]) -> float:
    """Slice spacing (mm) up to which ``scan`` assesses a CT: a model's ``max_slice_mm`` when it sets one,
    else :data:`MAX_SLICE_FACTOR` x its grid's slice spacing."""
    return float(max_slice_mm or MAX_SLICE_FACTOR * target_z_mm)


#: HU window mapped to [0, 1].
HU_WINDOW: tuple[float, float] = (-1000.0, 400.0)


@dataclass
class DenseConfig:
    """Resolved training configuration (written as ``config.json``)."""

    data: str
    out: str
    model: str = "tamperseg3d"
    extra_authentic: list[str] = field(default_factory=list)
    val_authentic: list[str] = field(default_factory=list)
    test_authentic: list[str] = field(default_factory=list)
    target_mm: tuple[float, float, float] = TARGET_MM
    hu_window: tuple[float, float] = HU_WINDOW
    #: Second input channel: full-resolution noise energy (:mod:`medforensics.features.noise_map`).
    noise_channel: bool = True
    #: Another channel: inter-slice correlation of the noise residual (:func:`.noise_map.raw_corr`).
    zcorr_channel: bool = False
    #: No ReLU before the network's 1x1 head (:func:`~medforensics.models.tamperseg.tamperseg3d`).
    linear_head: bool = False
    patch: tuple[int, int, int] = (16, 80, 80)
    batch_size: int = 6
    steps: int = 600
    eval_every: int = 100
    lr: float = 2e-3
    weight_decay: float = 1e-4
    class_weights: tuple[float, float, float] = (1.0, 8.0, 8.0)
    dice_weight: float = 0.5
    zoom_range: tuple[float, float] = (0.8, 1.25)
    peak_weight: float = 0.5
    #: How often a patch of an authentic scan with mined hard negatives (the current model's strongest
    #: false alarms, mined every ``hard_every`` steps on the whole authentic series and up to ``hard_items``
    #: other authentic training scans, :func:`medforensics.train.dense.mine_hard_negatives`) is centred on
    #: one of them; 0 turns mining off.
    hard_negative: float = 0.4
    hard_every: int = 100
    hard_items: int = 24
    exclude_methods: list[str] = field(default_factory=list)
    #: Noisy copies of every training scan (the seed study's augmentation: i.i.d. Gaussian noise of 14-42 HU
    #: on the full-resolution scan, before the model grid and its noise channels are computed), same
    #: classes. 0: none. Measured in session 16 (one copy, fine-tuning bundle14): CT-GAN removal
    #: detection fell, since its trace is such noise (``benchmarks/leaderboard/README.md``).
    noise_copies: int = 0
    #: A specialist for series with noise added to the whole series after reconstruction (the seed study's
    #: noise augmentation, or an attacker laundering an edit): every scan the data set stores without such
    #: noise, in every split and the extra authentic series, is replaced by ``max(1, noise_copies)`` noisy
    #: copies; scans stored noise-augmented stay as they are. ``scan`` uses such a model, bundled as a
    #: detector's ``uncorrelated/`` folder, for series whose slice noise is uncorrelated.
    noise_only: bool = False
    #: Self-blended copies of every authentic training scan (:mod:`medforensics.forge.selfblend`: one of
    #: its lung regions, every other time its real nodule, smoothed, levelled and re-noised, and trained as a
    #: removal): the generic trace of in-painting, so that unseen attacks are detected. 0: none. Measured in
    #: session 22 (CT-GAN removal held out, 1500 CPU steps from random weights, 2 copies): the unseen removal
    #: 0.15 -> 0.44 AUC, the seen attacks 0.05-0.27 lower (``benchmarks/leaderboard/README.md``).
    self_blend: int = 0
    #: How self-blended regions are re-noised (:data:`medforensics.forge.selfblend.NOISE_KINDS`): ``mixed``
    #: or ``fresh`` (i.i.d. between slices; unseen CT-GAN removal 0.56 against mixed's 0.44, session 22).
    self_blend_noise: str = "mixed"
    #: Thick copies: every train and validation scan also as a thicker reconstruction, its slices averaged
    #: in blocks of ``round(thick_mm / slice spacing)`` (:func:`~medforensics.forge.augment.thicken_slices`;
    #: masks alike), when that block holds at least 2 slices. 0: none. Such series (5 mm chest CT) are what
    #: ``scan`` refuses above ``max_slice_mm``; a model trained with them may set that limit higher.
    thick_mm: float = 0.0
    #: Coarse-pixel copies: every train scan also resampled to each of these pixel sizes (mm) that is
    #: coarser than its own, band-limited as a scanner's coarser grid samples it
    #: (:func:`~medforensics.forge.augment.resample_pixels`; masks alike). Empty: none. The bundled model,
    #: trained on 0.68-0.82 mm pixels, finds a sixth fewer attacks at 0.9-1.0 mm (session 34); a 300-step
    #: CPU fine-tune with [0.9, 1.1] did no better there than one without (session 35, leaderboard README).
    #: Copies are train-only: they do not widen ``data_spacing`` (scan's caveats).
    pixel_copies_mm: list[float] = field(default_factory=list)
    #: Lower-dose copies: every train scan also as at each of these fractions of its dose
    #: (:func:`~medforensics.forge.augment.lower_dose`: scanner-like noise with the series' inter-slice
    #: correlation, added after the edit, over all of it). Empty: none. Session 51: at half dose the bundled
    #: model flags 10 of 48 authentic whole series (as stored 1). Session 52's CPU fine-tune with [0.5, 0.25]
    #: still flags 10 (LIDC-0003's) but finds more at lower dose (benchmarks/leaderboard/mixed_dose_cpu/).
    dose_copies: list[float] = field(default_factory=list)
    #: The CT-GAN tool's round trip: every train scan also zoomed through voxels of each of these sizes (mm)
    #: and back (:func:`~medforensics.forge.round_trip.scan_round_trip`, cubic spline, rounded to whole HU),
    #: after the edit, over all of it, its labels and mask kept. Empty: none. The released tool resamples
    #: every scan it edits to 1 mm voxels and back; that costs bundle14 a third of what it finds (33 of 80
    #: against 47 over two draws, ``benchmarks/scan_accuracy/round_trip/``). Session 53's CPU fine-tune with
    #: [1.0] did not help: 45 of 80 against 47 without (``benchmarks/leaderboard/round_trip_cpu/``).
    round_trip_copies_mm: list[float] = field(default_factory=list)
    #: Mirror-tied kernels: every convolution kernel averaged with its in-plane mirrors at the start and
    #: after each step (:func:`~medforensics.models.tamperseg.tie_mirrors`), so that a series mirrored left
    #: to right or front to back gets the mirrored map. bundle14 is not mirror-symmetric: it flags its
    #: validation patient's authentic CT mirrored left to right (session 37, ``benchmarks/orientation.py``).
    #: Tying bundle14's kernels and fine-tuning 300 CPU steps gave validation / test AUC 0.79 / 0.97 against
    #: its 0.94 / 1.00 (scanner-noise ds6c crops; not bundled: ``benchmarks/leaderboard/mirror_tied/``).
    mirror_tied: bool = False
    #: Mirror pairs: every batch is seen twice, as drawn and in one in-plane mirror view (left-right,
    #: front-back, both; cycled by step), each pass's map mapped back and its loss averaged with the other's.
    #: The control for ``mirror_consistency`` at the same cost and data. A 400-step CPU fine-tune of bundle14
    #: with it found 109 of 120 whole-series attacks, 105 without, bundle14 99 (session 38, not bundled:
    #: ``benchmarks/leaderboard/mirror_pairs/``).
    mirror_pairs: bool = False
    #: Weight of the mirror-consistency term (implies ``mirror_pairs``): the mean squared difference of the
    #: two passes' voxel tamper probabilities, so the network learns to give a mirrored input the mirrored
    #: map without tied kernels (what averaging four mirror views at test time does, at one view's cost).
    #: 0: none. Weight 100 over 400 CPU steps (session 38) cut the validation patient's crop mirror gap
    #: from 0.17 (the control) to 0.12, but its whole CT mirrored left to right stayed flagged.
    mirror_consistency: float = 0.0
    #: ``scan`` assesses series whose slices lie at most this far apart; None: MAX_SLICE_FACTOR x the grid's.
    max_slice_mm: float | None = None
    #: ``scan`` assesses CT whose in-plane pixels are at most this large (mm); None: no limit.
    max_pixel_mm: float | None = None
    #: Patient (manifest ``patient``) -> split, overriding the data set's split file for those patients.
    splits: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    threads: int | None = None
    precision: str = "bf16"
    #: Where the network trains: ``cpu``, ``cuda`` or ``auto`` (CUDA when there is one); data stay on the CPU.
    device: str = "cpu"
    #: Processes drawing training batches (0: the training process, one random stream for the whole run;
    #: else batch ``k`` comes from the stream seeded ``(seed, k)``, the same for any number of workers).
    workers: int = 0
    #: Processes reading and preparing the data set's scans before training (0: the training process). The
    #: items are the same, in the same order, for any number; it changes only the loading time.
    load_workers: int = 0
    #: Start from these weights (a model folder or its ``model.safetensors``, same model and channels):
    #: fine-tuning, for example finishing on CPU a run a GPU's time limit stopped. None: random weights.
    init_from: str | None = None
    #: Continue the run stopped in this folder from its last evaluation (``train --resume``,
    #: :mod:`medforensics.train.dense_resume`); the rest of the config must be the stopped run's.
    resume: str | None = None
    #: After training, fit the operating points again on the validation series scored as ``scan`` scores
    #: them, one per noise kind (:func:`medforensics.train.dense_calibration.recalibrate`); the training
    #: calibration is kept as ``calibration_training.json``.
    scan_calibration: bool = True
    #: With ``scan_calibration``: then also the operating point for series stored lossy, on the same
    #: series coded with these codecs (:func:`medforensics.train.dense_calibration.add_lossy_point`; names
    #: of :data:`medforensics.forge.lossy.LOSSY_CODECS`; default the three pydicom writes itself, the JPEG
    #: ones need DCMTK; empty: none). Not for a noise specialist.
    lossy_codecs: list[str] = field(default_factory=lambda: list(DEFAULT_LOSSY_CODECS))
    #: With ``scan_calibration``: every threshold also kept above the whole validation and training series
    #: under each of the seed study's rotations, brightness factors and flips
    #: (:func:`medforensics.train.dense_calibration.augmented_copies`; session 55: a left-right mirrored
    #: copy of the validation patient scored over bundle14's threshold).
    calibrate_augmented: bool = False


#: Config keys that say how a run executes or is calibrated afterwards, not what it learns (a resumed or
#: reused run may change them).
RUN_KEYS = ("device", "workers", "load_workers", "threads", "lossy_codecs", "calibrate_augmented")


def config_values(cfg: DenseConfig, without: Iterable[str] = ()) -> dict[str, Any]:
    """``cfg`` as its ``config.json`` holds it (tuples as lists, as read back), less the keys ``without``:
    what two configs are compared by."""
    free = set(without)
    return {k: v for k, v in json.loads(json.dumps(asdict(cfg))).items() if k not in free}


def with_defaults(saved: dict[str, Any], without: Iterable[str] = ()) -> dict[str, Any]:
    """A config as a run saved it, less the keys ``without``, with every key it lacks (an option added since)
    at its default, which is what that run used: what a saved run is compared with a config by."""
    free = set(without)
    default = config_values(DenseConfig(data="", out=""), free)
    return default | {k: v for k, v in saved.items() if k not in free}


def is_dense_config(path: str | Path) -> bool:
    """True when a config file names a dense model (``*tamperseg3d``); False when unreadable (the strict
    classifier loader then reports the problem)."""
    try:
        raw = _read_raw(Path(path))
    except ConfigError:
        return False
    from medforensics.models.registry import is_dense

    return isinstance(raw, dict) and is_dense(str(raw.get("model", "")))


def _read_raw(path: Path) -> Any:
    import tomllib

    try:
        text = path.read_bytes()
        if path.suffix.lower() == ".toml":
            return tomllib.loads(text.decode("utf-8"))
        return json.loads(text)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise ConfigError(f"unreadable config ({err})", path=path) from None
    except RecursionError:  # JSON nested past Python's recursion limit
        raise ConfigError("unreadable config (nested too deeply)", path=path) from None


#: Keys holding a path or None.
OPTIONAL_PATHS = ("init_from", "resume")
#: Keys holding a number or None.
OPTIONAL_NUMBERS = ("max_slice_mm", "max_pixel_mm")


def load_dense_config(path: str | Path, out: str | None = None, resume: str | None = None) -> DenseConfig:
    """A :class:`DenseConfig` from ``.json``/``.toml``; unknown keys and wrong types are one-line errors."""

    path = Path(path)
    raw = _read_raw(path)
    if out is not None:
        raw["out"] = out
    if resume is not None:
        raw["resume"] = resume
    return dense_config_from(raw, path)


def dense_config_from(raw: dict[str, Any], path: str | Path | None = None) -> DenseConfig:
    """A :class:`DenseConfig` from a dict (a config file's content, or the benchmark's settings): unknown
    keys and wrong types are one-line errors (naming ``path`` when given)."""
    import dataclasses

    raw = dict(raw)
    known = {f.name: f for f in dataclasses.fields(DenseConfig)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown}; known: {sorted(known)}", path=path)
    for key in ("data", "out"):
        if not isinstance(raw.get(key), str):
            raise ConfigError(f"{key!r} must be a path string", path=path)
    defaults = DenseConfig(data="", out="")
    for key, value in raw.items():
        want = getattr(defaults, key)
        ok = (
            value is None or isinstance(value, str)
            if key in OPTIONAL_PATHS
            else value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
            if key in OPTIONAL_NUMBERS
            else isinstance(value, bool)
            if isinstance(want, bool)
            else isinstance(value, str)
            if isinstance(want, str)
            else isinstance(value, int) and not isinstance(value, bool)
            if isinstance(want, int)  # counts (steps, noise_copies, ...): 1.5 would crash later in range()
            else isinstance(value, (int, float)) and not isinstance(value, bool)
            if isinstance(want, float)
            else isinstance(value, (list, tuple))
            if isinstance(want, (list, tuple))
            else isinstance(value, dict)
            if isinstance(want, dict)
            else value is None or isinstance(value, int)
        )
        if not ok:
            raise ConfigError(f"{key!r} has the wrong type ({type(value).__name__})", path=path)
    for key in ("target_mm", "hu_window", "patch", "class_weights", "zoom_range"):
        if key in raw:
            raw[key] = tuple(raw[key])
    return DenseConfig(**raw)
