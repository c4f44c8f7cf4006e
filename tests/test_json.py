"""What counts as a finite JSON number for the configs, calibrations and records read back."""

from __future__ import annotations

import json

import pytest

from medforensics._json import finite_numbers, is_finite_number


@pytest.mark.parametrize("value", [0, -3, 2.5, 1e300])
def test_finite_numbers_are_numbers(value: object) -> None:
    assert is_finite_number(value)


@pytest.mark.parametrize(
    "value", [True, None, "1", [1], float("nan"), float("inf"), json.loads("1e400"), 10**400]
)
def test_bools_strings_nan_inf_and_huge_integers_are_not(value: object) -> None:
    assert not is_finite_number(value)


def test_finite_numbers_need_the_count_and_every_value_finite() -> None:
    assert finite_numbers([1, 2.5, 3], 3) == [1.0, 2.5, 3.0]
    assert finite_numbers((1, 2), 2) == [1.0, 2.0]
    for bad in ([1, 2], [1, 2, float("nan")], [1, 2, True], "abc", None, {"a": 1}):
        assert finite_numbers(bad, 3) is None
