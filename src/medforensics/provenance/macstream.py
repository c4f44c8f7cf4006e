"""The byte stream a DICOM digital signature's MAC is computed over (PS3.15 Annex C, PS3.3 C.12.1.1.3).

The stream is the concatenation of the signed data elements, in ascending tag order, encoded in the MAC
Calculation Transfer Syntax (always Explicit VR Little Endian here), followed by the signable elements of
the Digital Signatures Sequence item except Certificate of Signer, Signature, Certified Timestamp Type and
Certified Timestamp. Encoding follows the reference implementation (DCMTK ``writeSignatureFormat``):

- ordinary elements are encoded exactly as in a file: tag, VR, (reserved,) length, even-padded value;
- a sequence is written as tag + VR + 2 reserved bytes and *no length*, then each item as the item tag
  (FFFE,E000) with no length and no item delimiter, then the sequence delimitation tag (FFFE,E0DD) with
  no length;
- encapsulated pixel data is written like a sequence: tag + VR + 2 reserved bytes, then each item (the
  offset table, then the fragments) as its tag and value with *no length*, then (FFFE,E0DD).

Not signable (never in the stream): group lengths (gggg,0000), Length to End (0008,0001), groups below
0008 (file meta information), group FFFA (Digital Signatures Sequence), MAC Parameters Sequence
(4FFE,0001), Data Set Trailing Padding (FFFC,FFFC), delimiters, and elements with VR UN (or sequences that
contain one).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import correct_ambiguous_vr_element, write_data_element
from pydicom.tag import BaseTag

#: Explicit VR Little Endian, the only MAC Calculation Transfer Syntax supported.
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"

_EXTENDED_LENGTH_VRS = frozenset(
    {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
)
_ITEM = 0xFFFEE000
_SEQ_DELIM = 0xFFFEE0DD
_ITEM_DELIM = 0xFFFEE00D
#: Elements of a Digital Signatures Sequence item that are left out of the MAC.
SIGNATURE_ITEM_EXCLUDED = frozenset({0x04000115, 0x04000120, 0x04000305, 0x04000310})
DIGITAL_SIGNATURES_SEQUENCE = 0xFFFAFFFA
MAC_PARAMETERS_SEQUENCE = 0x4FFE0001


def is_signable_tag(tag: int) -> bool:
    """Whether a tag may ever be part of a signature (PS3.15 C.x rules as DCMTK applies them)."""
    group, element = tag >> 16, tag & 0xFFFF
    if element == 0 or group < 0x0008 or group == 0xFFFA:
        return False
    return tag not in (0x00080001, MAC_PARAMETERS_SEQUENCE, 0xFFFCFFFC, _ITEM_DELIM, _SEQ_DELIM)


def _tag_bytes(tag: int) -> bytes:
    return struct.pack("<HH", tag >> 16, tag & 0xFFFF)


def element_vr(ds: Dataset, tag: BaseTag) -> str:
    """The VR an element is (or will be) written with in explicit VR: the on-disk VR where there is one."""
    raw = ds.get_item(tag)
    if isinstance(raw, RawDataElement):
        if raw.VR is not None and not raw.is_implicit_VR:
            return str(raw.VR)
        return _converted(ds, tag).VR
    assert raw is not None
    vr = str(raw.VR)
    if " or " in vr:
        vr = _converted(ds, tag).VR
    return vr


def _converted(ds: Dataset, tag: BaseTag) -> DataElement:
    raw = ds.get_item(tag)
    elem = (
        convert_raw_data_element(raw, encoding=ds._character_set, ds=ds)
        if isinstance(raw, RawDataElement)
        else raw
    )
    assert isinstance(elem, DataElement)
    if " or " in elem.VR:
        fixed = correct_ambiguous_vr_element(elem, ds, True)
        assert isinstance(fixed, DataElement)
        return fixed
    return elem


def is_signable(ds: Dataset, tag: BaseTag) -> bool:
    """Whether the element at ``tag`` of ``ds`` can be signed (signable tag, no UN anywhere inside)."""
    if not is_signable_tag(int(tag)):
        return False
    vr = element_vr(ds, tag)
    if vr == "UN":
        return False
    if vr == "SQ":
        return all(not _contains_un(item) for item in ds[tag].value)
    return True


def _contains_un(item: Dataset) -> bool:
    for tag in item.keys():  # noqa: SIM118 - iterating a Dataset yields elements, not tags
        vr = element_vr(item, tag)
        if vr == "UN":
            return True
        if vr == "SQ" and any(_contains_un(sub) for sub in item[tag].value):
            return True
    return False


def _value_bytes(ds: Dataset, tag: BaseTag, vr: str) -> bytes:
    """The even-length Little Endian value field of an element."""
    raw = ds.get_item(tag)
    if isinstance(raw, RawDataElement) and raw.is_little_endian and raw.value is not None:
        value = bytes(raw.value)
    else:
        elem = _converted(ds, tag)
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, True  # implicit: value follows an 8-byte header
        write_data_element(fp, DataElement(elem.tag, vr, elem.value), ds._character_set)
        value = fp.getvalue()[8:]
    if len(value) % 2:
        value += b" " if vr in _STRING_VRS else b"\x00"
    return value


_STRING_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UR", "UT"}
)


def _encapsulated_fragments(value: bytes) -> list[bytes]:
    """Items (offset table first, then fragments) of an encapsulated Pixel Data value."""
    items: list[bytes] = []
    offset = 0
    while offset + 8 <= len(value):
        group, element, length = struct.unpack_from("<HHL", value, offset)
        tag = (group << 16) | element
        if tag == _SEQ_DELIM:
            break
        if tag != _ITEM:
            raise ValueError(f"unexpected tag {tag:08X} in encapsulated pixel data")
        items.append(value[offset + 8 : offset + 8 + length])
        offset += 8 + length
    return items


def encode_element(ds: Dataset, tag: BaseTag) -> bytes:
    """One element of ``ds`` in signature format (Explicit VR Little Endian)."""
    vr = element_vr(ds, tag)
    head = _tag_bytes(int(tag)) + vr.encode("ascii")
    if vr == "SQ":
        parts = [head, b"\x00\x00"]
        for item in ds[tag].value:
            parts.append(_tag_bytes(_ITEM))
            parts.append(encode_dataset(item, None))
        parts.append(_tag_bytes(_SEQ_DELIM))
        return b"".join(parts)
    raw = ds.get_item(tag)
    if isinstance(raw, RawDataElement):
        undefined = raw.length == 0xFFFFFFFF
    else:
        undefined = bool(raw is not None and raw.is_undefined_length)
    if undefined and vr in ("OB", "OW"):  # encapsulated pixel data: items are tag + value, no length
        value = raw.value if isinstance(raw, RawDataElement) else ds[tag].value
        parts = [head, b"\x00\x00"]
        for fragment in _encapsulated_fragments(bytes(value)):
            parts.append(_tag_bytes(_ITEM) + fragment + (b"\x00" if len(fragment) % 2 else b""))
        parts.append(_tag_bytes(_SEQ_DELIM))
        return b"".join(parts)
    value = _value_bytes(ds, tag, vr)
    if vr in _EXTENDED_LENGTH_VRS:
        return head + struct.pack("<HL", 0, len(value)) + value
    if len(value) > 0xFFFF:
        raise ValueError(f"value of ({int(tag) >> 16:04X},{int(tag) & 0xFFFF:04X}) too long for VR {vr}")
    return head + struct.pack("<H", len(value)) + value


def encode_dataset(ds: Dataset, tags: Iterable[int] | None) -> bytes:
    """Elements of ``ds`` (all, or those in ``tags``) in ascending tag order, in signature format.

    Top-level selection skips unsignable elements when ``tags`` is None (items of sequences are written
    whole, as DCMTK does).
    """
    wanted = None if tags is None else {int(t) for t in tags}
    parts = []
    for tag in sorted(ds.keys()):
        if wanted is not None and int(tag) not in wanted:
            continue
        parts.append(encode_element(ds, tag))
    return b"".join(parts)


def signable_tags(ds: Dataset) -> list[int]:
    """All signable top-level tags of ``ds``, ascending."""
    return [int(t) for t in sorted(ds.keys()) if is_signable(ds, t)]


def signature_item_stream(item: Dataset) -> bytes:
    """The part of a Digital Signatures Sequence item that is included in the MAC."""
    parts = []
    for tag in sorted(item.keys()):
        if int(tag) in SIGNATURE_ITEM_EXCLUDED or not is_signable(item, tag):
            continue
        parts.append(encode_element(item, tag))
    return b"".join(parts)


def mac_stream(ds: Dataset, tags: Iterable[int], signature_item: Dataset) -> bytes:
    """The whole byte stream: the signed elements of ``ds`` followed by the signature item's fields."""
    return encode_dataset(ds, tags) + signature_item_stream(signature_item)


__all__ = [
    "EXPLICIT_VR_LE",
    "encode_dataset",
    "encode_element",
    "is_signable",
    "is_signable_tag",
    "mac_stream",
    "signable_tags",
    "signature_item_stream",
]
