"""A benchmark's finished training runs, kept so that ``benchmark --resume`` does not run them again.

The whole zoo takes about an hour on 2 CPU cores (18 models, each trained once in-distribution and once per
held-out attack); a GPU is lent in windows of minutes. Each finished run (a model's in-distribution run, or
one of its leave-one-attack-out runs) writes its leaderboard row to ``run.json`` in its own folder as soon
as it is done; a run that fails is not kept. With ``--resume`` a run is taken from there instead of being
trained again, but only when everything that decides its row is unchanged: the samples it is cut from
(labels, patients, splits, methods and the bytes of every array), the benchmark's settings (preset, seed,
sizes, epochs, batch, patience, threads, device, monitor, fractions, the model's keyword arguments), the
torch version, the device and this installation's code. Which models are benchmarked may change: a resumed
run may add models to an interrupted or finished one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medforensics._atomic import write_text_atomic
from medforensics._code import code_hash
from medforensics._json import json_digest
from medforensics.errors import MedforensicsError
from medforensics.logging import get_logger

log = get_logger("evaluate.benchmark_runs")

#: The file a finished run's row is kept in, in the run's folder.
RUN_FILE = "run.json"
#: Settings that do not decide a run's row (where it goes, which models the benchmark runs).
_NOT_DECIDING = ("out", "models", "loao_models", "model_kwargs", "keep_loao_weights")


def samples_digest(samples: Sequence[Any]) -> str:
    """SHA-256 over every sample's label, patient, split, method and array bytes (shape and type too)."""
    h = hashlib.sha256()
    for s in samples:
        meta = {"label": s.label, "group": s.group, **{k: s.meta.get(k) for k in ("split", "method")}}
        h.update(json.dumps(meta, sort_keys=True, default=str).encode())
        h.update(f"{s.array.dtype}{s.array.shape}".encode())
        h.update(s.array.tobytes())
    return h.hexdigest()


class RunStore:
    """The finished runs of one benchmark folder; ``resume`` False: runs are kept, none is reused."""

    def __init__(self, cfg: Any, device: str, resume: bool) -> None:
        import torch

        settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_DECIDING}
        self.base = {"settings": settings, "torch": torch.__version__, "device": device, "code": code_hash()}
        self.kwargs = dict(cfg.model_kwargs)
        self.resume = resume
        self.reused: list[str] = []
        self._samples: dict[int, str] = {}

    def key(self, samples: Sequence[Any], model: str, run: str) -> str:
        """What decides the row of ``model``'s ``run`` (``in-dist`` or ``loao/<method>``) on ``samples``."""
        digest = self._samples.get(id(samples))
        if digest is None:  # the same list for every model of one sample kind: hashed once
            digest = self._samples[id(samples)] = samples_digest(samples)
        kw = self.kwargs.get(model)
        return json_digest({**self.base, "samples": digest, "model": model, "run": run, "kwargs": kw})

    def take(
        self, folder: Path, samples: Sequence[Any], model: str, run: str
    ) -> tuple[str, dict[str, Any] | None]:
        """The :meth:`key` of ``model``'s ``run`` on ``samples`` (for :meth:`save`), and the row kept in
        ``folder`` when resuming and kept under that key (else None)."""
        key = self.key(samples, model, run)
        return key, self._load(folder, key, f"{model} {run.replace('/', ' ')}")

    def _load(self, folder: Path, key: str, what: str) -> dict[str, Any] | None:
        if not self.resume:
            return None
        try:
            data = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            log.warning("%s: %s unreadable (%s), run again", what, RUN_FILE, type(err).__name__)
            return None
        if not isinstance(data, dict) or data.get("key") != key or not isinstance(data.get("row"), dict):
            log.info("%s: kept run of other data or settings, run again", what)
            return None
        self.reused.append(what)
        return dict(data["row"])

    def save(self, folder: Path, key: str, row: dict[str, Any]) -> None:
        """Keep a finished run's row (atomically; a write that fails costs the resume, not the run)."""
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_text_atomic(folder / RUN_FILE, json.dumps({"key": key, "row": row}, default=str) + "\n")
        except (MedforensicsError, OSError, TypeError, ValueError) as err:
            log.warning("%s not written in %s: %s", RUN_FILE, folder, err)
