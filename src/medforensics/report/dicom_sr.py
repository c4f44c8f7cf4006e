"""DICOM Comprehensive 3D SR (TID 1500 Measurement Report) of one scanned series, with highdicom.

Content of the report (codes: :mod:`medforensics.report.codes`):

* Observation context: the device observer "medforensics" (its UID derives from the model's name,
  version and SHA-256, so the same model always has the same device UID).
* One TID 1501 measurement group "Series verdict": the tamper probability (the series score, unit
  ``{probability}``), the verdict and, when known, the CT-GAN label as qualitative evaluations; a TM
  label's nodule-like blobs (``extra.nodules``) and the scan's caveats as TEXT items of that group.
  A series scored by the 2-D synthesis detector (single images, MR series) names that detector (its name,
  version, SHA-256 and threshold from ``series.extra["detector"]``) as algorithm and device, and its
  scores "Synthesis probability".
* One group per finding (rank order = score order = JSON order), tracking identifier ``Finding <rank>``
  with a tracking UID shared with the DICOM SEG segment of the same finding:
  a TID 1410 planar ROI group whose region is the finding's bounding box on its centre slice as a
  SCOORD3D polygon in patient mm (a POINT when only the centre is known; a 2-D SCOORD on the centre
  image when the source has no frame of reference), or a TID 1501 group for findings without a location
  (metadata). Each carries the finding score and a "Tamper finding type" evaluation. A CT's
  ``synthetic_slices`` finding names the 2-D synthesis detector that made it (and the cut its median met)
  as its algorithm, not the CT model.
* Evidence: every instance of the scanned series (same Study; new Series and SOP Instance UIDs).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import highdicom.sr as hsr
import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes as dcm_codes
from pydicom.uid import generate_uid

from medforensics import __version__
from medforensics.errors import InputError
from medforensics.io.dicom_frames import frame_count
from medforensics.io.volume import Volume
from medforensics.logging import get_logger
from medforensics.report import codes
from medforensics.report.dicom_common import (
    build_and_save,
    clipped_box,
    declare_private_scheme,
    ranked_findings,
    reference_datasets,
    require_dicom,
    tracking_uid,
    write_for_report,
)
from medforensics.scan.result import Finding, ModelInfo, ScanReport, SeriesResult, finding_model, scored_by

__all__ = ["SR_SERIES_NUMBER", "build_sr", "write_sr", "write_sr_for_report"]

log = get_logger("report.dicom_sr")

#: Series Number of the SR series we create.
SR_SERIES_NUMBER = 9901


def _algorithm(model: ModelInfo, check: str | None = None) -> hsr.AlgorithmIdentification:
    """The algorithm's identification; ``check``: the metadata test behind a finding (``check=<name>``, as
    the JSON's ``check``, so a PACS rule reading the SR can tell ``resampled`` from ``air_level``)."""
    params = [f"sha256={model.sha256}"]
    if model.threshold is not None:
        params.append(f"threshold={model.threshold:.6g}")
    if model.precision:
        params.append(f"precision={model.precision}")
    if check:
        params.append(f"check={check}"[:64])
    name = f"medforensics {model.name}"[:64]
    return hsr.AlgorithmIdentification(name=name, version=model.version[:64] or "0", parameters=params)


def _observation_context(model: ModelInfo) -> hsr.ObservationContext:
    device_uid = generate_uid(entropy_srcs=["medforensics", model.name, model.version, model.sha256])
    device = hsr.DeviceObserverIdentifyingAttributes(
        uid=device_uid, name="medforensics", manufacturer_name="medforensics", model_name=model.name[:64]
    )
    observer = hsr.ObserverContext(observer_type=dcm_codes.DCM.Device, observer_identifying_attributes=device)
    return hsr.ObservationContext(observer_device_context=observer)


def _probability(value: float, synthesis: bool = False) -> hsr.Measurement:
    return hsr.Measurement(
        name=codes.SYNTHESIS_PROBABILITY if synthesis else codes.TAMPER_PROBABILITY,
        value=float(np.clip(value, 0.0, 1.0)),
        unit=codes.UNIT_PROBABILITY,
    )


def _series_group(series: SeriesResult, model: ModelInfo) -> hsr.MeasurementsAndQualitativeEvaluations:
    evaluations = [hsr.QualitativeEvaluation(codes.TAMPER_VERDICT, codes.VERDICT_CODES[series.verdict])]
    if series.label in codes.LABEL_CODES:
        evaluations.append(hsr.QualitativeEvaluation(codes.CTGAN_LABEL, codes.LABEL_CODES[series.label]))
    synthesis = isinstance(series.extra.get("detector"), Mapping)  # scored by the 2-D synthesis detector
    measurements = [] if series.score is None else [_probability(series.score, synthesis)]
    uid = generate_uid(entropy_srcs=[series.series_uid or series.path, "series verdict"])
    group = hsr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hsr.TrackingIdentifier(uid=uid, identifier="Series verdict"),
        algorithm_id=_algorithm(model),
        measurements=measurements,
        qualitative_evaluations=evaluations,
    )
    # TID 1501 allows TEXT qualitative evaluations; highdicom builds CODE ones only, so where a TM label's
    # blobs are and each caveat (voxel sizes outside the model's training CTs) are appended to the content
    texts = [(codes.LABEL_BASIS, t) for t in _label_basis(series)]
    texts += [(codes.SCAN_CAVEAT, str(c)) for c in series.extra.get("caveats") or []]
    for name, text in texts:
        group[0].ContentSequence.append(  # UT would take more; each is one line
            hsr.TextContentItem(
                name=name, value=text[:1024], relationship_type=hsr.RelationshipTypeValues.CONTAINS
            )
        )
    return group


def _label_basis(series: SeriesResult) -> list[str]:
    """One line per nodule-like blob a TM label rests on (``extra.nodules``; rows it cannot read are left
    out)."""
    if series.label != "TM":
        return []
    lines = []
    for n in series.extra.get("nodules") or []:
        try:
            voxel = ", ".join(str(int(v)) for v in n["center_voxel"])
            mm = ", ".join(f"{float(v):.1f}" for v in n["center_mm"])
            lines.append(
                f"nodule-like blob, untouched: voxel (z, y, x) ({voxel}), patient (x, y, z) ({mm}) mm, "
                f"about {float(n['diameter_mm']):.0f} mm, {float(n['hu']):.0f} HU at its centre"
            )
        except (KeyError, TypeError, ValueError):
            continue
    return lines


def _centre_index(finding: Finding, volume: Volume) -> NDArray[np.float64] | None:
    if finding.center_voxel is not None:
        return np.asarray(finding.center_voxel, dtype=np.float64)
    if finding.center_mm is not None:
        return np.asarray(volume.patient_to_index(finding.center_mm), dtype=np.float64)
    box = clipped_box(finding, volume.shape)
    if box is not None:
        return (np.asarray(box[:3]) + np.asarray(box[3:]) - 1) / 2.0
    return None


def _outline(finding: Finding, volume: Volume, z: float) -> NDArray[np.float64] | None:
    """Closed (z, y, x) index polygon of the box's edges on slice ``z`` (None without a box)."""
    box = clipped_box(finding, volume.shape)
    if box is None:
        return None
    _, y0, x0, _, y1, x1 = box
    top, bottom, left, right = y0 - 0.5, y1 - 0.5, x0 - 0.5, x1 - 0.5
    corners = [(top, left), (top, right), (bottom, right), (bottom, left), (top, left)]
    return np.array([(z, y, x) for y, x in corners], dtype=np.float64)


def _has_patient_geometry(ds: Dataset) -> bool:
    """True when the image carries its orientation (classic header or enhanced functional groups)."""
    return any(
        k in ds
        for k in (
            "ImageOrientationPatient",
            "SharedFunctionalGroupsSequence",
            "PerFrameFunctionalGroupsSequence",
        )
    )


def _region(finding: Finding, volume: Volume) -> hsr.ImageRegion3D | hsr.ImageRegion | None:
    centre = _centre_index(finding, volume)
    if centre is None:
        return None
    z = float(np.clip(np.rint(centre[0]), 0, volume.shape[0] - 1))
    outline = _outline(finding, volume, z)
    graphic = "POLYGON" if outline is not None else "POINT"
    index = outline if outline is not None else np.array([[z, centre[1], centre[2]]])
    frame_of_reference = volume.metadata.get("frame_of_reference_uid")
    if frame_of_reference and _has_patient_geometry(volume.datasets[0]):
        points = np.asarray(volume.index_to_patient(index), dtype=np.float64).reshape(-1, 3)
        return hsr.ImageRegion3D(graphic, points, str(frame_of_reference))
    # no frame of reference: 2-D (column, row) pixel coordinates on the centre image
    ds_index, frame = volume.metadata.get("frame_sources", [(k, 0) for k in range(volume.shape[0])])[int(z)]
    frames = [frame + 1] if frame_count(volume.datasets[ds_index]) > 1 else None
    image = volume.datasets[ds_index]
    source = hsr.SourceImageForRegion.from_source_image(image, referenced_frame_numbers=frames)
    pixels = np.clip(index[:, [2, 1]] + 0.5, 0.0, None)  # DICOM pixel coordinates: (0, 0) = top-left edge
    return hsr.ImageRegion("POLYLINE" if graphic == "POLYGON" else graphic, pixels, source)  # closed polyline


def _finding_group(
    rank: int, finding: Finding, series: SeriesResult, volume: Volume, model: ModelInfo
) -> hsr.PlanarROIMeasurementsAndQualitativeEvaluations | hsr.MeasurementsAndQualitativeEvaluations:
    tracking = hsr.TrackingIdentifier(uid=tracking_uid(series, rank, finding), identifier=f"Finding {rank}")
    common: dict[str, Any] = {
        "tracking_identifier": tracking,
        "finding_type": codes.TAMPERED_REGION,
        "algorithm_id": _algorithm(finding_model(series, finding, model), finding.check),
        "measurements": [_probability(finding.score, finding.type == "synthetic")],
        "qualitative_evaluations": [
            hsr.QualitativeEvaluation(codes.TAMPER_FINDING_TYPE, codes.finding_type_code(finding.type))
        ],
    }
    region = _region(finding, volume)
    if region is None:
        return hsr.MeasurementsAndQualitativeEvaluations(**common)
    return hsr.PlanarROIMeasurementsAndQualitativeEvaluations(referenced_region=region, **common)


def build_sr(series: SeriesResult, volume: Volume, *, model: ModelInfo) -> hsr.Comprehensive3DSR:
    """The SR dataset for one scanned DICOM series (see the module docs for its content)."""
    volume = require_dicom(series, volume)
    model = scored_by(series, model)
    if series.verdict not in codes.VERDICT_CODES:
        raise InputError(f"verdict {series.verdict!r} has no SR code", path=series.path)
    groups: list[
        hsr.PlanarROIMeasurementsAndQualitativeEvaluations | hsr.MeasurementsAndQualitativeEvaluations
    ] = [_series_group(series, model)]
    groups += [
        _finding_group(rank, f, series, volume, model)
        for rank, f in enumerate(ranked_findings(series), start=1)
    ]
    report = hsr.MeasurementReport(
        observation_context=_observation_context(model),
        procedure_reported=codes.PROCEDURE_FORENSIC_ANALYSIS,
        imaging_measurements=groups,
    )
    sr = hsr.Comprehensive3DSR(
        evidence=reference_datasets(volume.datasets),
        content=report[0],
        series_instance_uid=generate_uid(),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="medforensics",
        is_complete=True,
        is_final=False,
    )
    sr.SeriesDescription = "medforensics tamper analysis"
    sr.SoftwareVersions = __version__
    declare_private_scheme(sr)
    return sr


def write_sr(series: SeriesResult, volume: Volume, path: str | Path, *, model: ModelInfo) -> Path:
    """Write the SR of one series to ``path`` atomically; :class:`InputError` if it cannot have one."""
    _, out = build_and_save("SR", lambda: build_sr(series, volume, model=model), series, path)
    log.info("wrote SR %s for series %s (%d finding(s))", out.name, series.series_uid, len(series.findings))
    return out


def write_sr_for_report(
    report: ScanReport,
    volumes: Mapping[str, Volume] | None,
    out_dir: str | Path,
    *,
    notes: list[str] | None = None,
) -> list[Path]:
    """One SR per scanned DICOM series in ``out_dir``; other series are skipped (reason added to ``notes``).

    ``volumes`` maps ``SeriesResult.path`` (or the series UID) to the series' :class:`Volume`; only its
    headers and geometry are used, so a lazy mapping or pixel-less volumes do.
    """

    def one(series: SeriesResult, volume: Volume, path: Path) -> Path:
        return write_sr(series, volume, path, model=report.model)

    return write_for_report(report, volumes, out_dir, "SR", one, notes)
