"""A detector whose scan worker processes die on series in folders named ``die`` and take two minutes over
those named ``slow``.

Unpickling a :class:`DyingDetector`, which only a scan worker (:mod:`medforensics.scan.parallel`) does,
makes that process's ``_load_and_scan`` end the process on such a series, as a crash in C or the
out-of-memory killer would. The test process itself is never changed.
"""

from __future__ import annotations

import copy
import os
import time
from typing import Any

from medforensics.scan import pipeline
from medforensics.scan.detector import Detector


class DyingDetector(Detector):
    """The same detector; only its class travels to the workers, where unpickling it arms the crash."""

    @classmethod
    def like(cls, detector: Detector) -> DyingDetector:
        out = copy.copy(detector)
        out.__class__ = cls
        return out  # type: ignore[return-value]

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        real = pipeline._load_and_scan

        def dying(ref: Any, *args: Any) -> Any:
            if ref.path.name == "die":
                os._exit(3)
            if ref.path.name == "slow":  # a series that takes minutes (a worker stuck in a decoder)
                time.sleep(120)
            return real(ref, *args)

        pipeline._load_and_scan = dying  # type: ignore[assignment]
