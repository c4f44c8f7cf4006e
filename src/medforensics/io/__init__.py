"""Readers and writers producing/consuming :class:`~medforensics.io.volume.Volume`."""

from medforensics.io.dicom import discover_dicom_series, is_dicom_file, read_dicom_series
from medforensics.io.dicom_write import write_dicom_series
from medforensics.io.image2d import WINDOWS, apply_window, read_image2d, write_png
from medforensics.io.metaimage import read_metaimage, write_metaimage
from medforensics.io.nifti import read_nifti, write_nifti
from medforensics.io.reader import Discovery, SeriesRef, Skipped, discover, load, read_volume
from medforensics.io.volume import Volume

__all__ = [
    "WINDOWS",
    "Discovery",
    "SeriesRef",
    "Skipped",
    "Volume",
    "apply_window",
    "discover",
    "discover_dicom_series",
    "is_dicom_file",
    "load",
    "read_dicom_series",
    "read_image2d",
    "read_metaimage",
    "read_nifti",
    "read_volume",
    "write_dicom_series",
    "write_metaimage",
    "write_nifti",
    "write_png",
]
