"""Coded concepts used in the DICOM SR and SEG outputs (one place, documented).

Standard codes (DCM, SCT, UCUM) are used where DICOM has one. Concepts without a standard code use the
private coding scheme ``99MEDFOR`` (DICOM PS3.16 8.2: a designator starting with "99" is private); every
SR and SEG we write declares it in its Coding Scheme Identification Sequence (0008,0110).

========  ==================================  ============================================================
value     meaning                             used as
========  ==================================  ============================================================
MF0001    Medical image forensic analysis     SR: Procedure Reported
MF0010    Tamper verdict                      SR: qualitative evaluation name (series verdict)
MF0011    Authentic image                     SR: verdict value ``authentic``
MF0012    Tampered image                      SR: verdict value ``tampered``
MF0013    Synthetic image                     SR: verdict value ``synthetic``
MF0020    Tamper probability                  SR: measurement name (series and finding scores, in [0, 1])
MF0021    Synthesis probability               SR: the same for a 2-D synthesis detector's scores
MF0030    Tamper finding type                 SR: qualitative evaluation name (finding type)
MF0031    Injected lesion                     finding type ``injected`` (SR value, SEG property type)
MF0032    Removed lesion                      finding type ``removed``
MF0033    Synthetic content                   finding type ``synthetic``
MF0034    Metadata inconsistency              finding type ``metadata``
MF0035    Signature failure                   finding type ``signature``
MF0040    CT-GAN label                        SR: qualitative evaluation name (series label)
MF0041    True benign (TB)                    label ``TB`` (no nodule, untouched)
MF0042    True malignant (TM)                 label ``TM`` (real nodule, untouched)
MF0043    False benign (FB)                   label ``FB`` (nodule removed)
MF0044    False malignant (FM)                label ``FM`` (nodule injected)
MF0045    Synthetic (SYN)                     label ``SYN`` (fully synthetic image)
MF0046    CT-GAN label basis                  SR: TEXT evaluation of a TM series' group (``extra.nodules``)
MF0050    Tampered region                     SR: Finding of each region group; SEG fallback property type
MF0060    Scan caveat                         SR: TEXT evaluation of the series group (``extra.caveats``)
========  ==================================  ============================================================
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

#: Private coding scheme designator of medforensics.
SCHEME = "99MEDFOR"
SCHEME_NAME = "medforensics private codes"
SCHEME_ORGANIZATION = "medforensics project"


def _c(value: str, meaning: str) -> Code:
    return Code(value, SCHEME, meaning)


PROCEDURE_FORENSIC_ANALYSIS = _c("MF0001", "Medical image forensic analysis")
TAMPER_VERDICT = _c("MF0010", "Tamper verdict")
TAMPER_PROBABILITY = _c("MF0020", "Tamper probability")
SYNTHESIS_PROBABILITY = _c("MF0021", "Synthesis probability")
TAMPER_FINDING_TYPE = _c("MF0030", "Tamper finding type")
CTGAN_LABEL = _c("MF0040", "CT-GAN label")
LABEL_BASIS = _c("MF0046", "CT-GAN label basis")
TAMPERED_REGION = _c("MF0050", "Tampered region")
SCAN_CAVEAT = _c("MF0060", "Scan caveat")

#: Series verdict -> coded value (``error`` has none: errored series get no SR).
VERDICT_CODES: dict[str, Code] = {
    "authentic": _c("MF0011", "Authentic image"),
    "tampered": _c("MF0012", "Tampered image"),
    "synthetic": _c("MF0013", "Synthetic image"),
}

#: Finding type -> coded value.
FINDING_TYPE_CODES: dict[str, Code] = {
    "injected": _c("MF0031", "Injected lesion"),
    "removed": _c("MF0032", "Removed lesion"),
    "synthetic": _c("MF0033", "Synthetic content"),
    "metadata": _c("MF0034", "Metadata inconsistency"),
    "signature": _c("MF0035", "Signature failure"),
}

#: CT-GAN label -> coded value.
LABEL_CODES: dict[str, Code] = {
    "TB": _c("MF0041", "True benign (TB)"),
    "TM": _c("MF0042", "True malignant (TM)"),
    "FB": _c("MF0043", "False benign (FB)"),
    "FM": _c("MF0044", "False malignant (FM)"),
    "SYN": _c("MF0045", "Synthetic (SYN)"),
}

#: Unit of probabilities: UCUM "{probability}" (an annotation of the unit 1).
UNIT_PROBABILITY = Code("{probability}", "UCUM", "probability")

#: SEG segmented property category (SCT 49755003, "Morphologically Altered/Abnormal Structure").
CATEGORY_ALTERED_STRUCTURE: Code = codes.SCT.MorphologicallyAbnormalStructure

#: Algorithm family of the detector (DCM 123110 "Artificial Intelligence").
FAMILY_AI: Code = codes.cid7162.ArtificialIntelligence


def finding_type_code(finding_type: str) -> Code:
    """The coded value of a finding type (``Tampered region`` for an unknown one)."""
    return FINDING_TYPE_CODES.get(finding_type, TAMPERED_REGION)


def coding_scheme_identification() -> Dataset:
    """One item of the Coding Scheme Identification Sequence declaring :data:`SCHEME`."""
    item = Dataset()
    item.CodingSchemeDesignator = SCHEME
    item.CodingSchemeName = SCHEME_NAME
    item.CodingSchemeResponsibleOrganization = SCHEME_ORGANIZATION
    return item
