"""Model registry in timm's habit: ``@register_model``, :func:`create_model`, :func:`list_models`.

Every real model has a tiny ``test_<name>`` twin (few channels, milliseconds per batch) so the whole zoo
is exercised by the tests. Entries carry metadata: the input kind the model consumes, its default input
size, its family and its default channel and class counts.
"""

from __future__ import annotations

import difflib
import fnmatch
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from medforensics.errors import ConfigError

InputKind = Literal["2d", "2.5d", "3d", "features", "dense3d"]
Family = Literal["cnn", "classical", "anomaly"]
INPUT_KINDS: tuple[str, ...] = ("2d", "2.5d", "3d", "features", "dense3d")
FAMILIES: tuple[str, ...] = ("cnn", "classical", "anomaly")


@dataclass(frozen=True)
class ModelInfo:
    """Metadata of one registered model.

    ``input_kind``: what a sample looks like (``2d`` (C,H,W) crops, ``2.5d`` neighbouring slices as
    channels, ``3d`` (1,D,H,W) cubes at 1 mm, ``features`` images turned into forensic feature vectors
    inside the model, ``dense3d`` whole CT regions in, a class per voxel out: trained and benchmarked at
    scan level by :mod:`medforensics.train.dense` and :mod:`medforensics.evaluate.dense_benchmark`).
    ``input_size``: default edge length in pixels/voxels.
    """

    name: str
    factory: Callable[..., Any]
    input_kind: str
    input_size: int
    family: str
    in_channels: int = 1
    num_classes: int = 2
    description: str = ""

    @property
    def is_test(self) -> bool:
        """True for the tiny ``test_*`` variants."""
        return self.name.startswith("test_")

    @property
    def sample_kind(self) -> str:
        """The sample layout the data pipeline must produce (features models read 2D crops)."""
        return "2d" if self.input_kind == "features" else self.input_kind

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly metadata (no factory)."""
        return {
            "name": self.name,
            "input_kind": self.input_kind,
            "input_size": self.input_size,
            "family": self.family,
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "description": self.description,
        }


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    name: str,
    *,
    input_kind: InputKind = "2d",
    input_size: int = 224,
    family: Family = "cnn",
    in_channels: int = 1,
    num_classes: int = 2,
    description: str = "",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a factory ``f(in_channels=, num_classes=, **kw) -> model`` under ``name``."""
    if input_kind not in INPUT_KINDS:
        raise ValueError(f"unknown input kind {input_kind!r}")
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}")

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY and _REGISTRY[name].factory is not fn:
            raise ValueError(f"model {name!r} registered twice")
        doc = description or ((fn.__doc__ or "").strip().splitlines() or [""])[0]
        _REGISTRY[name] = ModelInfo(
            name=name,
            factory=fn,
            input_kind=input_kind,
            input_size=input_size,
            family=family,
            in_channels=in_channels,
            num_classes=num_classes,
            description=doc,
        )
        return fn

    return deco


#: The modules that register the zoo, those that import neither MONAI nor scikit-learn first.
MODULES = (
    "tamperseg",
    "cnn",
    "cnn3d",
    "ensemble",
    "inception",
    "mobilenet",
    "vgg",
    "vit",
    "classical",
    "anomaly",
    "densenet",
    "efficientnet",
    "resnet",
)


def _ensure_loaded(name: str | None = None) -> None:
    """Import the modules of :data:`MODULES` in order until ``name`` is registered (all of them when
    ``name`` is None or not found)."""
    import importlib

    for module in MODULES:
        if name is not None and name in _REGISTRY:
            return
        importlib.import_module(f"medforensics.models.{module}")


def list_models(pattern: str = "*", include_test: bool = False) -> list[str]:
    """Sorted registered names matching the glob ``pattern`` (``test_*`` twins only on request)."""
    _ensure_loaded()
    return sorted(
        n
        for n, info in _REGISTRY.items()
        if fnmatch.fnmatch(n, pattern) and (include_test or not info.is_test)
    )


def model_info(name: str) -> ModelInfo:
    """Metadata of ``name``; an unknown name is a :class:`ConfigError` listing close matches."""
    _ensure_loaded(name)
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=4, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `medforensics models list`"
        raise ConfigError(f"unknown model {name!r}{hint}") from None


def is_dense(name: str) -> bool:
    """True when ``name`` is a registered dense localiser (input kind ``dense3d``); False for any other or
    unknown name."""
    try:
        return model_info(name).input_kind == "dense3d"
    except ConfigError:
        return False


def _accepts(hint: Any, value: Any) -> bool:
    """Whether ``value`` (from JSON/TOML) fits a factory parameter annotated ``hint`` (bool, int, float, str,
    None and their unions are checked; anything else is left to the factory)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_accepts(h, value) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True


def check_kwargs(name: str, factory: Callable[..., Any], kw: dict[str, Any]) -> None:
    """ConfigError when a keyword argument has the wrong type for ``factory`` (``pretrained = "no"`` is not
    false; ``dropout = "high"`` is not a number), before anything is built."""
    try:
        hints = typing.get_type_hints(factory)
    except (NameError, TypeError):  # annotations that do not resolve: leave the checks to the factory
        return
    for key, value in kw.items():
        hint = hints.get(key)
        if hint is not None and not _accepts(hint, value):
            want = str(hint).replace("<class '", "").replace("'>", "").replace("NoneType", "None")
            raise ConfigError(f"model {name!r}: {key} must be {want}, got {value!r}")


def create_model(name: str, in_channels: int | None = None, num_classes: int | None = None, **kw: Any) -> Any:
    """Build a registered model. ``None`` takes the entry's default channels/classes.

    CNNs come back as ``torch.nn.Module`` returning logits ``(B, num_classes)``; classical and anomaly
    models as adapters with ``fit(x, y)`` / ``predict_proba(x)`` over image arrays.
    """
    info = model_info(name)
    c = info.in_channels if in_channels is None else int(in_channels)
    k = info.num_classes if num_classes is None else int(num_classes)
    if c < 1 or k < 2:
        raise ConfigError(f"model {name!r}: need in_channels >= 1 and num_classes >= 2 (got {c}, {k})")
    check_kwargs(name, info.factory, kw)
    try:
        return info.factory(in_channels=c, num_classes=k, **kw)
    except TypeError as err:
        raise ConfigError(f"model {name!r}: bad keyword argument ({err})") from None
