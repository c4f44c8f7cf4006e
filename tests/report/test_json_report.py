"""JSON writing, loading and the contract validator."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medforensics.errors import InputError
from medforensics.io.volume import Volume
from medforensics.report.json_report import load_json, validate_report_dict, write_json
from tests.report._helpers import make_report


@pytest.fixture
def report_dict() -> dict[str, Any]:
    volume = Volume(np.zeros((8, 64, 64), dtype=np.float32), spacing=(2.5, 1.4, 1.4), modality="CT")
    return make_report(volume, "/data/study1/ct").to_dict()


def test_valid_report_passes(report_dict: dict[str, Any]) -> None:
    assert validate_report_dict(report_dict) == []
    assert [f["score"] for f in report_dict["series"][0]["findings"]] == [0.91, 0.7, 0.42, 0.3]


def test_write_and_load_round_trip(tmp_path: Path, report_dict: dict[str, Any]) -> None:
    volume = Volume(np.zeros((8, 64, 64), dtype=np.float32), modality="CT")
    report = make_report(volume, "/data/étude/ct")  # non-ASCII path stays readable UTF-8
    out = write_json(report, tmp_path / "sub" / "scan.json", validate=True)
    text = out.read_text(encoding="utf-8")
    assert "étude" in text and text.startswith('{\n  "tool"')
    assert load_json(out) == json.loads(json.dumps(report.to_dict()))
    assert [p.name for p in out.parent.iterdir()] == ["scan.json"]  # no temporary left behind


def test_write_refuses_nan_and_invalid(tmp_path: Path, report_dict: dict[str, Any]) -> None:
    bad = copy.deepcopy(report_dict)
    bad["series"][0]["score"] = float("nan")
    with pytest.raises(ValueError):
        write_json(bad, tmp_path / "nan.json")
    assert not (tmp_path / "nan.json").exists()
    bad["series"][0]["score"] = 1.5
    with pytest.raises(ValueError, match=r"series\[0\]\.score"):
        write_json(bad, tmp_path / "bad.json", validate=True)


def test_load_json_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_json(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match=r"broken\.json"):
        load_json(tmp_path / "broken.json")
    (tmp_path / "list.json").write_text("[]", encoding="utf-8")
    with pytest.raises(InputError, match="object"):
        load_json(tmp_path / "list.json")


def _set(d: dict[str, Any], dotted: str, value: Any) -> None:
    keys = [int(k) if k.isdigit() else k for k in dotted.split(".")]
    target: Any = d
    for key in keys[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value


_DELETE = object()

BROKEN = [
    ("tool", _DELETE, "missing key 'tool'"),
    ("tool.name", "other", "tool.name"),
    ("model.sha256", "", "model.sha256"),
    ("model.threshold", 2.0, "model.threshold"),
    ("model.precision", "fp16", "model.precision: must be one of fp32, bf16"),
    ("series", {}, "series: must be a list"),
    ("series.0.path", None, "series[0].path"),
    ("series.0.verdict", "fake", "series[0].verdict"),
    ("series.0.score", 1.01, "series[0].score"),
    ("series.0.score", None, "null is only allowed for verdict 'error'"),
    ("series.0.score", True, "series[0].score"),
    ("series.0.label", "XX", "series[0].label"),
    ("series.0.shape", [8, 64], "series[0].shape"),
    ("series.0.spacing_mm", [2.5, 0, 1], "series[0].spacing_mm"),
    ("series.0.error", "oops", "must be null unless verdict is 'error'"),
    ("series.2.error", None, "series[2].error"),
    ("series.2.error", "two\nlines", "series[2].error"),
    ("series.0.seconds", -1, "series[0].seconds"),
    ("series.0.findings", "none", "series[0].findings: must be a list"),
    ("series.0.findings.0.type", "forged", "findings[0].type"),
    ("series.0.findings.0.score", -0.1, "findings[0].score"),
    ("series.0.findings.0.center_voxel", [3, 25], "findings[0].center_voxel: must be 3 integers"),
    ("series.0.findings.0.center_voxel", [3.0, 25, 30], "findings[0].center_voxel: must be 3 integers"),
    ("series.0.findings.0.center_voxel", [3, 25, 40], "outside its bbox_voxel"),
    ("series.0.findings.0.center_voxel", [9, 25, 30], "outside the series shape"),
    ("series.0.findings.0.center_mm", [1.0, "2", 3.0], "findings[0].center_mm"),
    ("series.0.findings.0.bbox_voxel", [2, 20, 24, 5, 30], "findings[0].bbox_voxel: must be 6 integers"),
    ("series.0.findings.0.bbox_voxel", [2, 20, 24, 2, 30, 36], "start < end"),
    ("series.0.findings.0.bbox_voxel", [2, 20, 24, 5, 30, 99], "exceeds the series shape"),
    ("series.0.findings.1.score", 0.95, "must be sorted by score"),
    ("series.0.findings.0.type", _DELETE, "missing key 'type'"),
    ("series.0.findings.0.check", "noise", "findings[0].check: must be one of"),
    ("series.0.findings.0.check", 3, "findings[0].check: must be one of"),
]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    BROKEN,
    ids=[f"{b[0]}=" + ("<deleted>" if b[1] is _DELETE else repr(b[1])) for b in BROKEN],
)
def test_each_broken_field_is_reported(
    report_dict: dict[str, Any], field: str, value: Any, message: str
) -> None:
    bad = copy.deepcopy(report_dict)
    _set(bad, field, value)
    problems = validate_report_dict(bad)
    assert problems, f"{field}={value!r} was not reported"
    assert any(message in p for p in problems), problems


def test_named_checks_pass(report_dict: dict[str, Any]) -> None:
    for check in ("added_noise", "tag:KVP"):
        good = copy.deepcopy(report_dict)
        _set(good, "series.0.findings.0.check", check)
        assert validate_report_dict(good) == []


def test_non_object_report() -> None:
    assert validate_report_dict([]) == ["report: must be an object, got list"]
