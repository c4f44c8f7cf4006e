"""``keys create`` with bad values and outputs (a fuzz, session 25): one-line errors before any key is
made, and a key set is never left half replaced."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medforensics.cli import app
from medforensics.errors import ConfigError, OutputError
from medforensics.provenance.keys import create_test_pki

runner = CliRunner()
NAMES = ("ca.pem", "ca-key.pem", "signer.pem", "signer-key.pem")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"common_name": ""}, "1 to 64 characters"),  # was ValueError from x509
        ({"common_name": "x" * 65}, "1 to 64 characters"),
        ({"days": 3_000_000}, "9999-12-31"),  # was OverflowError
        ({"days": 10**30}, "9999-12-31"),
    ],
)
def test_bad_name_or_validity_is_a_config_error(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_test_pki(tmp_path / "k", algorithm="ecdsa", **kwargs)
    assert not (tmp_path / "k").exists()


def test_a_64_character_name_and_the_longest_validity_work(tmp_path: Path) -> None:
    import datetime as dt

    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    days = (dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC) - (now - dt.timedelta(hours=1))).days
    pki = create_test_pki(tmp_path, algorithm="ecdsa", common_name="x" * 64, days=days, now=now)
    assert pki.signer_cert.is_file()


def test_cli_bad_name_and_days_exit_2_in_one_line(tmp_path: Path) -> None:
    for args in (["--name", ""], ["--name", "n" * 100], ["--days", "3000000"]):
        res = runner.invoke(app, ["keys", "create", "--out", str(tmp_path / "k"), *args])
        assert res.exit_code == 2 and "internal error" not in res.output, args
        assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "k").exists()


@pytest.mark.parametrize("where", ["a file", "under a file", "read-only parent"])
def test_an_out_that_cannot_be_a_folder_is_an_output_error(tmp_path: Path, where: str) -> None:
    afile = tmp_path / "afile.txt"
    afile.write_text("keep")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if where == "read-only parent" and os.access(ro, os.W_OK):
        pytest.skip("running as root: a read-only folder is writable")
    out = {"a file": afile, "under a file": afile / "k", "read-only parent": ro / "k"}[where]
    try:
        with pytest.raises(OutputError):
            create_test_pki(out, algorithm="ecdsa")
    finally:
        ro.chmod(0o755)
    assert afile.read_text() == "keep"


def test_force_over_a_set_with_a_folder_in_it_replaces_nothing(tmp_path: Path) -> None:
    create_test_pki(tmp_path, algorithm="ecdsa")
    (tmp_path / "signer.pem").unlink()
    (tmp_path / "signer.pem").mkdir()  # ca-key.pem, signer-key.pem and ca.pem were replaced first
    before = {n: (tmp_path / n).read_bytes() for n in NAMES if n != "signer.pem"}
    with pytest.raises(OutputError, match="folder"):
        create_test_pki(tmp_path, algorithm="ecdsa", force=True)
    assert {n: (tmp_path / n).read_bytes() for n in NAMES if n != "signer.pem"} == before
