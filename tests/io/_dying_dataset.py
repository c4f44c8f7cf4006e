"""A pydicom dataset whose unpickling ends the process, as a decoder crashing in C would.

Only a decoding worker (:mod:`medforensics.io.decode_pool`) unpickles it; the test process never does.
"""

from __future__ import annotations

import os
from typing import Any

from pydicom.dataset import Dataset


class DyingDataset(Dataset):
    """The same dataset; a worker that receives it dies."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        os._exit(3)
