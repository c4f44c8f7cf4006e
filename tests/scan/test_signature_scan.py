"""Scan reports the signature status of each series beside the learned verdict (issue 6)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom

from medforensics.provenance import create_test_pki, load_certificate, load_private_key, sign_file
from medforensics.scan.detector import Detector
from medforensics.scan.pipeline import scan_paths


def _signed_copy(series: Path, out: Path, keys: Path) -> Path:
    pki = create_test_pki(keys)
    key, cert = load_private_key(pki.signer_key), load_certificate(pki.signer_cert)
    out.mkdir(parents=True)
    for f in sorted(series.iterdir()):
        sign_file(f, out / f.name, key, cert)
    return out


def test_signed_series_is_valid_and_a_changed_pixel_is_a_finding(
    tmp_path: Path, ct_series: Path, detector: Detector
) -> None:
    signed = _signed_copy(ct_series, tmp_path / "signed", tmp_path / "keys")
    trusted = [load_certificate(tmp_path / "keys" / "ca.pem")]
    report, _ = scan_paths([signed], detector=detector, trusted=trusted, explain=None, keep_volumes=False)
    assert report.series[0].signature == "valid"
    assert not [f for f in report.series[0].findings if f.type == "signature"]

    tampered = tmp_path / "tampered"
    shutil.copytree(signed, tampered)
    victim = sorted(tampered.iterdir())[3]
    ds = pydicom.dcmread(victim)
    arr = ds.pixel_array.copy()
    arr[10, 10] += 1
    ds.PixelData = arr.tobytes()
    ds.save_as(victim)
    report, _ = scan_paths([tampered], detector=detector, trusted=trusted, explain=None, keep_volumes=False)
    series = report.series[0]
    assert series.signature == "invalid"
    sig = [f for f in series.findings if f.type == "signature"]
    assert len(sig) == 1 and sig[0].score == 1.0
    assert report.to_dict()["series"][0]["signature"] == "invalid"
