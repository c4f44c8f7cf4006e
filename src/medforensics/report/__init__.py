"""Scan outputs: JSON (the contract), a self-contained HTML report, DICOM SR (TID 1500) and DICOM SEG.

Names are imported lazily so that ``write_json`` does not pay for highdicom or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "write_json": "json_report",
    "load_json": "json_report",
    "validate_report_dict": "json_report",
    "write_html": "html",
    "render_html": "html",
    "write_sr": "dicom_sr",
    "build_sr": "dicom_sr",
    "write_sr_for_report": "dicom_sr",
    "write_seg": "dicom_seg",
    "build_seg": "dicom_seg",
    "write_seg_for_report": "dicom_seg",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'medforensics.report' has no attribute {name!r}")
    return getattr(importlib.import_module(f"medforensics.report.{module}"), name)
