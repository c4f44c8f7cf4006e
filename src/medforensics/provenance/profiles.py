"""Digital signature profiles (PS3.15 Annex C): which attributes a new signature covers.

- ``base``: Base RSA Digital Signature Profile (C.1): every signable element of the data set, RSA key.
- ``creator``: Creator RSA Digital Signature Profile (C.2): the attributes the profile requires if
  present (SOP Common UIDs and creation time, Study/Series UIDs, General Equipment, General Image, Image
  Pixel incl. Pixel Data, Overlay, Curve, Graphic Annotation, SR, Waveform, Multi-frame, Enhanced image
  modules), plus, because this is a forensics tool, the Image Plane and CT/MR acquisition geometry that
  an attacker would have to change. Patient and study demographics are left out, so a later correction
  of those does not break the creator's signature. RSA key.
- ``none``: no profile: every signable element, any supported key type (RSA or ECDSA).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset

from medforensics.errors import ConfigError, InputError
from medforensics.provenance.macstream import is_signable, signable_tags

ProfileName = Literal["base", "creator", "none"]
PROFILES: tuple[ProfileName, ...] = ("base", "creator", "none")

#: Attributes the Creator RSA profile requires unconditionally.
CREATOR_REQUIRED = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")

#: Attributes the Creator RSA profile (PS3.15 C.2, as DCMTK implements it) requires when present.
_CREATOR_IF_PRESENT = """
SOPClassUID SOPInstanceUID InstanceCreationDate InstanceCreationTime StudyInstanceUID SeriesInstanceUID
Manufacturer InstitutionName InstitutionAddress StationName InstitutionalDepartmentName
InstitutionalDepartmentTypeCodeSequence ManufacturerModelName DeviceSerialNumber SoftwareVersions GantryID
UDISequence DeviceUID SpatialResolution DateOfLastCalibration TimeOfLastCalibration PixelPaddingValue
OverlayRows OverlayColumns OverlayType OverlayOrigin OverlayBitsAllocated OverlayBitPosition OverlayData
OverlayDescription OverlaySubtype OverlayLabel ROIArea ROIMean ROIStandardDeviation
CurveDimensions NumberOfPoints DataValueRepresentation CurveData CurveDescription AxisUnits AxisLabels
MinimumCoordinateValue MaximumCoordinateValue CurveRange CurveDataDescriptor CoordinateStartValue
CoordinateStepValue CurveLabel ReferencedOverlaySequence GraphicAnnotationSequence
InstanceNumber PatientOrientation ContentDate ContentTime ImageType AcquisitionNumber AcquisitionDate
AcquisitionTime AcquisitionDateTime ImagesInAcquisition ImageComments QualityControlImage
BurnedInAnnotation RecognizableVisualFeatures LossyImageCompression LossyImageCompressionRatio
LossyImageCompressionMethod IconImageSequence PresentationLUTShape IrradiationEventUID
RealWorldValueMappingSequence ImageLaterality AnatomicRegionSequence PrimaryAnatomicStructureSequence
SamplesPerPixel PhotometricInterpretation Rows Columns BitsAllocated BitsStored HighBit PixelRepresentation
PlanarConfiguration PixelAspectRatio SmallestImagePixelValue LargestImagePixelValue
RedPaletteColorLookupTableDescriptor GreenPaletteColorLookupTableDescriptor
BluePaletteColorLookupTableDescriptor RedPaletteColorLookupTableData GreenPaletteColorLookupTableData
BluePaletteColorLookupTableData ICCProfile ColorSpace PixelData PixelDataProviderURL
PixelPaddingRangeLimit ExtendedOffsetTable ExtendedOffsetTableLengths FloatPixelData DoubleFloatPixelData
PreliminaryFlag CompletionFlag CompletionFlagDescription VerificationFlag VerifyingObserverSequence
AuthorObserverSequence ParticipantSequence CustodialOrganizationSequence PredecessorDocumentsSequence
IdenticalDocumentsSequence ReferencedRequestSequence PerformedProcedureCodeSequence
CurrentRequestedProcedureEvidenceSequence PertinentOtherEvidenceSequence ReferencedInstanceSequence
ValueType ConceptNameCodeSequence ContinuityOfContent ContentTemplateSequence ObservationDateTime
ObservationUID ContentSequence WaveformSequence WaveformDataDisplayScale
WaveformDisplayBackgroundCIELabValue WaveformPresentationGroupSequence WaveformAnnotationSequence
SharedFunctionalGroupsSequence PerFrameFunctionalGroupsSequence NumberOfFrames StereoPairsPresent
ConcatenationFrameOffsetNumber RepresentativeFrameNumber ConcatenationUID
SOPInstanceUIDOfConcatenationSource InConcatenationNumber InConcatenationTotalNumber
AcquisitionDuration ReferencedRawDataSequence ReferencedWaveformSequence ReferencedImageEvidenceSequence
SourceImageEvidenceSequence ReferencedPresentationStateSequence ContentQualification ResonantNucleus
KSpaceFiltering MagneticFieldStrength IsocenterPosition PixelPresentation VolumetricProperties
VolumeBasedCalculationTechnique ComplexImageComponent AcquisitionContrast ViewCodeSequence
SliceProgressionDirection MultienergyCTAcquisition RescaleIntercept RescaleSlope RescaleType
SourceImageSequence ReferencedImageSequence KVP XRayTubeCurrent ExposureTime Exposure FocalSpots
DocumentTitle MIMETypeOfEncapsulatedDocument EncapsulatedDocument EncapsulatedDocumentLength
SegmentationType SegmentationFractionalType MaximumFractionalValue SegmentsOverlap SegmentSequence
"""

#: Added by medforensics to the creator list: where the pixels are in the patient and how they were made.
_GEOMETRY = """
FrameOfReferenceUID PositionReferenceIndicator PixelSpacing ImageOrientationPatient ImagePositionPatient
SliceThickness SpacingBetweenSlices SliceLocation Modality ScanOptions DataCollectionDiameter
ReconstructionDiameter DistanceSourceToDetector DistanceSourceToPatient GantryDetectorTilt TableHeight
FilterType ConvolutionKernel PatientPosition WindowCenter WindowWidth ImagerPixelSpacing
"""

CREATOR_KEYWORDS: frozenset[str] = frozenset((_CREATOR_IF_PRESENT + _GEOMETRY).split())


@dataclass(frozen=True)
class Profile:
    """A signature profile: the attributes it covers and the key types it allows."""

    name: ProfileName
    rsa_only: bool
    description: str

    def select(self, ds: Dataset, path: str | None = None) -> list[int]:
        """The top-level tags of ``ds`` a new signature under this profile covers (ascending)."""
        if self.name != "creator":
            tags = signable_tags(ds)
        else:
            missing = [k for k in CREATOR_REQUIRED if k not in ds]
            if missing:
                raise InputError(f"creator profile needs {', '.join(missing)}", path=path)
            tags = [
                int(t)
                for t in sorted(ds.keys())
                if keyword_for_tag(t) in CREATOR_KEYWORDS and is_signable(ds, t)
            ]
        if not tags:
            raise InputError("nothing to sign: no signable data elements", path=path)
        return tags


_PROFILES = {
    "base": Profile("base", True, "Base RSA Digital Signature Profile: all signable elements"),
    "creator": Profile("creator", True, "Creator RSA Digital Signature Profile: creator attributes + pixels"),
    "none": Profile("none", False, "no profile: all signable elements, RSA or ECDSA"),
}


def get_profile(name: str) -> Profile:
    """The profile called ``name`` (``base``, ``creator`` or ``none``)."""
    try:
        return _PROFILES[name]
    except KeyError:
        raise ConfigError(
            f"unknown signature profile {name!r}; choose one of {', '.join(PROFILES)}"
        ) from None
