"""Published data-set formats: LIDC-IDRI reader XML, LUNA16 annotations.csv, the CT-GAN tamper layout, and
lesion label maps."""

from medforensics.io.datasets.ctgan import (
    CTGANDataset,
    CTGANLabel,
    MissingScan,
    Sample,
    read_ctgan_labels,
    write_ctgan_labels,
)
from medforensics.io.datasets.labelmap import label_map_beside, label_map_nodules
from medforensics.io.datasets.lidc import (
    LidcReads,
    ReaderNodule,
    find_lidc_xml,
    group_nodules,
    load_lidc_annotations,
    nodule_mask,
    parse_lidc_xml,
)
from medforensics.io.datasets.luna16 import luna16_nodules, read_luna16_annotations

__all__ = [
    "CTGANDataset",
    "CTGANLabel",
    "LidcReads",
    "MissingScan",
    "ReaderNodule",
    "Sample",
    "find_lidc_xml",
    "group_nodules",
    "label_map_beside",
    "label_map_nodules",
    "load_lidc_annotations",
    "luna16_nodules",
    "nodule_mask",
    "parse_lidc_xml",
    "read_ctgan_labels",
    "read_luna16_annotations",
    "write_ctgan_labels",
]
