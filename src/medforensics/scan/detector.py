"""The scan detector: a trained model folder plus its input spec and calibration.

A model folder (``medforensics train`` output) holds ``model.safetensors``, ``config.json``,
``metrics.json`` and ``model_card.md``; the scan also reads ``calibration.json`` beside them::

    {"platt": [a, b], "threshold": 0.93, "series_threshold": 0.97, "max_fpr": 0.01}

``platt`` maps the raw tamper probability to a calibrated one (``sigmoid(a * logit(p) + b)``, fitted on
validation data with :func:`medforensics.evaluate.metrics.fit_platt`); ``threshold`` is the operating point
on calibrated cube scores chosen on validation data for <= ``max_fpr`` false positives;
``series_threshold`` the same on the series score (the maximum over a whole scan's candidates, so it must
be chosen on scanned validation series). Without the file the scores are uncalibrated (identity) and the
threshold is 0.5, which :class:`ModelInfo` says in its ``version``.

A dense detector's file may also hold a second operating point for series whose noise is uncorrelated
between slices (noise added to the whole series after reconstruction, or thick slices that do not overlap;
see :func:`~medforensics.features.noise_map.corr_channel`)::

    "uncorrelated_noise": {"below": 0.15, "series_threshold": 0.99}

A series whose median inter-slice noise correlation is below ``below`` is held to that threshold instead
(chosen the same way, on the validation series of that kind): the noise traces the detector reads are
drowned there, and its authentic scores run higher. A third, for series stored lossy (a lossy encoding,
or LossyImageCompression 01 with pixels that carry a lossy coding grid:
:func:`~medforensics.scan.metadata_checks.scored_as_lossy`), fitted on lossy copies of the validation series
(:func:`~medforensics.train.dense_calibration.add_lossy_point`)::

    "lossy": {"series_threshold": 0.8, "codecs": ["j2k-10", "j2k-20", "jls-3"]}

It takes precedence over the other two: lossy coding smooths and blocks the noise the detector reads.
``"views": 4`` says the dense map is the mean over that many in-plane views
(:data:`~medforensics.models.tamperseg.VIEWS`: four mirrors, then their transposes): the scores the Platt
parameters and thresholds were fitted on, so the scan draws the map the same way (default 1). With it,
``"screen": 0.85`` makes the scan draw the first view everywhere and the others only around voxels whose
first-view evidence (raw) reaches that level (:mod:`~medforensics.models.view_refine`); the level used is
never above the bound that keeps every operating point's verdict that of the full views
(:meth:`Calibration.screen_level`), and the fit that wrote it scored its series the same way.

The default detector is bundled in ``medforensics/assets/detector/`` (3-D CT cubes); a 2-D synthesis
detector, where one is bundled, in ``medforensics/assets/detector2d/``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from medforensics._json import is_finite_number
from medforensics.errors import ConfigError, InputError
from medforensics.models.tamperseg import VIEWS
from medforensics.scan.result import ModelInfo
from medforensics.train.dense_config import slice_limit

CALIBRATION = "calibration.json"
#: Most in-plane views a calibration may name.
MAX_VIEWS = len(VIEWS)
DEFAULT_THRESHOLD = 0.5


def bundled_dir(kind: str = "detector") -> Path:
    """Where the bundled detector of ``kind`` (``detector`` or ``detector2d``) lives in the package."""
    return Path(str(resources.files("medforensics") / "assets" / kind))


def has_bundled(kind: str = "detector") -> bool:
    """True when a model folder is bundled for ``kind``."""
    d = bundled_dir(kind)
    return (d / "model.safetensors").is_file() and (d / "config.json").is_file()


@dataclass(frozen=True)
class InputSpec:
    """What the model consumes: ``kind`` (2d / 2.5d / 3d), edge ``size`` (voxels), voxel size, HU window."""

    kind: str
    size: int
    spacing_mm: float
    hu_window: tuple[float, float]
    classes: tuple[str, ...]

    @property
    def cube_mm(self) -> float:
        """Physical edge of a cube (mm)."""
        return self.size * self.spacing_mm


@dataclass(frozen=True)
class Calibration:
    """Platt parameters and operating thresholds (see module docs)."""

    a: float = 1.0
    b: float = 0.0
    threshold: float = DEFAULT_THRESHOLD
    series_threshold: float | None = None
    max_fpr: float | None = None
    present: bool = False
    #: ``(below, series_threshold)`` of the uncorrelated-noise operating point (see module docs).
    uncorrelated: tuple[float, float] | None = None
    #: 2-D detectors: the slice score from which an MR image or series is synthetic (set with the Platt
    #: map it belongs to; None: :data:`medforensics.scan.image2d.SERIES_SLICE_THRESHOLD`).
    mr_slice_threshold: float | None = None
    #: Dense detectors: in-plane views the map is averaged over (the scores this was fitted on).
    views: int = 1
    #: The series threshold of the lossy operating point (see module docs), or None.
    lossy: float | None = None
    #: Dense detectors with several views: the first view's raw evidence from which the others are drawn
    #: (see module docs); None: every view everywhere.
    screen: float | None = None

    def apply(self, p: NDArray[Any]) -> NDArray[np.float64]:
        """Calibrated probabilities from raw ones."""
        from medforensics.evaluate.calibration import apply_platt

        if not self.present or (self.a == 1.0 and self.b == 0.0):
            return np.asarray(p, np.float64)
        return apply_platt(p, (self.a, self.b))

    @property
    def operating_threshold(self) -> float:
        """The series-level threshold (falls back to the cube threshold)."""
        return self.threshold if self.series_threshold is None else self.series_threshold

    def threshold_for(self, slice_corr: float | None, lossy: bool = False) -> tuple[float, str]:
        """The series threshold for a series with median inter-slice noise correlation ``slice_corr``
        (``lossy``: stored lossy), and the name of its operating point (``lossy coding``, ``uncorrelated
        noise`` or ``scanner noise``)."""
        if lossy and self.lossy is not None:
            return self.lossy, "lossy coding"
        if self.uncorrelated is not None and slice_corr is not None and slice_corr < self.uncorrelated[0]:
            return self.uncorrelated[1], "uncorrelated noise"
        return self.operating_threshold, "scanner noise"

    def screen_level(self) -> float | None:
        """The first view's raw evidence from which the other views are drawn, or None (one view, no screen).
        At most ``n * t - (n - 1)`` for ``n`` views and the lowest operating threshold ``t`` in raw terms: a
        voxel whose mean over the views reaches ``t`` has its first view at or above that (each view's
        evidence is at most 1), so it is always refined and its verdict is that of the full views."""
        if self.views == 1 or self.screen is None:
            return None
        if not self.present:
            return self.screen
        if self.a <= 0:  # a degenerate Platt map: no bound to keep, every view everywhere
            return None
        from medforensics.evaluate.calibration import invert_platt

        unc = None if self.uncorrelated is None else self.uncorrelated[1]
        lowest = min(t for t in (self.operating_threshold, self.lossy, unc) if t is not None)
        raw = invert_platt(lowest, (self.a, self.b))
        return min(self.screen, self.views * raw - (self.views - 1))


def _number(value: Any, what: str) -> float:
    """``value`` as a finite float; ``ValueError`` naming ``what`` when it is not a finite JSON number."""
    if not is_finite_number(value):
        raise ValueError(f"{what} must be a finite number, not {value!r}")
    return float(value)


def read_calibration(folder: Path) -> Calibration:
    """``calibration.json`` of a model folder, or the identity when absent."""
    path = folder / CALIBRATION
    if not path.is_file():
        return Calibration()
    try:
        return parse_calibration(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
        reason = str(err) if type(err) is ValueError else repr(err)
        raise InputError(f"unreadable calibration file ({reason})", path=path) from None


def parse_calibration(raw: Any) -> Calibration:
    """A :class:`Calibration` from ``calibration.json`` content (see module docs); ``ValueError`` (or the
    ``TypeError`` / ``KeyError`` of a malformed entry) saying what is wrong."""
    if not isinstance(raw, dict):
        raise ValueError(f"a JSON object is needed, not {type(raw).__name__}")
    platt = raw.get("platt", (1.0, 0.0))
    if not isinstance(platt, (list, tuple)) or len(platt) != 2:
        raise ValueError(f"platt must be two numbers [a, b], not {platt!r}")
    a, b = (_number(v, "platt") for v in platt)
    thr = _number(raw.get("threshold", DEFAULT_THRESHOLD), "threshold")
    st, fpr, mr, screen = (
        None if raw.get(k) is None else _number(raw[k], k)
        for k in ("series_threshold", "max_fpr", "mr_slice_threshold", "screen")
    )
    views = raw.get("views", 1)
    if type(views) is not int or not 1 <= views <= MAX_VIEWS:
        raise ValueError(f"views must be a whole number 1 to {MAX_VIEWS}, not {views!r}")
    unc = raw.get("uncorrelated_noise")
    uncorrelated = (
        None
        if unc is None
        else (
            _number(unc["below"], "uncorrelated_noise.below"),
            _number(unc["series_threshold"], "uncorrelated_noise.series_threshold"),
        )
    )
    lossy_raw = raw.get("lossy")
    lossy = None if lossy_raw is None else _number(lossy_raw["series_threshold"], "lossy.series_threshold")
    thresholds = [thr] + [
        t for t in (st, mr, None if uncorrelated is None else uncorrelated[1], lossy) if t is not None
    ]
    if not all(0.0 <= t <= 1.0 for t in thresholds + [v for v in (fpr, screen) if v is not None]):
        raise ValueError("calibration thresholds, max_fpr and screen must lie in [0, 1]")
    return Calibration(a, b, thr, st, fpr, True, uncorrelated, mr, views, lossy, screen)


def calibration_and_info(folder: Path, name: str, metrics: dict[str, Any]) -> tuple[Calibration, ModelInfo]:
    """The folder's calibration and the :class:`ModelInfo` a scan report carries (hash of the weights,
    version from ``metrics.json`` or the hash, and the word "uncalibrated" when it is)."""
    from medforensics.train.checkpoint import METRICS, WEIGHTS, check_metrics

    check_metrics(metrics, folder / METRICS)  # a dense folder's metrics are not read by load_trained
    calib = read_calibration(folder)
    sha = sha256_file(folder / WEIGHTS)
    version = str(metrics.get("version") or sha[:12])
    if not calib.present:
        version += " (uncalibrated: no calibration.json, threshold 0.5)"
    return calib, ModelInfo(name=name, version=version, sha256=sha, threshold=calib.operating_threshold)


def report_info(detector: Any) -> ModelInfo:
    """``detector.info`` with the precision its network runs in here (:attr:`ModelInfo.precision`, from
    the detector's ``precision`` and where its ``model`` lives); as it is for a detector without either."""
    from medforensics.models.inference import effective_precision, model_device

    model, precision = getattr(detector, "model", None), getattr(detector, "precision", None)
    if not isinstance(model, nn.Module) or precision is None:
        return detector.info
    return replace(detector.info, precision=effective_precision(str(precision), model_device(model).type))


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    with path.open("rb") as fh:
        return sha256_stream(fh)


class Readable(Protocol):
    """What :func:`sha256_stream` reads: anything with ``read(n) -> bytes``."""

    def read(self, n: int, /) -> bytes: ...


def sha256_stream(fh: Readable) -> str:
    """Hex sha256 of what an open binary stream yields (a file, or a decompressing reader), in chunks."""
    h = hashlib.sha256()
    for chunk in iter(lambda: fh.read(1 << 20), b""):
        h.update(chunk)
    return h.hexdigest()


#: Slice spacing (mm) above which the cube detectors do not assess a CT series (as the dense detector's
#: default: MAX_SLICE_FACTOR x its 2.5 mm grid, 3 mm).
MAX_SLICE_MM = slice_limit(None)


class Detector:
    """A trained CNN with its input spec and calibration; scores cubes (3-D) or crops (2-D)."""

    #: Whether a CT scan also searches the series for a duplicated region (``scan.clones``; ``scan
    #: --no-clone-check`` sets it False on the loaded detector).
    clone_check = True
    #: Where a CT volume is searched for a copy: ``"lungs"`` (across slices, :mod:`~medforensics.scan.clones`)
    #: or ``"body"`` (also every slice alone within the body, :mod:`~medforensics.scan.image_clones`; ``scan
    #: --clone-region body``).
    clone_region = "lungs"

    def __init__(self, model: nn.Module, spec: InputSpec, calibration: Calibration, info: ModelInfo) -> None:
        self.model = model.eval()
        self.spec = spec
        self.calibration = calibration
        self.info = info
        self.batch_size = 64
        self.precision = "bf16"
        #: CT series with slices further apart are not assessed (trained on 1.25-2.5 mm slices, as the
        #: dense detector; ``scan --max-slice-mm`` raises it)
        self.max_slice_mm = MAX_SLICE_MM
        self.max_pixel_mm: float | None = None

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_dir(cls, folder: str | Path) -> Detector:
        """Load a model folder (``medforensics train`` output, plus optional ``calibration.json``)."""
        from medforensics.models.registry import model_info
        from medforensics.train.build import input_size
        from medforensics.train.checkpoint import load_trained
        from medforensics.train.data import TASK_CLASSES

        folder = Path(folder)
        if not folder.is_dir():
            raise InputError("model folder does not exist", path=folder)
        model, cfg, metrics = load_trained(folder)
        if not isinstance(model, nn.Module):
            raise InputError(f"model {cfg.model!r} is not a neural network; scan needs a CNN", path=folder)
        info = model_info(cfg.model)
        classes = TASK_CLASSES[cfg.data.task]
        spec = InputSpec(
            kind=info.input_kind,
            size=int(input_size(cfg, info)),
            spacing_mm=float(
                cfg.data.cube_spacing_mm if info.input_kind == "3d" else (cfg.data.spacing_mm or 0)
            ),
            hu_window=(float(cfg.data.hu_window[0]), float(cfg.data.hu_window[1])),
            classes=tuple(classes),
        )
        if spec.kind == "3d" and classes[0] != "authentic" and cfg.data.task != "binary":
            raise InputError(
                f"3-D detector trained for task {cfg.data.task!r}; need attack or binary", path=folder
            )
        calib, mi = calibration_and_info(folder, cfg.model, metrics)
        return cls(model, spec, calib, mi)

    @classmethod
    def default(cls, kind: str = "detector") -> Any:
        """The bundled detector; a clear :class:`ConfigError` when none is bundled yet."""
        if not has_bundled(kind):
            raise ConfigError(
                f"no bundled {'CT' if kind == 'detector' else '2-D'} detector in "
                f"medforensics/assets/{kind}/; pass --model DIR (a `medforensics train` output folder)"
            )
        return load_detector(bundled_dir(kind))

    # ------------------------------------------------------------------ scoring
    def window(self, hu: NDArray[Any]) -> NDArray[np.float32]:
        """Model input scaling: clip to the HU window, map to [0, 1] (as in training)."""
        from medforensics.train.data import window

        return window(hu, self.spec.hu_window)

    def logits(self, x: NDArray[Any]) -> torch.Tensor:
        """Float32 logits of windowed inputs ``(N, C, ...)``; bf16 autocast + channels_last, batched."""
        from medforensics.models.inference import logits_batches

        return logits_batches(self.model, x, self.batch_size, precision=self.precision, channels_last=True)

    def score_cubes(self, cubes: NDArray[Any]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(p_tamper calibrated (N,), p_type (N, K))`` for HU cubes ``(N, s, s, s)``."""
        cubes = np.asarray(cubes)
        k = len(self.spec.classes)
        if len(cubes) == 0:
            return np.zeros(0), np.zeros((0, k))
        x = self.window(cubes)[:, None]
        logits = self.logits(x)
        return self._probs(logits)

    def _probs(self, logits: torch.Tensor) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        from medforensics.models.cnn3d import split_outputs

        tamper, p_type = split_outputs(logits.float())
        raw = torch.sigmoid(tamper).double().numpy()
        return self.calibration.apply(raw), p_type.double().numpy()

    def score_images(self, crops: NDArray[Any]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """2-D models: ``(p_fake calibrated (N,), class probabilities)`` for crops ``(N, s, s)``."""
        x = self.window(np.asarray(crops))[:, None]
        return self._probs(self.logits(x))

    def describe(self) -> dict[str, Any]:
        """Loggable summary."""
        return {
            "model": self.info.to_dict(),
            "input": self.spec.__dict__,
            "calibrated": self.calibration.present,
        }


def scan_detectors(model: str | Path | None) -> tuple[Any, Detector | None]:
    """What ``scan`` scores with: the CT detector (the folder ``model``, or the bundled one) and the
    bundled 2-D detector if there is one."""
    det = load_detector(model) if model is not None else Detector.default()
    return det, Detector.default("detector2d") if has_bundled("detector2d") else None


def with_limits(detector: Any, max_slice_mm: float | None, max_pixel_mm: float | None) -> Any:
    """``detector`` told to score CT series whose slices lie up to ``max_slice_mm`` apart and whose pixels
    are up to ``max_pixel_mm`` (each None: its validated limit stays), as ``--max-slice-mm`` and
    ``--max-pixel-mm`` ask."""
    if max_slice_mm is not None:
        detector.max_slice_mm = max_slice_mm
    if max_pixel_mm is not None:
        detector.max_pixel_mm = max_pixel_mm
    return detector


def is_dense_folder(folder: str | Path) -> bool:
    """Whether the model folder's ``config.json`` names a dense localiser (False when it cannot be read: the
    classifier's loader then names the broken file)."""
    from medforensics.models.registry import is_dense

    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(config, dict) and is_dense(str(config.get("model", "")))


def load_detector(folder: str | Path) -> Any:
    """A :class:`Detector` (cube or 2-D classifier) or a dense localiser, by the folder's ``config.json``."""
    if is_dense_folder(folder):
        from medforensics.scan.dense import DenseDetector

        return DenseDetector.from_dir(Path(folder))
    return Detector.from_dir(Path(folder))
