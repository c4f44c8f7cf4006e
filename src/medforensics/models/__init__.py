"""Detector zoo: ``create_model(name, **kw)``, ``list_models()``, ``model_info(name)``.

Each module registers its factories when imported. The registry imports them when asked
(:func:`~medforensics.models.registry.model_info` and ``create_model``: the modules in
:data:`~medforensics.models.registry.MODULES` order until the name is found; ``list_models``: all of them), so
a scan that loads the dense detector imports its own module, not MONAI's or scikit-learn's (1.5 s of a
command's start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from medforensics.models.registry import ModelInfo, create_model, list_models, model_info, register_model

if TYPE_CHECKING:
    from medforensics.models.classical import FeatureModel

__all__ = ["FeatureModel", "ModelInfo", "create_model", "list_models", "model_info", "register_model"]


def __getattr__(name: str) -> Any:
    """``FeatureModel`` on first use (it imports scikit-learn)."""
    if name == "FeatureModel":
        from medforensics.models.classical import FeatureModel

        return FeatureModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
