"""Mirror views drawn only in boxes: the same mean as a full pass there, the first view elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from medforensics.models.tamperseg import TamperSegNet, predict_map
from medforensics.models.view_refine import WHOLE_ABOVE, refine_boxes, refine_views

#: Beyond the reach of :func:`_net` (a one-voxel change moves its logits up to 14 slices and 25 pixels
#: away): crops with this context give the full pass's values exactly.
FULL_CONTEXT = (15, 26, 26)
REACH = (2, 3, 3)


def _net() -> TamperSegNet:
    torch.manual_seed(0)
    return TamperSegNet(1, 3, (4, 8, 8), dropout=0.0).eval()  # three levels: a (2, 4, 4) pooling grid


def _inside(boxes: list[list[tuple[int, int]]], shape: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(shape, bool)
    for b in boxes:
        mask[tuple(slice(lo, hi) for lo, hi in b)] = True
    return mask


@pytest.mark.parametrize("views", [4, 8])  # 8: the transposed views too, on a volume that is not square
def test_boxes_get_the_mean_of_every_view_and_the_rest_keeps_the_first(views: int) -> None:
    net = _net()
    shape = (40, 121, 131)  # no size a multiple of the grid: a flipped view's grid starts at the far end
    img = torch.rand(1, *shape)
    one = predict_map(net, img, precision="fp32")
    four = predict_map(net, img, precision="fp32", views=views)
    where = np.zeros(shape, bool)
    where[6, 10, 12] = where[33, 110, 118] = True  # two far corners: two boxes
    prob = one.clone()
    done = refine_views(net, img, prob, where, views, REACH, "fp32", FULL_CONTEXT)
    boxes = refine_boxes(where, REACH, FULL_CONTEXT)
    assert done["boxes"] == len(boxes) == 2 and 0 < done["scored"] < WHOLE_ABOVE
    inside = torch.from_numpy(_inside(boxes, shape))
    assert 0 < int(inside.sum()) < inside.numel() // 10
    torch.testing.assert_close(prob[:, inside], four[:, inside], atol=1e-6, rtol=1e-5)
    assert torch.equal(prob[:, ~inside], one[:, ~inside])
    assert not torch.allclose(one[:, inside], four[:, inside], atol=1e-3)  # the views differ there


def test_a_small_context_stays_close_to_the_full_pass_near_the_voxels() -> None:
    net = _net()
    shape = (40, 121, 131)
    img = torch.rand(1, *shape)
    four = predict_map(net, img, precision="fp32", views=4)
    where = np.zeros(shape, bool)
    where[20, 60, 65] = True
    prob = predict_map(net, img, precision="fp32")
    refine_views(net, img, prob, where, 4, REACH, "fp32", (6, 10, 10))
    near = prob[:, 18:23, 57:64, 62:69] - four[:, 18:23, 57:64, 62:69]
    assert float(near.abs().max()) < 0.05


def test_no_voxel_to_refine_leaves_the_first_view_and_most_of_the_volume_runs_whole() -> None:
    net = _net()
    shape = (12, 40, 44)
    img = torch.rand(1, *shape)
    one = predict_map(net, img, precision="fp32")
    prob = one.clone()
    assert refine_views(net, img, prob, np.zeros(shape, bool), 4, REACH, "fp32") == {
        "boxes": 0,
        "scored": 0.0,
    }
    assert torch.equal(prob, one)
    where = np.zeros(shape, bool)
    where[6, 20, 22] = True  # its crop is the whole of this small volume: one pass per view instead
    assert refine_views(net, img, prob, where, 4, REACH, "fp32")["scored"] == 1.0
    torch.testing.assert_close(prob, predict_map(net, img, precision="fp32", views=4))
    two = one.clone()  # two views: only the left-right mirror is added
    refine_views(net, img, two, where, 2, REACH, "fp32")
    torch.testing.assert_close(two, predict_map(net, img, precision="fp32", views=2))


@pytest.mark.parametrize(
    ("marks", "count"),
    [
        ([(5, 10, 10), (5, 12, 13)], 1),  # their boxes overlap: one box, each voxel written once
        # a cross: two long boxes that overlap, whose union's crop is larger than theirs: still one
        ([(5, slice(5, 115), 60), (8, 60, slice(5, 125))], 1),
        ([(5, 10, 10), (5, 10, 40)], 1),  # crops overlap and their union is the smaller crop
        ([(5, 10, 10), (35, 110, 120)], 2),  # far apart
    ],
)
def test_boxes_cover_the_reach_of_every_voxel_and_never_overlap(
    marks: list[tuple[object, ...]], count: int
) -> None:
    shape = (40, 121, 131)
    where = np.zeros(shape, bool)
    for m in marks:
        where[m] = True
    boxes = refine_boxes(where, REACH, (16, 32, 32))
    assert len(boxes) == count
    inside = _inside(boxes, shape)
    grown = ndimage.binary_dilation(where, np.ones(tuple(2 * r + 1 for r in REACH), bool))
    assert inside[grown].all()
    total = sum(int(np.prod([hi - lo for lo, hi in b])) for b in boxes)
    assert total == int(inside.sum())  # disjoint
