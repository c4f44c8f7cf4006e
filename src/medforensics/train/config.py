"""Training configuration: dataclasses, strict validation, presets, JSON/TOML loading.

Configs are data only (JSON or TOML; nothing that evaluates code). Unknown keys, wrong types and bad values
raise :class:`ConfigError` naming the key, before any data is read or any training starts.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medforensics._seed import check_seed
from medforensics.errors import ConfigError, check_one_of

TASKS = ("binary", "attack", "label")
MONITORS = ("val_loss", "val_auc")
OPTIMIZERS = ("adam", "adamw", "sgd")
PRECISIONS = ("fp32", "bf16")
#: Largest crop/cube edge and 2.5D slice count (beyond them a sample does not fit in memory).
MAX_SIZE = 1024
MAX_SLICES = 63
#: Model arguments the task and input kind fix; a config cannot set them.
FIXED_MODEL_ARGS = ("in_channels", "num_classes")


@dataclass
class DataConfig:
    """Where samples come from and how they are cut.

    ``path``: a forge data set (``labels.csv``, ``scans/``, ``splits.csv``). ``task``: ``binary`` (real vs
    fake), ``attack`` (authentic / injected / removed) or ``label`` (TB / TM / FB / FM). ``size``: crop edge
    in pixels/voxels (None: the model's default, capped by ``max_size``). ``slices``: channels of 2.5D
    stacks. ``spacing_mm``: in-plane pixel size of 2D/2.5D crops (None: native); 3D cubes use
    ``cube_spacing_mm``. ``exclude_types``: labels (for example ``FB``) dropped from train and val, kept
    in test (leave-one-attack-out).
    """

    path: str | None = None
    task: str = "binary"
    size: int | None = None
    max_size: int | None = None
    slices: int = 5
    spacing_mm: float | None = None
    cube_spacing_mm: float = 1.0
    hu_window: list[float] = field(default_factory=lambda: [-1000.0, 400.0])
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    exclude_types: list[str] = field(default_factory=list)

    def validate(self) -> None:
        check_one_of("data.task", self.task, TASKS)
        _positive("data.size", self.size, minimum=8, maximum=MAX_SIZE)
        _positive("data.max_size", self.max_size, minimum=8, maximum=MAX_SIZE)
        _positive("data.slices", self.slices, maximum=MAX_SLICES)
        if self.slices % 2 == 0:
            raise ConfigError(f"data.slices must be odd (centre slice plus neighbours), got {self.slices}")
        _positive("data.spacing_mm", self.spacing_mm, minimum=1e-3)
        _positive("data.cube_spacing_mm", self.cube_spacing_mm, minimum=1e-3)
        finite = all(math.isfinite(v) for v in self.hu_window)
        if len(self.hu_window) != 2 or not finite or self.hu_window[0] >= self.hu_window[1]:
            raise ConfigError(
                f"data.hu_window must be [low, high], finite numbers with low < high, got {self.hu_window}"
            )
        for key in ("val_fraction", "test_fraction"):
            v = getattr(self, key)
            if not 0.0 <= v < 1.0:
                raise ConfigError(f"data.{key} must be in [0, 1), got {v}")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ConfigError("data.val_fraction + data.test_fraction must be below 1")
        from medforensics.io.annotations import LABELS

        bad = [t for t in self.exclude_types if t not in LABELS]
        if bad:
            raise ConfigError(f"data.exclude_types: unknown label(s) {bad}; expected some of {list(LABELS)}")


@dataclass
class TrainConfig:
    """One training run. ``out``: the checkpoint folder. ``preset``: ``seed-study`` or ``cpu-fast``."""

    model: str
    out: str
    preset: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adam"
    dropout: float | None = None
    class_weighting: bool = True
    early_stopping_patience: int = 5
    monitor: str = "val_loss"
    seed: int = 0
    precision: str = "fp32"
    channels_last: bool = False
    num_threads: int | None = None
    num_workers: int = 0
    #: Where CNNs train and predict: ``cpu``, ``cuda`` or ``auto`` (feature models always use the CPU).
    device: str = "cpu"
    max_steps_per_epoch: int | None = None
    resume: str | None = None

    def validate(self, training: bool = True) -> None:
        """Value checks (types were checked when parsing); also resolves the model name. ``training``
        False (a finished folder read back): the output folder and the device are not checked."""
        from medforensics.models.registry import model_info

        model_info(self.model)
        if not self.out:
            raise ConfigError("out must name the checkpoint folder")
        fixed = [k for k in FIXED_MODEL_ARGS if k in self.model_kwargs]
        if fixed:
            raise ConfigError(f"model_kwargs cannot set {fixed}: the task and the input kind fix them")
        for key in ("epochs", "batch_size", "early_stopping_patience", "num_threads", "max_steps_per_epoch"):
            _positive(key, getattr(self, key))
        if self.num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0, got {self.num_workers}")
        check_seed(self.seed)
        if training:
            from medforensics._atomic import check_writable

            check_writable(self.out, folder=True)  # before any data is read
        _positive("lr", self.lr, minimum=1e-12)
        if not 0 <= self.weight_decay < math.inf:
            raise ConfigError(f"weight_decay must be a finite number >= 0, got {self.weight_decay}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        check_one_of("optimizer", self.optimizer, OPTIMIZERS)
        check_one_of("monitor", self.monitor, MONITORS)
        check_one_of("precision", self.precision, PRECISIONS)
        if training:
            from medforensics.models.inference import resolve_device

            resolve_device(self.device)
        if self.preset is not None:
            check_one_of("preset", self.preset, tuple(PRESETS))
        self.data.validate()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (the resolved config written beside the checkpoint)."""
        return dataclasses.asdict(self)


#: Named starting points; a config's own keys override them (``data`` is merged key by key).
PRESETS: dict[str, dict[str, Any]] = {
    # Settings of the seed study: Adam 1e-3, weight decay 1e-4, batch 64, dropout 0.5, weighted CE, 224 px.
    "seed-study": {
        "optimizer": "adam",
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "batch_size": 64,
        "dropout": 0.5,
        "class_weighting": True,
        "epochs": 50,
        "early_stopping_patience": 5,
        "data": {"size": 224},
    },
    # Quick CPU runs: small inputs, bf16 autocast + channels_last (AMX), few epochs.
    "cpu-fast": {
        "optimizer": "adam",
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "batch_size": 32,
        "epochs": 5,
        "early_stopping_patience": 2,
        "precision": "bf16",
        "channels_last": True,
        "data": {"max_size": 96},
    },
}


def _positive(key: str, value: float | None, minimum: float = 1, maximum: float = math.inf) -> None:
    # ``not >=`` rather than ``<``: NaN fails too (an lr of NaN reached the optimiser, session 24)
    if value is not None and not (minimum <= value < math.inf and value <= maximum):
        limit = f" and <= {maximum}" if maximum < math.inf else ""
        raise ConfigError(f"{key} must be a finite number >= {minimum}{limit}, got {value}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check(key: str, value: Any, tp: Any) -> Any:
    """Return ``value`` converted to ``tp`` or raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check(key, value, inner[0]) if len(inner) == 1 else value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a table/object, got {type(value).__name__}")
        return _from_dict(tp, value, prefix=f"{key}.")  # type: ignore[arg-type]
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, got {type(value).__name__}")
        return [_check(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{key} must be a table/object with string keys")
        return dict(value)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{key} must be {_type_name(tp)}, got bool")
    if not isinstance(value, tp):
        raise ConfigError(f"{key} must be {_type_name(tp)}, got {type(value).__name__} ({value!r})")
    return value


def _from_dict(cls: type[Any], raw: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config key {prefix}{unknown[0]}; known keys: {', '.join(fields)}")
    kwargs = {name: _check(f"{prefix}{name}", value, hints[name]) for name, value in raw.items()}
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"missing config key {prefix}{missing[0]}")
    return cls(**kwargs)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def config_from_dict(raw: dict[str, Any], training: bool = True) -> TrainConfig:
    """Validate ``raw`` (applying its preset first) into a :class:`TrainConfig` (``training`` as in
    :meth:`TrainConfig.validate`)."""
    if not isinstance(raw, dict):
        raise ConfigError("a training config must be a table/object at the top level")
    preset = raw.get("preset")
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"preset must be one of {', '.join(PRESETS)}; got {preset!r}")
        raw = _merge(PRESETS[preset], raw)
    cfg: TrainConfig = _from_dict(TrainConfig, raw)
    cfg.validate(training)
    return cfg


def load_config(path: str | Path, **overrides: Any) -> TrainConfig:
    """Read a ``.json`` or ``.toml`` config (top-level ``overrides`` win) and validate it."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read config ({err.strerror})", path=path) from None
    try:
        if path.suffix.lower() == ".json":
            raw = json.loads(text)
        elif path.suffix.lower() == ".toml":
            raw = tomllib.loads(text.decode("utf-8"))
        else:
            raise ConfigError("config must be .json or .toml", path=path)
    except (ValueError, UnicodeDecodeError) as err:
        raise ConfigError(f"not valid {path.suffix[1:].upper()}: {err}", path=path) from None
    except RecursionError:  # JSON nested past Python's recursion limit
        raise ConfigError(f"not valid {path.suffix[1:].upper()}: nested too deeply", path=path) from None
    if isinstance(raw, dict):
        raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return config_from_dict(raw)
    except ConfigError as err:
        raise ConfigError(err.reason, path=path) from None
