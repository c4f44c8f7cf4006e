"""Names that are not UTF-8: their bytes for hashes, ``\\xNN`` in reports."""

from __future__ import annotations

import os

from medforensics._atomic import write_text_atomic
from medforensics._text import fs_bytes, printable, printable_tree
from medforensics.logging import short_hash

LATIN1 = os.fsdecode(b"Thorax_\xc4/ser\xff")  # how Python hands over a Latin-1 file name


def test_fs_bytes_gives_the_name_back_and_utf8_text_unchanged() -> None:
    assert fs_bytes(LATIN1) == b"Thorax_\xc4/ser\xff"
    assert fs_bytes("Thorax_Ä") == "Thorax_Ä".encode()
    assert fs_bytes("\ud800") == b"\xed\xa0\x80"  # a lone surrogate no file name made


def test_printable_writes_undecodable_bytes_as_hex_and_keeps_the_rest() -> None:
    assert printable(LATIN1) == "Thorax_\\xc4/ser\\xff"
    assert printable("Thorax_Ä µm") == "Thorax_Ä µm"
    tree = printable_tree({LATIN1: [LATIN1, 1.5, None], "k": ("a", LATIN1)})
    assert tree == {
        "Thorax_\\xc4/ser\\xff": ["Thorax_\\xc4/ser\\xff", 1.5, None],
        "k": ["a", "Thorax_\\xc4/ser\\xff"],
    }


def test_hashes_and_text_files_take_such_names(tmp_path: os.PathLike[str]) -> None:
    assert short_hash(LATIN1) != short_hash("Thorax_\\xc4/ser\\xff")
    assert short_hash("Thorax_Ä") == short_hash("Thorax_Ä") and len(short_hash(LATIN1)) == 12
    out = write_text_atomic(os.path.join(tmp_path, "r.html"), f"<p>{LATIN1}</p>")
    assert out.read_text(encoding="utf-8") == "<p>Thorax_\\xc4/ser\\xff</p>"
