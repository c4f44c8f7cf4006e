"""The dense localiser (``tamperseg3d``, the bundled CT detector's kind) in ``medforensics benchmark``.

It learns from the forge data set's masks with its own trainer (:func:`~medforensics.train.dense.train_dense`)
on the patient split the data set records (the one the zoo models get), and is scored the way ``scan`` uses
it: every scan of the test split scanned (:func:`~medforensics.evaluate.scan_level.evaluate_scans`). Its
leaderboard row's accuracy, AUC and per-label figures are therefore of whole data-set scans, where a zoo
model's are of a crop or cube centred on each site: the dense model has to find the edit as well as judge
it (``input`` says "scan"). Leave-one-attack-out: one model per attack method, trained and validated without
it (``exclude_methods``), its AUC that method's tampered test scans against the test split's authentic ones.
SYN scans are not trained on (the dense trainer takes TB/TM/FB/FM) and are scored as ``scan`` scores them.

Settings: the trainer's defaults (:class:`~medforensics.train.dense_config.DenseConfig`) with the benchmark's
seed, device and threads, :data:`STEPS` training steps for the preset and no lossy operating point (the data
set's scans are stored lossless); ``BenchmarkConfig.model_kwargs[name]`` may set any other config key.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from medforensics.errors import ConfigError, MedforensicsError

#: Training steps of the dense localiser per benchmark preset (``epochs`` does not apply to it).
STEPS = {"cpu-fast": 200, "seed-study": 600}


def dense_methods(data: Path) -> dict[str, bool]:
    """The data set's attack methods (its ``manifest.csv``), each with whether it makes tampered (FB/FM)
    scans, which the dense localiser can be trained without (SYN scans it never trains on)."""
    from medforensics.evaluate.scan_level import manifest_rows

    rows = [r for r in manifest_rows(data, "all") if r["type"] in ("FB", "FM", "SYN")]
    return {
        m: any(r["type"] != "SYN" for r in rows if r["method"] == m)
        for m in sorted({r["method"] for r in rows})
    }


def manifest_summary(data: Any) -> dict[str, Any]:
    """The leaderboard's data line from a forge data set's ``manifest.csv`` (when no zoo model read its
    samples)."""
    from medforensics.evaluate.leaderboard import data_summary
    from medforensics.evaluate.scan_level import manifest_rows

    if not isinstance(data, (str, Path)):
        return data_summary([])
    rows = manifest_rows(Path(data), "all")
    return data_summary((r["split"], r["type"], r["patient"], r["method"]) for r in rows)


def dense_config(name: str, data: Path, cfg: Any, out: Path) -> Any:
    """The :class:`~medforensics.train.dense_config.DenseConfig` of ``name``'s in-distribution run."""
    from medforensics.train.dense_config import dense_config_from

    raw: dict[str, Any] = {
        "data": str(data),
        "out": str(out),
        "model": name,
        "seed": cfg.seed,
        "device": cfg.device,
        "steps": STEPS.get(cfg.preset or "", STEPS["cpu-fast"]),
        "lossy_codecs": [],
    }
    if cfg.threads:
        raw["threads"] = cfg.threads
    return dense_config_from({**raw, **cfg.model_kwargs.get(name, {})})


def dense_rows(
    name: str,
    data: Any,
    cfg: Any,
    loao: bool,
    resume: bool = False,
    say: Callable[[str], None] = lambda msg: None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``name``'s leaderboard row and its leave-one-attack-out rows (``loao``); ``resume``: runs an earlier
    benchmark finished in the same folders are taken (:func:`~.dense_benchmark.train_many`'s ``reuse``)."""
    from medforensics.evaluate.dense_benchmark import train_many
    from medforensics.evaluate.scan_level import evaluate_scans

    if not isinstance(data, (str, Path)):
        raise ConfigError(f"{name} is benchmarked on a forge data set folder (masks, whole scans)")
    data, folder = Path(data), Path(cfg.out) / "models" / name
    base = dense_config(name, data, cfg, folder / "in-dist")
    t0 = time.perf_counter()
    metrics = train_many([base], reuse=resume)[0]
    ev = evaluate_scans(folder / "in-dist", data, folder / "eval" / "in-dist")
    op = ev["operating_point"]
    row: dict[str, Any] = {
        "model": name,
        "input": "3d scan",
        "family": "dense",
        "task": "localise",
        "params": metrics.get("parameters"),
        "train_s": metrics.get("train_seconds"),
        "img_per_s": round(ev["n"] / ev["seconds"], 1) if ev.get("seconds") else None,
        **{k: op.get(k) for k in ("accuracy", "precision", "recall", "f1", "roc_auc", "n", "n_positive")},
        "tpr_at_1pct_fpr": op.get("tpr_at_1pct_fpr"),
        **{f"acc_{lab}": m["accuracy"] for lab, m in ev["per_label"].items()},
        "label_accuracy": ev["labels"]["tb_tm_fb_fm"]["accuracy"],
        "in_dist_auc": op.get("roc_auc"),
        "localised_10mm": ev["localisation"]["top_finding_within"],
        "folder": str(folder.relative_to(cfg.out)),
        "run_s": round(time.perf_counter() - t0, 1),
    }
    rows = []
    for m, tampers in (dense_methods(data) if loao else {}).items():
        held: dict[str, Any] = {"model": name, "held_out": m, "auc": None, "tpr_at_1pct_fpr": None}
        if not tampers:
            held["note"] = f"trained on TB/TM/FB/FM only: the SYN scans {m} makes are not its to leave out"
            rows.append(held)
            continue
        say(f"{name}: leave {m} out")
        t1 = time.perf_counter()
        try:
            # from random weights: a start that saw the held-out method (init_from) would leak it
            held_cfg = replace(base, out=str(folder / "loao" / m), exclude_methods=[m], init_from=None)
            train_many([held_cfg], reuse=resume)
            mine = evaluate_scans(folder / "loao" / m, data, folder / "eval" / f"loao-{m}")
        except MedforensicsError as err:
            held["note"] = err.one_line()
            rows.append(held)
            continue
        pm = mine["per_method"].get(m, {})
        held.update(
            auc=pm.get("roc_auc"),
            n_test=sum(r["type"] in ("TB", "TM") for r in mine["scans"] if r["error"] is None)
            + pm.get("n", 0),
            n_positive=pm.get("n", 0),
            train_s=round(time.perf_counter() - t1, 1),
        )
        rows.append(held)
    return row, rows
