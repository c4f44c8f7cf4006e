"""Scan result types: the in-memory form of the scan JSON contract (``../shared/DESIGN.md``).

Producers (the scan pipeline) fill these; consumers (JSON, HTML, DICOM SR/SEG writers, a future REST
service) read them. :meth:`ScanReport.to_dict` gives exactly the contract's keys (plus optional extras).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

Verdict = Literal["authentic", "tampered", "synthetic", "error"]
FindingType = Literal["injected", "removed", "synthetic", "metadata", "signature"]
VERDICTS: tuple[str, ...] = ("authentic", "tampered", "synthetic", "error")
FINDING_TYPES: tuple[str, ...] = ("injected", "removed", "synthetic", "metadata", "signature")
#: ``Finding.check`` of each metadata test (``tag:<keyword>`` for a tag that differs between slices), and
#: of the rule behind a ``synthetic`` CT finding (``enlarged``: :mod:`medforensics.scan.enlarged`;
#: ``synthetic_slices``: :mod:`medforensics.scan.slice_synthesis`).
METADATA_CHECKS: tuple[str, ...] = (
    "tag",
    "duplicate_sop_uid",
    "air_level",
    "slice_offset",
    "stored_range",
    "slice_gap",
    "reader_warning",
    "rescale_varies",
    "added_noise",
    "lossy_compression",
    "member_claim",
    "projection_pixels",
    "resampled",
    "enlarged",
    "synthetic_slices",
)


@dataclass
class Finding:
    """One suspicious region (or metadata inconsistency) in a series.

    ``center_voxel`` (z, y, x); ``center_mm`` patient LPS (x, y, z); ``bbox_voxel``
    (z0, y0, x0, z1, y1, x1), end exclusive. ``heatmap`` (optional, not serialised to JSON) is an explanation
    map over ``bbox_voxel`` (same shape as the box), values in [0, 1]. ``mask`` (optional, not serialised)
    is a bool array over the box marking the voxels believed tampered (used for DICOM SEG). ``check``
    names the test behind a ``metadata`` finding or a rule's ``synthetic`` one (see
    :data:`METADATA_CHECKS`), so consumers need not parse the description.
    """

    type: str
    score: float
    center_voxel: tuple[int, int, int] | None = None
    center_mm: tuple[float, float, float] | None = None
    bbox_voxel: tuple[int, int, int, int, int, int] | None = None
    description: str = ""
    heatmap: NDArray[np.float32] | None = field(default=None, repr=False, compare=False)
    mask: NDArray[np.bool_] | None = field(default=None, repr=False, compare=False)
    check: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form (contract keys first, then ``check`` and ``description`` where set)."""
        out: dict[str, Any] = {
            "type": self.type,
            "score": round(float(self.score), 6),
            "center_voxel": None if self.center_voxel is None else [int(v) for v in self.center_voxel],
            "center_mm": None if self.center_mm is None else [round(float(v), 3) for v in self.center_mm],
            "bbox_voxel": None if self.bbox_voxel is None else [int(v) for v in self.bbox_voxel],
        }
        if self.check:
            out["check"] = self.check
        if self.description:
            out["description"] = self.description
        return out


@dataclass
class SeriesResult:
    """The verdict for one series (or one 2-D image / NIfTI / MHD file)."""

    path: str
    series_uid: str | None = None
    modality: str | None = None
    shape: tuple[int, int, int] | None = None
    spacing_mm: tuple[float, float, float] | None = None
    verdict: str = "error"
    score: float | None = None
    label: str | None = None
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    signature: str | None = None
    study_uid: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: The series is a study member the detectors are not for (a localizer, a screen capture, a MIP, slices
    #: too thick; :mod:`~medforensics.scan.routing`): verdict ``error`` with the reason, but no alarm.
    not_assessed: bool = False
    #: Key of its volume in the mapping :func:`~medforensics.scan.pipeline.scan_paths` returns: the path,
    #: or ``path#k`` when a folder holds several series (not serialised).
    key: str = field(default="", repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON form following the contract; findings sorted by score, highest first."""
        findings = sorted(self.findings, key=lambda f: -float(f.score))
        out: dict[str, Any] = {
            "path": self.path,
            "series_uid": self.series_uid,
            "modality": self.modality,
            "shape": None if self.shape is None else [int(v) for v in self.shape],
            "spacing_mm": None if self.spacing_mm is None else [round(float(v), 6) for v in self.spacing_mm],
            "verdict": self.verdict,
            "score": None if self.score is None else round(float(self.score), 6),
            "label": self.label,
            "findings": [f.to_dict() for f in findings],
            "error": self.error,
            "seconds": round(float(self.seconds), 3),
        }
        if self.not_assessed:
            out["not_assessed"] = True
        if self.signature is not None:
            out["signature"] = self.signature
        if self.study_uid is not None:
            out["study_uid"] = self.study_uid
        if self.extra:
            out["extra"] = self.extra
        return out


@dataclass
class ModelInfo:
    """Which detector produced the scores."""

    name: str
    version: str
    sha256: str
    threshold: float | None = None
    #: The arithmetic the network ran in on this machine: ``"bf16"`` where the CPU (AVX512-BF16, AMX) or GPU
    #: computes it natively, else ``"fp32"``. The two give scores up to about 0.01 apart (bundle16 on 128
    #: whole series: 0.008), so a series scored near the threshold can get another verdict on another
    #: machine; the report says which ran. One of :data:`medforensics.train.config.PRECISIONS`.
    precision: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def scored_by(series: SeriesResult, model: ModelInfo) -> ModelInfo:
    """The detector that scored ``series``, with the threshold applied: the one its ``extra["detector"]``
    names (the 2-D detector of a single image or MR series; ``extra["threshold"]`` when set, as the MR
    slice cut-off is), else the report's ``model`` with the series' own threshold where it has one (a CT
    series held to the uncorrelated-noise or the lossy operating point)."""
    info = series.extra.get("detector")
    if not isinstance(info, Mapping) or not info.get("name"):
        own = series.extra.get("threshold")
        return model if own is None else replace(model, threshold=float(own))
    return model_from_info(info, series.extra.get("threshold", info.get("threshold")))


def model_from_info(info: Mapping[str, Any], threshold: Any = None) -> ModelInfo:
    """The :class:`ModelInfo` a result's ``extra`` recorded as a mapping (:meth:`ModelInfo.to_dict`), with
    ``threshold`` (None: none)."""
    return ModelInfo(
        name=str(info["name"]),
        version=str(info.get("version", "")),
        sha256=str(info.get("sha256", "")),
        threshold=None if threshold is None else float(threshold),
        precision=None if info.get("precision") is None else str(info["precision"]),
    )


def finding_model(series: SeriesResult, finding: Finding, model: ModelInfo) -> ModelInfo:
    """The detector behind ``finding`` of ``series``: the 2-D synthesis detector for a CT's
    ``synthetic_slices`` finding (recorded in ``extra["synthetic_slices"]["detector"]``, with the cut the
    finding met), else ``model``."""
    rule = series.extra.get("synthetic_slices")
    if finding.check != "synthetic_slices" or not isinstance(rule, Mapping):
        return model
    info = rule.get("detector")
    if not isinstance(info, Mapping) or not info.get("name"):
        return model
    by_area = float(rule.get("median", 0.0)) >= float(rule.get("threshold", 0.0))  # else the sampled input's
    return model_from_info(info, rule.get("threshold") if by_area else rule.get("sampled_cut"))


#: Signature statuses that need a reader's attention as a flagged series does.
BAD_SIGNATURES = ("invalid", "mixed", "untrusted")
#: Exit status of ``scan --fail-on-alarm`` when a series raised an alarm (:attr:`ScanReport.alarms`).
ALARM_EXIT = 1


@dataclass
class ScanReport:
    """A whole scan: every series given, in discovery order."""

    model: ModelInfo
    series: list[SeriesResult] = field(default_factory=list)
    tool_version: str = ""
    skipped: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The scan JSON contract object."""
        from medforensics import __version__

        out: dict[str, Any] = {
            "tool": {"name": "medforensics", "version": self.tool_version or __version__},
            "model": self.model.to_dict(),
            "series": [s.to_dict() for s in self.series],
        }
        if self.skipped:
            out["skipped"] = self.skipped
        return out

    @property
    def exit_status(self) -> int:
        """0 if any series was scanned (or nothing errored), 2 if every series failed."""
        if not self.series:
            return 2
        return 0 if any(s.verdict != "error" for s in self.series) else 2

    @property
    def alarms(self) -> list[SeriesResult]:
        """The series flagged (verdict tampered or synthetic) or with a bad signature
        (:data:`BAD_SIGNATURES`): what ``scan --fail-on-alarm`` exits :data:`ALARM_EXIT` for. Errors are no
        alarms (a thick-sliced series or a localizer is one in most archives): they are listed, and exit 2
        when nothing was scanned."""
        return [
            s for s in self.series if s.verdict in ("tampered", "synthetic") or s.signature in BAD_SIGNATURES
        ]

    def alarm_exit_status(self) -> int:
        """:attr:`exit_status`, but :data:`ALARM_EXIT` where it is 0 and a series raised an alarm."""
        status = self.exit_status
        return ALARM_EXIT if status == 0 and self.alarms else status

    def series_by_path(self) -> dict[Path, SeriesResult]:
        """Results keyed by input path."""
        return {Path(s.path): s for s in self.series}
