"""The dense tamper localiser network: shapes, padding, slab-wise inference, the evidence map."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medforensics.models.tamperseg import (
    CENTRE_REACH_MM,
    VIEWS,
    TamperSegNet,
    pad_to_multiple,
    peak_region,
    predict_map,
    region_centre,
    tamper_evidence,
    tamperseg3d,
    tie_mirrors,
)
from medforensics.models.tamperseg import (
    test_tamperseg3d as tiny_net,
)


def test_output_has_input_size_and_three_classes() -> None:
    net = tamperseg3d().eval()
    assert net.multiple == (4, 8, 8)
    x = torch.rand(1, 1, 8, 32, 40)
    assert net(x).shape == (1, 3, 8, 32, 40)
    assert 100_000 < sum(p.numel() for p in net.parameters()) < 1_000_000


def test_pad_to_multiple_replicates_edges() -> None:
    x = torch.arange(5.0).reshape(1, 1, 5, 1, 1).expand(1, 1, 5, 3, 3)
    y, size = pad_to_multiple(x, (4, 4, 4))
    assert size == (5, 3, 3) and y.shape == (1, 1, 8, 4, 4)
    assert torch.all(y[0, 0, 5:] == 4.0)


def test_predict_map_slabs_equal_one_pass() -> None:
    torch.manual_seed(0)
    net = tiny_net().eval()
    img = torch.rand(40, 24, 24)
    calls: list[int] = []
    net.register_forward_hook(lambda mod, inp, out: calls.append(int(inp[0].shape[2])))
    whole = predict_map(net, img, slab=16, precision="fp32")  # 40 slices <= whole=160: one pass
    assert calls == [40]
    slabs = predict_map(net, img, slab=16, overlap=6, precision="fp32", whole=0)
    assert len(calls) == 1 + len(range(0, 40 - 6, 16 - 2 * 6)) and max(calls[1:]) == 16
    assert whole.shape == (3, 40, 24, 24)
    torch.testing.assert_close(whole.sum(0), torch.ones(40, 24, 24))
    torch.testing.assert_close(slabs, whole, atol=1e-5, rtol=1e-4)


def test_slices_too_large_for_one_pass_are_mapped_in_thinner_slabs() -> None:
    """A volume within ``whole`` slices but over ``max_voxels`` (a large patient's lung box) runs in slabs
    thin enough for the budget, though not thinner than ``2 * overlap + 16``; the map is the one pass's."""
    torch.manual_seed(0)
    net = tiny_net().eval()
    img = torch.rand(80, 24, 24)
    calls: list[int] = []
    net.register_forward_hook(lambda mod, inp, out: calls.append(int(inp[0].shape[2])))
    whole = predict_map(net, img, precision="fp32")
    assert calls == [80]
    slabs = predict_map(net, img, overlap=6, precision="fp32", max_voxels=30 * 24 * 24)
    assert max(calls[1:]) == 30 and len(calls) == 1 + len(range(0, 80 - 6, 30 - 2 * 6))
    torch.testing.assert_close(slabs, whole, atol=1e-5, rtol=1e-4)
    seen = len(calls)
    predict_map(net, img, overlap=6, precision="fp32", max_voxels=24 * 24)  # 1 slice: the floor holds
    assert max(calls[seen:]) == 28 and len(calls) - seen == len(range(0, 80 - 6, 28 - 2 * 6))


def test_mirror_views_are_averaged_back_in_the_inputs_orientation() -> None:
    torch.manual_seed(0)
    net = tiny_net().eval()
    img = torch.rand(10, 21, 30)  # padded on every axis: each view is padded after its flip

    def mirrored(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
        return torch.flip(predict_map(net, torch.flip(x, dims), precision="fp32"), dims)

    one = predict_map(net, img, precision="fp32")
    assert torch.equal(predict_map(net, img, precision="fp32", views=1), one)
    two = predict_map(net, img, precision="fp32", views=2)
    torch.testing.assert_close(two, (one + mirrored(img, (-1,))) / 2)
    assert not torch.allclose(one, mirrored(img, (-1,)), atol=1e-3)  # the network alone is not symmetric
    four = predict_map(net, img, precision="fp32", views=4)
    torch.testing.assert_close(four.sum(0), torch.ones(10, 21, 30))
    kw = {"slab": 4, "overlap": 1, "precision": "fp32", "whole": 0}  # in slabs: each slab's views
    per_view = [
        torch.flip(predict_map(net, torch.flip(img, d), **kw), d) for d in ((), (-1,), (-2,), (-2, -1))
    ]
    torch.testing.assert_close(predict_map(net, img, views=4, **kw), sum(per_view) / 4)
    # four views are every in-plane flip: a flipped input gives the flipped map
    for dims in ((-1,), (-2,), (-2, -1)):
        flipped = predict_map(net, torch.flip(img, dims), precision="fp32", views=4)
        torch.testing.assert_close(flipped, torch.flip(four, dims), atol=1e-5, rtol=1e-4)
    for bad in (0, 9):
        with pytest.raises(ValueError, match="views must be 1 to 8"):
            predict_map(net, img, views=bad)


def test_eight_views_add_the_transposes_and_make_the_map_follow_every_square_symmetry() -> None:
    torch.manual_seed(0)
    net = tiny_net().eval()
    img = torch.rand(10, 21, 30)  # not square: a transposed view is padded on its own axes
    tr = predict_map(net, img.transpose(-2, -1), precision="fp32").transpose(-2, -1)
    assert tr.shape == (3, 10, 21, 30)
    four = predict_map(net, img, precision="fp32", views=4)
    five = predict_map(net, img, precision="fp32", views=5)
    torch.testing.assert_close(five, (4 * four + tr) / 5)  # the fifth view is the input transposed
    assert not torch.allclose(four, tr, atol=1e-3)  # and the network alone does not commute with it
    eight = predict_map(net, img, precision="fp32", views=8)
    flat = torch.arange(6.0).reshape(2, 3)
    assert len({tuple(v.apply(flat).flatten().tolist()) for v in VIEWS}) == 8  # eight different views
    assert all(torch.equal(v.undo(v.apply(flat)), flat) for v in VIEWS)
    # a transposed or rotated input gives the transposed or rotated map
    turned = predict_map(net, torch.rot90(img, 1, (-2, -1)), precision="fp32", views=8)
    torch.testing.assert_close(turned, torch.rot90(eight, 1, (-2, -1)), atol=1e-5, rtol=1e-4)
    swapped = predict_map(net, img.transpose(-2, -1), precision="fp32", views=8)
    torch.testing.assert_close(swapped, eight.transpose(-2, -1), atol=1e-5, rtol=1e-4)


def test_evidence_is_a_local_mean_of_the_tamper_probability() -> None:
    prob = torch.zeros(3, 9, 9, 9)
    prob[0] = 1.0
    prob[0, 4, 4, 4], prob[1, 4, 4, 4] = 0.0, 1.0
    ev = tamper_evidence(prob, (2.0, 2.0, 2.0))  # 3-voxel box
    assert ev.shape == (9, 9, 9)
    assert abs(float(ev[4, 4, 4]) - 1 / 27) < 1e-6 and float(ev[0, 0, 0]) == 0.0


def test_evidence_is_the_box_mean_with_edges_repeated() -> None:
    from scipy import ndimage

    torch.manual_seed(1)
    prob = torch.softmax(torch.randn(3, 7, 12, 10), 0)
    ev = tamper_evidence(prob, (2.5, 1.4, 1.4))  # a 3 x 5 x 5 box
    ref = ndimage.uniform_filter((1.0 - prob[0]).double().numpy(), (3, 5, 5), mode="nearest")
    np.testing.assert_allclose(ev.numpy(), ref, rtol=1e-5, atol=1e-6)


def test_two_levels_minimum() -> None:
    try:
        TamperSegNet(widths=(4,))
    except ValueError as err:
        assert "two levels" in str(err)
    else:  # pragma: no cover
        raise AssertionError("one level accepted")


def test_linear_head_sees_signed_features() -> None:
    """With the ReLU the head's input is never negative (all-off features give exactly the bias); without
    it, it is the last normalised features, of both signs."""
    torch.manual_seed(0)
    x = torch.rand(1, 2, 8, 32, 32)
    for linear, negative in ((False, False), (True, True)):
        net = tamperseg3d(in_channels=2, linear_head=linear).eval()
        seen: list[torch.Tensor] = []
        net.head.register_forward_hook(lambda mod, inp, out, seen=seen: seen.append(inp[0]))
        assert net(x).shape == (1, 3, 8, 32, 32)
        assert bool((seen[0] < 0).any()) is negative
    assert sum(p.numel() for p in tamperseg3d(linear_head=True).parameters()) == sum(
        p.numel() for p in tamperseg3d().parameters()
    )


def test_peak_region_is_the_connected_part_above_half_the_peak() -> None:
    ev = np.zeros((5, 20, 20), np.float32)
    ev[2, 2:6, 2:6] = 0.6
    ev[2, 3, 3] = 1.0
    ev[2, 10:14, 10:14] = 0.9  # as high, but not connected to the peak
    ev[2, 2:6, 6] = 0.4  # connected, below half the peak
    region = peak_region(ev, (2, 3, 3))
    assert region.sum() == 16
    assert region[2, 2:6, 2:6].all() and not region[2, 10:14, 10:14].any() and not region[2, :, 6].any()


def test_region_centre_is_the_middle_of_the_region_not_its_peak() -> None:
    region = np.zeros((9, 40, 40), bool)
    region[2:7, 10:21, 10:21] = True  # middle (4, 15, 15); the peak near one side of it
    centre = region_centre(region, (4, 11, 19), (2.5, 1.0, 1.0))
    np.testing.assert_allclose(centre, (4.0, 15.0, 15.0))


def test_region_centre_ignores_the_region_beyond_its_reach() -> None:
    region = np.zeros((3, 10, 200), bool)
    region[1, 5, 10:21] = True  # around the peak
    region[1, 5, 21:200] = True  # a long weak tail of the same region
    centre = region_centre(region, (1, 5, 15), (1.0, 1.0, 1.0))
    reach = CENTRE_REACH_MM
    np.testing.assert_allclose(centre, (1.0, 5.0, (10 + 15 + reach) / 2))


def test_tied_mirrors_give_the_mirrored_map_of_a_mirrored_input() -> None:
    torch.manual_seed(0)
    net = tiny_net(in_channels=2).eval()
    x = torch.randn(1, 2, 8, 16, 16)  # in-plane sizes the strided grids divide: mirrors map grid to grid
    with torch.no_grad():
        untied = [float((net(x.flip(d)).flip(d) - net(x)).abs().max()) for d in ((-1,), (-2,))]
        tie_mirrors(net)
        for d in ((-1,), (-2,), (-2, -1)):
            torch.testing.assert_close(net(x.flip(d)).flip(d), net(x), atol=1e-5, rtol=0)
    assert min(untied) > 1e-3  # a trained or random network is not mirror-symmetric by itself
    for m in net.modules():
        if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)):
            assert torch.equal(m.weight, m.weight.flip(-1)) and torch.equal(m.weight, m.weight.flip(-2))


def test_the_join_filled_in_place_is_the_concatenation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without gradients the up stages' input is filled in place (less memory); the values, the layout
    and the network's output are those of ``torch.cat`` bit for bit, in both memory layouts."""
    import torch.nn.functional as F

    from medforensics.models import tamperseg

    def cat(skip: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(low, size=skip.shape[2:], mode="trilinear", align_corners=False)
        return torch.cat([skip, up], 1)

    torch.manual_seed(0)
    for fmt in (torch.contiguous_format, torch.channels_last_3d):
        skip = torch.randn(1, 4, 6, 16, 20).contiguous(memory_format=fmt)
        low = torch.randn(1, 8, 6, 8, 10).contiguous(memory_format=fmt)
        with torch.no_grad():
            joined, ref = tamperseg._join(skip.clone(), low), cat(skip, low)
        assert torch.equal(joined, ref) and joined.stride() == ref.stride()
        net = tiny_net(in_channels=2).eval().to(memory_format=fmt)
        x = torch.randn(1, 2, 8, 32, 32).contiguous(memory_format=fmt)
        with torch.no_grad():
            out = net(x)
            with monkeypatch.context() as m:
                m.setattr(tamperseg, "_join", cat)
                assert torch.equal(out, net(x))
