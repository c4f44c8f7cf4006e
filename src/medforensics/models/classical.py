"""Classical detectors (SVM, random forest, decision tree) on the forensic feature vectors.

:class:`FeatureModel` is the adapter that lets train/evaluate treat these like the CNNs: ``fit(images,
labels)`` and ``predict_proba(images) -> (N, K)`` on the same image arrays, features computed inside.
Persistence is pickle-free: ``state_dict()`` holds the training feature matrix and labels (plain arrays for
safetensors) and ``load_state_dict`` refits, which is exact because every estimator has a fixed seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from medforensics.errors import ConfigError, InputError
from medforensics.features import extract_features, feature_names
from medforensics.models.registry import register_model


class FeatureModel:
    """Base adapter: images -> forensic features -> estimator. Subclasses implement the feature-level part."""

    family = "classical"

    def __init__(self, num_classes: int = 2) -> None:
        self.num_classes = num_classes
        self.fitted = False

    # image level ---------------------------------------------------------------------------------
    def fit(self, x: NDArray[np.floating], y: NDArray[np.integer]) -> FeatureModel:
        """Fit on image arrays (any sample layout) and integer labels."""
        return self.fit_features(extract_features(x), np.asarray(y, dtype=np.int64))

    def predict_proba(self, x: NDArray[np.floating]) -> NDArray[np.float64]:
        """``(N, num_classes)`` class probabilities for image arrays."""
        return self.predict_proba_features(extract_features(x))

    # feature level (subclasses) ------------------------------------------------------------------
    def fit_features(self, f: NDArray[np.floating], y: NDArray[np.integer]) -> FeatureModel:
        raise NotImplementedError

    def predict_proba_features(self, f: NDArray[np.floating]) -> NDArray[np.float64]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, NDArray[Any]]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, NDArray[Any]]) -> None:
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise ConfigError(f"{type(self).__name__} used before fit")


class SklearnFeatureModel(FeatureModel):
    """StandardScaler + a scikit-learn classifier; probabilities re-indexed to all ``num_classes``."""

    def __init__(self, estimator: Any, num_classes: int = 2) -> None:
        super().__init__(num_classes)
        self.pipeline: Pipeline = make_pipeline(StandardScaler(), estimator)
        self._train: tuple[NDArray[np.float32], NDArray[np.int64]] | None = None

    def fit_features(self, f: NDArray[np.floating], y: NDArray[np.integer]) -> SklearnFeatureModel:
        f = np.asarray(f, dtype=np.float32)
        y = np.asarray(y, dtype=np.int64)
        if len(np.unique(y)) < 2:
            raise ConfigError("classical models need at least two classes in the training data")
        self.pipeline.fit(f, y)
        self._train = (f.astype(np.float32), y.astype(np.int64))
        self.fitted = True
        return self

    def predict_proba_features(self, f: NDArray[np.floating]) -> NDArray[np.float64]:
        self._check_fitted()
        f = np.asarray(f, dtype=np.float32)
        if hasattr(self.pipeline, "predict_proba"):
            p = self.pipeline.predict_proba(f)
        else:  # SVC without Platt: squash the decision function (evaluate calibrates on validation data)
            dec = self.pipeline.decision_function(f)
            if dec.ndim == 1:
                p = np.stack([1 / (1 + np.exp(dec)), 1 / (1 + np.exp(-dec))], 1)
            else:
                e = np.exp(dec - dec.max(1, keepdims=True))
                p = e / e.sum(1, keepdims=True)
        out = np.zeros((len(p), self.num_classes))
        out[:, self.pipeline.classes_] = p
        return out

    def state_dict(self) -> dict[str, NDArray[Any]]:
        self._check_fitted()
        assert self._train is not None
        return {"train_features": self._train[0], "train_labels": self._train[1]}

    def load_state_dict(self, state: dict[str, NDArray[Any]]) -> None:
        """Refit on the stored training features; InputError when they cannot be this model's (a 2-D
        finite matrix of a known feature count, one label per row within the model's classes)."""
        f, y = np.asarray(state["train_features"]), np.asarray(state["train_labels"])
        widths = {len(feature_names(1)), len(feature_names(3))}
        reason = (
            "train_features must be a 2-D matrix"
            if f.ndim != 2
            else f"train_features has {f.shape[1]} columns; the features have {sorted(widths)}"
            if f.shape[1] not in widths
            else "train_features holds NaN or infinite values"
            if not np.isfinite(f).all()
            else "train_labels must be one integer per train_features row"
            if y.shape != (len(f),) or not np.issubdtype(y.dtype, np.integer)
            else f"train_labels must lie in [0, {self.num_classes})"
            if len(y) and (y.min() < 0 or y.max() >= self.num_classes)
            else None
        )
        if reason:
            raise InputError(f"weights do not fit the model ({reason})")
        self.fit_features(f, y)


def _weight(class_weight: str | None) -> str | None:
    if class_weight not in (None, "balanced"):
        raise ConfigError(f"class_weight must be null or 'balanced', got {class_weight!r}")
    return class_weight


@register_model("svm", input_kind="features", input_size=64, family="classical")
def svm(
    in_channels: int = 1,
    num_classes: int = 2,
    class_weight: str | None = "balanced",
    seed: int = 0,
    c: float = 1.0,
) -> SklearnFeatureModel:
    """RBF support-vector machine on forensic features (sigmoid/softmax of the decision function)."""
    est = SVC(C=c, kernel="rbf", class_weight=_weight(class_weight), random_state=seed)
    return SklearnFeatureModel(est, num_classes)


@register_model("random_forest", input_kind="features", input_size=64, family="classical")
def random_forest(
    in_channels: int = 1,
    num_classes: int = 2,
    class_weight: str | None = "balanced",
    seed: int = 0,
    n_estimators: int = 300,
) -> SklearnFeatureModel:
    """Random forest (300 trees) on forensic features."""
    est = RandomForestClassifier(
        n_estimators=n_estimators, class_weight=_weight(class_weight), random_state=seed, n_jobs=1
    )
    return SklearnFeatureModel(est, num_classes)


@register_model("decision_tree", input_kind="features", input_size=64, family="classical")
def decision_tree(
    in_channels: int = 1,
    num_classes: int = 2,
    class_weight: str | None = "balanced",
    seed: int = 0,
    max_depth: int | None = 8,
) -> SklearnFeatureModel:
    """Decision tree (depth 8) on forensic features."""
    est = DecisionTreeClassifier(max_depth=max_depth, class_weight=_weight(class_weight), random_state=seed)
    return SklearnFeatureModel(est, num_classes)


@register_model("test_svm", input_kind="features", input_size=32, family="classical")
def test_svm(
    in_channels: int = 1, num_classes: int = 2, class_weight: str | None = "balanced", seed: int = 0
) -> SklearnFeatureModel:
    """Twin of ``svm`` for tests (same estimator; features are the cost)."""
    return svm(in_channels, num_classes, class_weight, seed)


@register_model("test_random_forest", input_kind="features", input_size=32, family="classical")
def test_random_forest(
    in_channels: int = 1, num_classes: int = 2, class_weight: str | None = "balanced", seed: int = 0
) -> SklearnFeatureModel:
    """Tiny twin of ``random_forest`` (10 trees)."""
    return random_forest(in_channels, num_classes, class_weight, seed, n_estimators=10)


@register_model("test_decision_tree", input_kind="features", input_size=32, family="classical")
def test_decision_tree(
    in_channels: int = 1, num_classes: int = 2, class_weight: str | None = "balanced", seed: int = 0
) -> SklearnFeatureModel:
    """Tiny twin of ``decision_tree`` (depth 3)."""
    return decision_tree(in_channels, num_classes, class_weight, seed, max_depth=3)
