"""``medforensics benchmark``: every registered model on one patient-level split, plus leave-one-attack-out.

Protocols:

- ``in-dist``: train on the train split (every attack method), calibrate and pick the 1 % FPR threshold on
  val, score the test split. Each model also gets an ``evaluate`` folder (JSON + figures) and an inference
  speed measured on this machine.
- ``loao`` (leave one attack out): for each attack METHOD found in the data (``records/<uuid>.json``), train
  and validate on every other method, then test on the held-out method's tampered samples plus the test
  split's authentic samples. The mean over held-out methods is the "unseen-attack AUC".

All models see the same samples (same scans, same patients per split), each cut as the model needs: 2-D /
2.5-D crops of ``size_2d`` pixels (``features`` models their own default, 64), 3-D cubes of the model's
size at 1 mm. Models trained on the ``attack`` task (3-D cubes: authentic / injected / removed) cannot use
SYN samples (a fully synthetic scan is neither); those rows are left out of their train and test sets and
the leaderboard says so. The dense localiser trains with its own trainer and is scored at scan level, on
whole data-set scans (:mod:`.benchmark_dense`).

Budget of the ``cpu-fast`` preset on 2 cores: bf16 autocast + channels_last, 5 epochs (patience 2), batch
32, 96 px crops; with a few hundred samples every model trains in seconds to a few minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medforensics._atomic import check_folder_output, check_writable, write_text_atomic
from medforensics.errors import ConfigError, MedforensicsError, OutputError
from medforensics.evaluate.benchmark_runs import RunStore
from medforensics.logging import get_logger
from medforensics.train.data import (
    ForgeDatasetSource,
    ListSource,
    Sample,
    SampleSource,
    ensure_splits,
    leave_method_out,
    sample_methods,
    split_samples,
    task_samples,
)

log = get_logger("evaluate.benchmark")

PROTOCOLS = ("in-dist", "loao")
#: The file every benchmark output folder holds (a rerun may write over its own output, nothing else).
BENCHMARK = "benchmark.json"


@dataclass(frozen=True)
class SampleSpec:
    """How samples are cut for one model: kind (2d / 2.5d / 3d), edge size, slices (2.5d channels)."""

    kind: str
    size: int
    slices: int = 1


#: Where samples come from: a forge data set folder or a function giving a source per spec (tests).
DataArg = str | Path | Callable[[SampleSpec], SampleSource]


@dataclass
class BenchmarkConfig:
    """What to run. ``models`` / ``loao_models`` None: every registered (non-test) model."""

    out: str | Path
    models: list[str] | None = None
    loao_models: list[str] | None = None
    protocols: tuple[str, ...] = PROTOCOLS
    preset: str | None = "cpu-fast"
    seed: int = 0
    size_2d: int = 96
    slices: int = 5
    epochs: int | None = None
    batch_size: int | None = None
    patience: int | None = None
    threads: int | None = None
    #: Where the CNNs train and are timed (``cpu``, ``cuda``, ``auto``).
    device: str = "cpu"
    #: The epoch each CNN keeps: best validation AUC (what the leaderboard ranks; the score is calibrated
    #: afterwards) or best validation loss (on ~100 validation crops an overconfident epoch can rank
    #: well and still have the worst loss).
    monitor: str = "val_auc"
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    keep_loao_weights: bool = False
    speed_samples: int = 64
    model_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def validate(self) -> list[str]:
        """Check protocols and resolve model names (ConfigError before any data is read)."""
        from medforensics._seed import check_seed
        from medforensics.models.inference import resolve_device
        from medforensics.models.registry import list_models, model_info
        from medforensics.train.config import MONITORS, PRESETS

        resolve_device(self.device)
        if self.monitor not in MONITORS:
            raise ConfigError(f"monitor must be one of {', '.join(MONITORS)}; got {self.monitor!r}")
        bad = [p for p in self.protocols if p not in PROTOCOLS]
        if bad or not self.protocols:
            raise ConfigError(f"unknown protocol(s) {bad}; expected some of {', '.join(PROTOCOLS)}")
        if self.preset is not None and self.preset not in PRESETS:
            raise ConfigError(f"preset must be one of {', '.join(PRESETS)}; got {self.preset!r}")
        check_seed(self.seed)
        if self.models is not None and not self.models:  # None means all; an empty list means none
            raise ConfigError("no models to benchmark: name some, or 'all'")
        names = list_models() if self.models is None else list(dict.fromkeys(self.models))
        for n in names + list(self.loao_models or []):
            model_info(n)
        if self.loao_models:
            missing = sorted(set(self.loao_models) - set(names))
            if missing:
                raise ConfigError(f"--loao-models {missing} are not among the benchmarked models")
        if self.size_2d < 8:
            raise ConfigError(f"size_2d must be >= 8, got {self.size_2d}")
        return names


def task_of(name: str) -> str:
    """Training task of a model in the benchmark: ``attack`` for 3-class 3-D CNNs, else ``binary``."""
    from medforensics.models.registry import model_info

    info = model_info(name)
    if info.input_kind == "3d" and info.family == "cnn" and info.num_classes == 3:
        return "attack"
    return "binary"


def spec_of(name: str, cfg: BenchmarkConfig) -> SampleSpec:
    """The sample cut the model ``name`` needs in this benchmark."""
    from medforensics.models.registry import model_info

    info = model_info(name)
    if info.input_kind == "3d":
        return SampleSpec("3d", info.input_size)
    if info.input_kind == "features":
        return SampleSpec("2d", info.input_size)
    size = min(info.input_size, cfg.size_2d)
    return SampleSpec(info.input_kind, size, cfg.slices if info.input_kind == "2.5d" else 1)


def load_samples(data: DataArg, spec: SampleSpec, cfg: BenchmarkConfig) -> list[Sample]:
    """Every sample of ``data`` cut as ``spec``, each with a split (patient-level)."""
    if callable(data):
        source: SampleSource = data(spec)
    else:
        source = ForgeDatasetSource(data, spec.kind, spec.size, slices=max(spec.slices, 1))
    samples = list(source)
    if not samples:
        raise ConfigError("the benchmark data set is empty (no readable samples)", path=str(data))
    samples = ensure_splits(samples, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    try:  # the checks every training run makes, once for all models (single class, leaks, no val...)
        split_samples(samples, "binary", cfg.val_fraction, cfg.test_fraction, cfg.seed)
    except ConfigError as err:
        raise ConfigError(err.reason, path=None if callable(data) else str(data)) from None
    return samples


def check_out(out: Path, data: DataArg) -> None:
    """OutputError before any work when ``out`` cannot be written, is, holds or lies inside the data set,
    or holds files that are not an earlier benchmark's (whose ``benchmark.json`` has ``rows``)."""
    check_writable(out, folder=True)
    check_folder_output(out, [] if callable(data) else [data], marker=BENCHMARK)
    mark = out / BENCHMARK
    if mark.is_file():
        try:
            ours = "rows" in json.loads(mark.read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError, RecursionError):
            ours = False
        if not ours:
            raise OutputError(
                f"holds a {BENCHMARK} no benchmark wrote, which a run would overwrite: choose a new folder",
                path=out,
            )


def _train_config(name: str, spec: SampleSpec, cfg: BenchmarkConfig, out: Path) -> Any:
    from medforensics.train.config import config_from_dict

    raw: dict[str, Any] = {
        "model": name,
        "out": str(out),
        "seed": cfg.seed,
        "data": {"task": task_of(name), "size": spec.size, "slices": cfg.slices},
    }
    if cfg.preset:
        raw["preset"] = cfg.preset
    for key, name_ in (
        ("epochs", "epochs"),
        ("batch_size", "batch_size"),
        ("patience", "early_stopping_patience"),
    ):
        if getattr(cfg, key) is not None:
            raw[name_] = getattr(cfg, key)
    if cfg.threads:
        raw["num_threads"] = cfg.threads
    raw["device"] = cfg.device
    raw["monitor"] = cfg.monitor
    if name in cfg.model_kwargs:
        raw["model_kwargs"] = cfg.model_kwargs[name]
    return config_from_dict(raw)


def measure_speed(model: Any, x: np.ndarray, tc: Any, n: int = 64, min_seconds: float = 1.0) -> float:
    """Inference images/s of ``model`` on ``n`` inputs tiled from ``x`` (after a warm-up batch)."""
    from medforensics.models.inference import predict_proba

    reps = -(-n // max(len(x), 1))
    xs = np.concatenate([x] * reps)[:n]
    predict_proba(model, xs[: min(len(xs), tc.batch_size)], tc.batch_size, tc.precision, tc.channels_last)
    done, t0 = 0, time.perf_counter()
    while True:
        predict_proba(model, xs, tc.batch_size, tc.precision, tc.channels_last)
        done += len(xs)
        dt = time.perf_counter() - t0
        if dt >= min_seconds or done >= 8 * n:
            return done / dt


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The leaderboard numbers of one training run's test metrics."""
    test = metrics.get("test", {})
    op = test.get("operating_point", {})
    row: dict[str, Any] = {
        k: op.get(k)
        for k in ("accuracy", "precision", "recall", "f1", "roc_auc", "n", "n_positive", "threshold")
    }
    row["tpr_at_1pct_fpr"] = op.get("tpr_at_1pct_fpr")
    row["acc_at_0.5"] = test.get("at_0.5", {}).get("accuracy")
    for lab, m in test.get("per_label", {}).items():
        row[f"acc_{lab}"] = m.get("accuracy")
    if "classes" in test:
        row["type_accuracy"] = test["classes"].get("accuracy")
    return row


def _one_line(err: BaseException) -> str:
    if isinstance(err, MedforensicsError):
        return err.one_line()
    return " ".join(f"{type(err).__name__}: {err}".split())[:200]


def _drop_heavy(folder: Path, weights: bool) -> None:
    """Benchmark runs do not resume: drop ``last/`` (optimizer state), and the weights when asked."""
    shutil.rmtree(folder / "last", ignore_errors=True)
    if weights:
        (folder / "model.safetensors").unlink(missing_ok=True)


def run_in_dist(
    name: str, spec: SampleSpec, samples: list[Sample], cfg: BenchmarkConfig, store: RunStore | None = None
) -> dict[str, Any]:
    """Train + evaluate ``name`` on the shared split; returns its leaderboard row (without LOAO). With a
    ``store`` the row is kept when done, and taken from there when it was kept (``--resume``)."""
    folder = Path(cfg.out) / "models" / name / "in-dist"
    key, kept = store.take(folder, samples, name, "in-dist") if store else ("", None)
    if kept is not None:
        return kept
    t_run = time.perf_counter()
    from medforensics.evaluate.runner import evaluate_model
    from medforensics.models.registry import model_info
    from medforensics.train.checkpoint import load_trained
    from medforensics.train.loop import train

    info = model_info(name)
    task = task_of(name)
    usable, left_out = task_samples(samples, task)
    dropped = list(left_out)
    tc = _train_config(name, spec, cfg, folder)
    t0 = time.perf_counter()
    res = train(tc, ListSource(usable))
    train_s = time.perf_counter() - t0
    _drop_heavy(folder, weights=False)
    evaluate_model(folder, ListSource(usable), folder / "eval", protect_inputs=False)  # its own run
    model, tc, _ = load_trained(folder)
    test_x = np.stack([s.array for s in usable if s.meta.get("split") == "test"])
    speed = measure_speed(model, test_x, tc, cfg.speed_samples)
    row = {
        "model": name,
        "input": f"{info.input_kind} {'x'.join(map(str, test_x.shape[1:]))}",
        "family": info.family,
        "task": task,
        "params": res.metrics.get("parameters"),
        "train_s": round(train_s, 1),
        "epochs": res.epochs_run,
        "img_per_s": round(speed, 1),
        **_headline(res.metrics),
        "in_dist_auc": res.metrics.get("test", {}).get("operating_point", {}).get("roc_auc"),
        "excluded_labels": dropped,
        "folder": str(folder.relative_to(cfg.out)),
        "run_s": round(time.perf_counter() - t_run, 1),
    }
    if store is not None:
        store.save(folder, key, row)
    return row


def run_loao(
    name: str,
    spec: SampleSpec,
    samples: list[Sample],
    methods: Sequence[str],
    cfg: BenchmarkConfig,
    store: RunStore | None = None,
) -> list[dict[str, Any]]:
    """Leave-one-attack-out runs of ``name``: one row per held-out method (AUC None when skipped); with a
    ``store`` each finished run's row is kept, and taken from there when it was kept (``--resume``)."""
    from medforensics.train.loop import train

    task = task_of(name)
    usable = task_samples(samples, task)[0]
    usable_methods = set(sample_methods(usable))
    rows = []
    for m in methods:
        row: dict[str, Any] = {"model": name, "held_out": m, "auc": None, "tpr_at_1pct_fpr": None}
        if m not in usable_methods:
            row["note"] = f"task {task!r} cannot use the labels {m} makes"
            rows.append(row)
            continue
        folder = Path(cfg.out) / "models" / name / "loao" / m
        key, kept = store.take(folder, samples, name, f"loao/{m}") if store else ("", None)
        if kept is not None:
            rows.append(kept)
            continue
        t0 = time.perf_counter()
        try:
            res = train(_train_config(name, spec, cfg, folder), ListSource(leave_method_out(usable, m)))
        except (MedforensicsError, RuntimeError, ValueError) as err:
            row["note"] = _one_line(err)
            log.warning("LOAO %s / %s failed: %s", name, m, row["note"])
            rows.append(row)
            continue
        _drop_heavy(folder, weights=not cfg.keep_loao_weights)
        head = _headline(res.metrics)
        row.update(
            auc=head["roc_auc"],
            tpr_at_1pct_fpr=head["tpr_at_1pct_fpr"],
            accuracy=head["accuracy"],
            n_test=head["n"],
            n_positive=head["n_positive"],
            train_s=round(time.perf_counter() - t0, 1),
        )
        rows.append(row)
        if store is not None:
            store.save(folder, key, row)
    return rows


def run_benchmark(
    data: DataArg,
    cfg: BenchmarkConfig,
    progress: Callable[[str], None] | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Run the benchmark; writes ``leaderboard.md``/``.csv``, ``loao.csv``, ``benchmark.json`` and one
    folder per model under ``cfg.out``. Returns the ``benchmark.json`` content. Each finished training run
    is kept in its folder as it ends; ``resume``: runs kept there by an earlier (interrupted) run of the same
    samples and settings are taken, not trained again (:mod:`~medforensics.evaluate.benchmark_runs`)."""
    import torch

    from medforensics.evaluate.benchmark_dense import dense_rows, manifest_summary
    from medforensics.evaluate.leaderboard import (
        data_summary,
        rank_rows,
        recommend,
        with_intervals,
        with_unseen,
        write_leaderboard,
    )
    from medforensics.models.inference import device_name, resolve_device
    from medforensics.models.registry import is_dense

    names = cfg.validate()
    say = progress or (lambda msg: log.info("%s", msg))
    out = Path(cfg.out)
    check_out(out, data)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / BENCHMARK).is_file():  # marks the folder as a benchmark's before its first run is kept
        write_text_atomic(out / BENCHMARK, json.dumps({"rows": [], "finished": False}) + "\n")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    store = RunStore(cfg, device_name(resolve_device(cfg.device)), resume)
    t_start, load_start = time.perf_counter(), _load()
    cache: dict[SampleSpec, list[Sample]] = {}
    rows: list[dict[str, Any]] = []
    loao_rows: list[dict[str, Any]] = []
    methods: list[str] = []  # the zoo's held-out methods (from its samples); the dense model's: dense_held
    dense_held: list[str] = []
    loao_names = set(cfg.loao_models or names) if "loao" in cfg.protocols else set()
    for name in names:
        if is_dense(name):  # its own trainer, scored at scan level (medforensics.evaluate.benchmark_dense)
            say(f"{name}: in-distribution and leave-one-attack-out, scored at scan level")
            try:
                row, lr = dense_rows(name, data, cfg, name in loao_names, resume, say)
            except (MedforensicsError, RuntimeError, ValueError) as err:
                row, lr = {"model": name, "error": _one_line(err)}, []
                log.warning("%s failed: %s", name, row["error"])
            loao_rows += lr
            dense_held += [r["held_out"] for r in lr if r["held_out"] not in dense_held]
            rows.append(with_unseen(row, lr))
            say(f"{name}: done ({row['wall_s']} s of runs)")
            continue
        spec = spec_of(name, cfg)
        if spec not in cache:
            say(f"reading samples {spec.kind} {spec.size}px")
            cache[spec] = load_samples(data, spec, cfg)
        samples = cache[spec]
        methods = methods or sample_methods(samples)
        if loao_names and not methods:  # before any training, not after the first model's
            raise ConfigError("leave-one-attack-out needs attack methods on the samples (records/)")
        say(f"{name}: in-distribution")
        try:
            row = run_in_dist(name, spec, samples, cfg, store)
        except (MedforensicsError, RuntimeError, ValueError) as err:
            row = {"model": name, "error": _one_line(err)}
            log.warning("%s failed: %s", name, row["error"])
        lr = []
        if name in loao_names and "error" not in row:
            say(f"{name}: leave-one-attack-out over {', '.join(methods)}")
            lr = run_loao(name, spec, samples, methods, cfg, store)
            loao_rows += lr
        rows.append(with_unseen(row, lr))
        say(f"{name}: done ({row['wall_s']} s of runs)")
    if rows and all("error" in r for r in rows):
        raise ConfigError(f"every model failed; the first: {rows[0]['error']}")
    ranked = rank_rows(rows)
    first = cache[next(iter(cache))] if cache else None
    result = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "data": str(data) if not callable(data) else "in-memory",
        "data_summary": (
            manifest_summary(data)
            if first is None
            else data_summary(
                (str(s.meta.get("split")), s.label, s.group, str(s.meta.get("method"))) for s in first
            )
        ),
        "methods": methods + [m for m in dense_held if m not in methods],
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "device": device_name(resolve_device(cfg.device)),
            "torch": torch.__version__,
            "load_average_start": load_start,
            "load_average_end": _load(),
        },
        "wall_s": round(time.perf_counter() - t_start, 1),
        "reused_runs": store.reused,
        "rows": ranked,
        "loao": loao_rows,
        "recommended": recommend(ranked, kinds=None),
        "recommended_ct": recommend(ranked, kinds=("3d", "2.5d")),
    }
    result = with_intervals(result)
    write_text_atomic(out / BENCHMARK, json.dumps(result, indent=1, default=str))
    write_leaderboard(result, out)
    return result


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover (not on every platform)
        return None


__all__ = [
    "PROTOCOLS",
    "BenchmarkConfig",
    "SampleSpec",
    "load_samples",
    "measure_speed",
    "run_benchmark",
    "run_in_dist",
    "run_loao",
    "spec_of",
    "task_of",
]
