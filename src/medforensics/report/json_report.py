"""The scan JSON: write it (atomic, UTF-8, indent 2), read it, and check it against the contract.

The contract is the one of ``../shared/DESIGN.md`` ("Scan output contract"); :func:`validate_report_dict`
returns one readable message per violation (an empty list for a valid report), so tests can assert on it.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medforensics._atomic import write_text_atomic
from medforensics._json import is_finite_number
from medforensics._text import printable_tree
from medforensics.errors import InputError
from medforensics.logging import get_logger
from medforensics.scan.result import FINDING_TYPES, METADATA_CHECKS, VERDICTS, ScanReport
from medforensics.train.config import PRECISIONS

__all__ = ["LABELS", "load_json", "report_json_text", "validate_report_dict", "write_json"]

log = get_logger("report.json")

#: Allowed series labels (CT-GAN's TB/TM/FB/FM plus SYN for fully synthetic images); ``null`` also allowed.
LABELS: tuple[str, ...] = ("TB", "TM", "FB", "FM", "SYN")

_SERIES_KEYS = (
    "path", "series_uid", "modality", "shape", "spacing_mm", "verdict", "score", "label", "findings", "error",
    "seconds",
)  # fmt: skip
_FINDING_KEYS = ("type", "score", "center_voxel", "center_mm", "bbox_voxel")


def report_json_text(report: ScanReport | Mapping[str, Any], *, validate: bool = False) -> str:
    """The report's contract object as JSON text (indent 2, strict JSON: no NaN), as :func:`write_json`
    writes it; with ``validate`` a report that breaks the contract raises :class:`ValueError`."""
    # a path with bytes that are not UTF-8 is written with them as \xNN (JSON cannot hold them as they are)
    data = printable_tree(report.to_dict() if isinstance(report, ScanReport) else dict(report))
    if validate:
        problems = validate_report_dict(data)
        if problems:
            raise ValueError("scan report breaks the JSON contract: " + "; ".join(problems))
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_json(report: ScanReport | Mapping[str, Any], path: str | Path, *, validate: bool = False) -> Path:
    """Write the report's contract object to ``path`` (atomic, UTF-8, :func:`report_json_text`).

    With ``validate`` a report that breaks the contract raises :class:`ValueError` listing the problems.
    """
    out = write_text_atomic(path, report_json_text(report, validate=validate))
    log.info("wrote JSON report %s", out.name)
    return out


def load_json(path: str | Path) -> dict[str, Any]:
    """Read a scan JSON file; :class:`InputError` for a missing, unreadable or non-object file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError("no such file", path=path) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not a readable JSON file ({type(exc).__name__}: {exc})", path=path) from exc
    if not isinstance(data, dict):
        raise InputError(f"scan JSON must be an object, got {type(data).__name__}", path=path)
    return data


# ---------------------------------------------------------------------- validation
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_is_num = is_finite_number


def _int_list(v: Any, n: int) -> bool:
    return isinstance(v, list) and len(v) == n and all(_is_int(x) for x in v)


def _num_list(v: Any, n: int) -> bool:
    return isinstance(v, list) and len(v) == n and all(_is_num(x) for x in v)


def _check_str(d: Mapping[str, Any], key: str, where: str, errors: list[str], nullable: bool = False) -> None:
    v = d.get(key)
    if v is None and nullable:
        return
    if not isinstance(v, str) or not v:
        errors.append(f"{where}.{key}: must be a non-empty string{' or null' if nullable else ''}, got {v!r}")


def _check_score(v: Any, where: str, errors: list[str]) -> None:
    if not _is_num(v):
        errors.append(f"{where}: must be a finite number, got {v!r}")
    elif not 0.0 <= float(v) <= 1.0:
        errors.append(f"{where}: must be in [0, 1], got {v!r}")


def _check_finding(f: Any, where: str, shape: Any, errors: list[str]) -> None:
    if not isinstance(f, dict):
        errors.append(f"{where}: must be an object, got {type(f).__name__}")
        return
    for key in _FINDING_KEYS:
        if key not in f:
            errors.append(f"{where}: missing key {key!r}")
    if "type" in f and f["type"] not in FINDING_TYPES:
        errors.append(f"{where}.type: must be one of {', '.join(FINDING_TYPES)}, got {f['type']!r}")
    if "score" in f:
        _check_score(f["score"], f"{where}.score", errors)
    centre, box = f.get("center_voxel"), f.get("bbox_voxel")
    if centre is not None and not _int_list(centre, 3):
        errors.append(f"{where}.center_voxel: must be 3 integers (z, y, x) or null, got {centre!r}")
        centre = None
    mm = f.get("center_mm")
    if mm is not None and not (_num_list(mm, 3) and all(not isinstance(x, bool) for x in mm)):
        errors.append(f"{where}.center_mm: must be 3 finite numbers (x, y, z) or null, got {mm!r}")
    if box is not None and not _int_list(box, 6):
        errors.append(f"{where}.bbox_voxel: must be 6 integers (z0, y0, x0, z1, y1, x1) or null, got {box!r}")
        box = None
    if box is not None:
        if any(box[i] < 0 or box[i + 3] <= box[i] for i in range(3)):
            errors.append(f"{where}.bbox_voxel: needs 0 <= start < end on every axis, got {box!r}")
        elif _int_list(shape, 3) and any(box[i + 3] > shape[i] for i in range(3)):
            errors.append(f"{where}.bbox_voxel: {box!r} exceeds the series shape {shape!r}")
    if centre is not None:
        if _int_list(shape, 3) and any(not 0 <= centre[i] < shape[i] for i in range(3)):
            errors.append(f"{where}.center_voxel: {centre!r} outside the series shape {shape!r}")
        if box is not None and any(not box[i] <= centre[i] < box[i + 3] for i in range(3)):
            errors.append(f"{where}.center_voxel: {centre!r} outside its bbox_voxel {box!r}")
    if "description" in f and not isinstance(f["description"], str):
        errors.append(f"{where}.description: must be a string")
    check = f.get("check")
    if check is not None and (not isinstance(check, str) or check.split(":")[0] not in METADATA_CHECKS):
        errors.append(f"{where}.check: must be one of {', '.join(METADATA_CHECKS)}, got {check!r}")


def _check_series(s: Any, where: str, errors: list[str]) -> None:
    if not isinstance(s, dict):
        errors.append(f"{where}: must be an object, got {type(s).__name__}")
        return
    for key in _SERIES_KEYS:
        if key not in s:
            errors.append(f"{where}: missing key {key!r}")
    _check_str(s, "path", where, errors)
    for key in ("series_uid", "modality"):
        if key in s:
            _check_str(s, key, where, errors, nullable=True)
    verdict = s.get("verdict")
    if verdict not in VERDICTS:
        errors.append(f"{where}.verdict: must be one of {', '.join(VERDICTS)}, got {verdict!r}")
    shape = s.get("shape")
    if shape is not None and not (_int_list(shape, 3) and all(v > 0 for v in shape)):
        errors.append(f"{where}.shape: must be 3 positive integers or null, got {shape!r}")
    spacing = s.get("spacing_mm")
    if spacing is not None and not (_num_list(spacing, 3) and all(v > 0 for v in spacing)):
        errors.append(f"{where}.spacing_mm: must be 3 positive numbers or null, got {spacing!r}")
    if s.get("score") is not None:
        _check_score(s["score"], f"{where}.score", errors)
    elif "score" in s and verdict not in ("error", None):
        errors.append(f"{where}.score: null is only allowed for verdict 'error'")
    if s.get("label") is not None and s["label"] not in LABELS:
        errors.append(f"{where}.label: must be one of {', '.join(LABELS)} or null, got {s['label']!r}")
    error = s.get("error")
    if verdict == "error":
        if not isinstance(error, str) or not error.strip() or "\n" in error:
            errors.append(f"{where}.error: verdict 'error' needs a one-line reason, got {error!r}")
    elif error is not None:
        errors.append(f"{where}.error: must be null unless verdict is 'error', got {error!r}")
    if "seconds" in s and not (_is_num(s["seconds"]) and s["seconds"] >= 0):
        errors.append(f"{where}.seconds: must be a number >= 0, got {s['seconds']!r}")
    findings = s.get("findings")
    if "findings" in s and not isinstance(findings, list):
        errors.append(f"{where}.findings: must be a list, got {type(findings).__name__}")
        return
    for k, f in enumerate(findings or []):
        _check_finding(f, f"{where}.findings[{k}]", shape, errors)
    scores: list[Any] = [f.get("score") for f in findings or [] if isinstance(f, dict)]
    ordered = [float(v) for v in scores if _is_num(v)]
    if len(ordered) == len(scores) and any(a < b for a, b in itertools.pairwise(ordered)):
        errors.append(f"{where}.findings: must be sorted by score, highest first, got {scores!r}")


def validate_report_dict(d: Any) -> list[str]:
    """Every way ``d`` breaks the scan JSON contract, one message each (empty list: valid)."""
    errors: list[str] = []
    if not isinstance(d, dict):
        return [f"report: must be an object, got {type(d).__name__}"]
    for key in ("tool", "model", "series"):
        if key not in d:
            errors.append(f"report: missing key {key!r}")
    tool = d.get("tool")
    if "tool" in d:
        if not isinstance(tool, dict):
            errors.append("tool: must be an object")
        else:
            if tool.get("name") != "medforensics":
                errors.append(f"tool.name: must be 'medforensics', got {tool.get('name')!r}")
            _check_str(tool, "version", "tool", errors)
    model = d.get("model")
    if "model" in d:
        if not isinstance(model, dict):
            errors.append("model: must be an object")
        else:
            for key in ("name", "version", "sha256"):
                _check_str(model, key, "model", errors)
            if "threshold" in model:
                _check_score(model["threshold"], "model.threshold", errors)
            if "precision" in model and model["precision"] not in PRECISIONS:
                got = model["precision"]
                errors.append(f"model.precision: must be one of {', '.join(PRECISIONS)}, got {got!r}")
    series = d.get("series")
    if "series" in d and not isinstance(series, list):
        errors.append(f"series: must be a list, got {type(series).__name__}")
    elif isinstance(series, list):
        for k, s in enumerate(series):
            _check_series(s, f"series[{k}]", errors)
    if "skipped" in d and not isinstance(d["skipped"], list):
        errors.append("skipped: must be a list")
    return errors
