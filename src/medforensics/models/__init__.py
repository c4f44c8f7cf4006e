"""Detector zoo: ``create_model(name, **kw)``, ``list_models()``, ``model_info(name)``.

Importing this package registers every model (each module decorates its factories).
"""

from __future__ import annotations

from medforensics.models import (  # noqa: F401  (imported for registration)
    anomaly,
    classical,
    cnn,
    cnn3d,
    densenet,
    efficientnet,
    ensemble,
    inception,
    mobilenet,
    resnet,
    tamperseg,
    vgg,
    vit,
)
from medforensics.models.classical import FeatureModel
from medforensics.models.registry import ModelInfo, create_model, list_models, model_info, register_model

__all__ = ["FeatureModel", "ModelInfo", "create_model", "list_models", "model_info", "register_model"]
