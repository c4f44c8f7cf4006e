"""A test attack that fails for some of its seeds (spawned forge workers import it to unpickle it)."""

from __future__ import annotations

from typing import Any

import numpy as np

from medforensics.errors import InputError
from medforensics.forge.classical import BlobInject
from medforensics.io.volume import Volume


class FlakyBlob(BlobInject):
    """blob-inject, except that ``apply`` fails (an :class:`InputError`) when its seed is divisible by 3."""

    name = "test-flaky-blob"  # as registered (a spawned worker imports the class, not the registration)
    held_out = True

    def apply(self, volume: Volume, params: dict[str, Any], seed: int = 0) -> tuple[Volume, np.ndarray, Any]:
        if seed % 3 == 0:
            raise InputError("this seed cannot be made", path="flaky")
        return super().apply(volume, params, seed=seed)


class CrashingBlob(FlakyBlob):
    """The same, except that the failure is a bug (a ``RuntimeError``), not a reason of the sample's own."""

    name = "test-crashing-blob"

    def apply(self, volume: Volume, params: dict[str, Any], seed: int = 0) -> tuple[Volume, np.ndarray, Any]:
        if seed % 3 == 0:
            raise RuntimeError("a bug")
        return super().apply(volume, params, seed=seed)
