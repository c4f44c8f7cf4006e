"""Registry, record and the attack contract (determinism, exact mask, metadata untouched)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medforensics.errors import ConfigError, InputError
from medforensics.forge.base import AttackRecord, create_attack, list_attacks, run_attack
from medforensics.io.volume import Volume
from tests.forge._ctdata import chest_ct, ct_crop  # noqa: F401

CLASSICAL_INJECT = ["blob-inject"]


def test_unknown_attack_lists_known_names() -> None:
    with pytest.raises(ConfigError) as err:
        create_attack("no-such-attack")
    assert "blob-inject" in str(err.value) and "ctgan-inject" in str(err.value)


def test_list_by_kind() -> None:
    inject, remove = list_attacks("inject"), list_attacks("remove")
    assert {"ctgan-inject", "copy-move", "blob-inject"} <= set(inject)
    assert {"ctgan-remove", "inpaint-remove"} <= set(remove)
    assert not set(inject) & set(remove)
    assert set(inject) | set(remove) <= set(list_attacks())
    with pytest.raises(ConfigError):
        list_attacks("paint")


def test_record_is_json() -> None:
    rec = AttackRecord(
        "blob-inject",
        "inject",
        "FM",
        {"a": np.float32(1.5), "c": (1, 2)},
        3,
        (1, 2, 3),
        (0.0, 1.0, 2.0),
        None,
    )
    d = json.loads(json.dumps(rec.to_dict()))
    assert d["params"] == {"a": 1.5, "c": [1, 2]} and d["center_voxel"] == [1, 2, 3] and d["label"] == "FM"


@pytest.mark.parametrize("name", ["blob-inject", "inpaint-remove"])
def test_contract(name: str, ct_crop: Volume) -> None:  # noqa: F811
    before = ct_crop.array.copy()
    center = (10, 60, 50)
    out1, mask1, rec1 = run_attack(name, ct_crop, seed=5, center=center)
    out2, _mask2, rec2 = run_attack(name, ct_crop, seed=5, center=center)
    out3, _, rec3 = run_attack(name, ct_crop, seed=6, center=center)
    np.testing.assert_array_equal(ct_crop.array, before)  # input untouched
    np.testing.assert_array_equal(out1.array, out2.array)  # deterministic
    assert rec1.to_dict() == rec2.to_dict()
    assert not np.array_equal(out1.array, out3.array) and rec1.params != rec3.params
    np.testing.assert_array_equal(mask1, out1.array != ct_crop.array)  # mask == changed voxels
    assert mask1.dtype == bool and 50 < mask1.sum() < mask1.size // 10
    assert out1.metadata == ct_crop.metadata and out1.spacing == ct_crop.spacing
    np.testing.assert_array_equal(out1.direction, ct_crop.direction)
    assert rec1.center_voxel == center and rec1.bbox_voxel is not None
    z0, y0, x0, z1, y1, x1 = rec1.bbox_voxel
    assert mask1[z0:z1, y0:y1, x0:x1].sum() == mask1.sum()
    assert np.allclose(rec1.center_mm, ct_crop.index_to_patient(center), atol=1e-2)
    if rec1.kind == "inject":
        assert out1.array[center] > ct_crop.array[center] + 300  # a solid nodule appeared


def test_bad_inputs(ct_crop: Volume) -> None:  # noqa: F811
    attack = create_attack("blob-inject")
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="outside"):
        attack.sample_params(ct_crop, rng, center=(10, 500, 50))
    with pytest.raises(InputError, match="axis x"):
        attack.sample_params(ct_crop, rng, center=(10, 60, 2))
    mr = Volume(ct_crop.array, spacing=ct_crop.spacing, modality="MR")
    with pytest.raises(InputError, match="CT"):
        attack.sample_params(mr, rng, center=(10, 60, 50))
    with pytest.raises(ConfigError, match="annotations"):
        create_attack("inpaint-remove").sample_params(ct_crop, rng)
