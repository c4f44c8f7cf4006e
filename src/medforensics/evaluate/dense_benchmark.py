"""Benchmark of the dense tamper localiser at *scan* level: in-distribution and leave-one-attack-out.

The zoo's benchmark scores a cube centred on each site; the dense localiser is scored the way the scan uses
it, on the whole data-set scan (the maximum of its tamper map), which is harder: the model has to find the
edit as well as judge it. In-distribution: one model trained on every method, test AUC overall and per
method. Leave-one-attack-out: for each method, a model trained and validated without it, tested on its
tampered scans against the test split's authentic scans. Writes ``dense.json`` and ``dense.md``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from medforensics._atomic import write_text_atomic
from medforensics.errors import ConfigError
from medforensics.train.dense import DenseConfig, check_counts, resolve_device, train_dense
from medforensics.train.dense_config import RUN_KEYS, config_values, with_defaults


def run_dense_benchmark(
    cfg: DenseConfig,
    out: str | Path,
    methods: list[str],
    loao_steps: int | None = None,
    main: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
    jobs: int = 1,
    reuse: bool = False,
    fine_tune: str | Path | None = None,
    in_dist: bool = True,
) -> dict[str, Any]:
    """Train the in-distribution model (unless its ``metrics.json`` content is given as ``main``, or
    ``in_dist`` is False: leave-one-attack-out models only, for example starting points of a later
    ``fine_tune``; the table's ``in_dist`` is then None) and one
    model per held-out method under ``out``, ``jobs`` of them at a time (separate processes; for a machine
    with many cores and a GPU); writes ``dense.json`` / ``dense.md`` and returns the table. ``reuse``: a
    folder that already holds a finished run of the same config is not trained again (:func:`train_many`).
    ``fine_tune``: a finished benchmark folder (this function's ``out`` of an earlier run): every model
    starts from its namesake there (``in-dist``, ``loao/<method>``), so each leave-one-attack-out model
    still never saw its held-out method. Without it the in-distribution model starts from ``cfg.init_from``
    and the leave-one-attack-out ones from random weights (a start that saw their method would leak it)."""
    out = Path(out)

    def start(name: str) -> str | None:
        return None if fine_tune is None else str(Path(fine_tune) / name)

    main_start = start("in-dist") if fine_tune is not None else cfg.init_from
    runs: list[DenseConfig] = (
        []
        if main is not None or not in_dist
        else [replace(cfg, out=str(out / "in-dist"), init_from=main_start)]
    )
    for m in methods:
        sub = replace(
            cfg,
            out=str(out / "loao" / m),
            exclude_methods=[m],
            steps=loao_steps or cfg.steps,
            init_from=start(f"loao/{m}"),
        )
        sub.eval_every = min(sub.eval_every, sub.steps)
        runs.append(sub)
    trained = train_many(runs, jobs, reuse)
    if main is None and in_dist:
        main = trained.pop(0)
    loao: dict[str, Any] = {}
    for m, sub, res in zip(methods, runs[len(runs) - len(methods) :], trained, strict=True):
        loao[m] = _held_out_row(m, res, sub.steps)
        if progress is not None:
            progress(f"{m}: {loao[m]}")
    ind = (
        None
        if main is None
        else {
            "test_auc": main["test"].get("auc"),
            "test_auc_per_method": main["test"].get("auc_per_method"),
            "test_within_10mm": main["test"].get("within_10mm"),
            "val_auc": main["val"].get("auc"),
            "train_seconds": main["train_seconds"],
            "steps": cfg.steps,
        }
    )
    return _write_table(out, {"model": cfg.model, "data": cfg.data, "in_dist": ind, "loao": loao})


def _held_out_row(method: str, metrics: dict[str, Any], steps: int) -> dict[str, Any]:
    """A leave-one-attack-out model's row: its test AUC on the held-out ``method`` (its ``metrics.json``)."""
    auc = metrics["test"].get("auc_per_method", {}).get(method)
    return {"auc": auc, "train_seconds": metrics["train_seconds"], "steps": steps}


def _write_table(out: Path, result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with its unseen-attack mean, written as ``out/dense.json`` and ``out/dense.md``."""
    aucs = [v["auc"] for v in result["loao"].values() if v["auc"] is not None]
    result["unseen_auc_mean"] = sum(aucs) / len(aucs) if aucs else None
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "dense.json", json.dumps(result, indent=1))
    write_text_atomic(out / "dense.md", dense_markdown(result))
    return result


#: Keys of a held-out model's config that :func:`held_out_on` takes from the data it is tested on.
DATA_KEYS = ("data", "splits", "extra_authentic", "val_authentic", "test_authentic", *RUN_KEYS)


def held_out_on(
    work: str | Path, data: DenseConfig, methods: list[str], out: str | Path, note: str = ""
) -> dict[str, Any]:
    """Test the leave-one-attack-out models of an earlier benchmark folder ``work`` on another data set
    (``data``'s :data:`DATA_KEYS`; everything else, the held-out method included, is each model's own), as
    their training would have: each is copied to ``out/loao/<method>`` and finished there
    (:func:`~medforensics.train.dense.finish_dense`). The same data for two lineages of models, for example
    before and after a fine-tune on a newer forge. Writes ``dense.json`` / ``dense.md`` (no in-distribution
    model) and returns the table. The data set is read once for all of them when their configs make its
    scans into the same items (:class:`~medforensics.train.dense_data.ItemCache`)."""
    import shutil

    from medforensics.train.dense import finish_dense
    from medforensics.train.dense_config import load_dense_config
    from medforensics.train.dense_data import ItemCache

    out = Path(out)
    loao: dict[str, Any] = {}
    cache = ItemCache()
    for m in methods:
        src, dst = Path(work) / "loao" / m, out / "loao" / m
        cfg = load_dense_config(src / "config.json", out=str(dst))
        if cfg.exclude_methods != [m]:
            raise ConfigError(f"{src} is not the model that left out {m} (it left out {cfg.exclude_methods})")
        # its starting weights may live elsewhere (another machine): named in the note, not looked up
        started = json.loads((src / "metrics.json").read_text(encoding="utf-8")).get("init_from") or {}
        cfg = replace(cfg, **{k: getattr(data, k) for k in DATA_KEYS}, resume=None, init_from=None)
        dst.mkdir(parents=True, exist_ok=True)
        for name in ("model.safetensors", "train_log.csv"):
            if (src / name).is_file():
                shutil.copy2(src / name, dst / name)
        start = f" from {started.get('weights')} ({started.get('sha256')})" if started else ""
        res = finish_dense(cfg, note or f"trained in {src}{start}; tested on {cfg.data}", cache)
        loao[m] = _held_out_row(m, res, cfg.steps)
    table = {"model": data.model, "data": data.data, "in_dist": None, "loao": loao, "trained_in": str(work)}
    return _write_table(out, table)


def finished(cfg: DenseConfig) -> bool:
    """Whether ``cfg.out`` holds a finished run (``metrics.json``) of ``cfg`` (up to the config's
    ``RUN_KEYS`` and ``resume``). A key the run's config lacks (an option added since) counts as its
    default, which is what that run used."""
    folder = Path(cfg.out)
    if not (folder / "metrics.json").is_file() or not (folder / "config.json").is_file():
        return False
    used = with_defaults(json.loads((folder / "config.json").read_text(encoding="utf-8")))
    # a resumed run is the run it continued (its config names the folder it resumed from)
    return all(used.get(k) == v for k, v in config_values(cfg, (*RUN_KEYS, "resume")).items())


def stopped(cfg: DenseConfig) -> bool:
    """Whether ``cfg.out`` holds the resume point of a run of ``cfg`` that was stopped before it finished
    (:mod:`~medforensics.train.dense_resume`: written after every evaluation; the same config up to where
    and how fast it runs)."""
    from medforensics.train.dense_resume import check_same_run

    if finished(cfg):
        return False
    try:
        check_same_run(cfg, cfg.out)
    except ConfigError:
        return False
    return True


def train_many(cfgs: list[DenseConfig], jobs: int = 1, reuse: bool = False) -> list[dict[str, Any]]:
    """:func:`train_dense` of each config (their ``metrics.json`` contents), ``jobs`` at a time in spawned
    processes when ``jobs`` > 1 (CUDA and forked batch workers need a fresh process each). ``reuse``: configs
    whose folder already holds their finished run (:func:`finished`; for example runs that completed before
    a time limit stopped the rest) are read, not trained, and a run stopped after one of its evaluations
    (:func:`stopped`: a time limit, a lost session) resumes from its last one instead of starting again, so
    a long benchmark can be completed over several sessions."""
    todo = [c for c in cfgs if not (reuse and finished(c))]
    if reuse:
        todo = [replace(c, resume=c.out) if stopped(c) else c for c in todo]
    for c in todo:  # bad counts, device or workers: one line before anything starts
        check_counts(c)
        resolve_device(c.device)
    _train(todo, jobs)
    return [json.loads((Path(c.out) / "metrics.json").read_text(encoding="utf-8")) for c in cfgs]


def _train(cfgs: list[DenseConfig], jobs: int) -> None:
    if jobs <= 1:
        for c in cfgs:
            train_dense(c)
        return
    import multiprocessing as mp

    from medforensics._pools import children_ignore_sigint

    ctx = mp.get_context("spawn")
    for i in range(0, len(cfgs), jobs):
        procs = [ctx.Process(target=train_dense, args=(c,)) for c in cfgs[i : i + jobs]]
        with children_ignore_sigint():  # Ctrl-C is this process's: it stops them (no traceback from each)
            for p in procs:
                p.start()
        try:
            for p in procs:
                p.join()
        except BaseException:  # an interrupt: the runs stop now (a run's checkpoints let it resume)
            for p in procs:
                p.terminate()
            for p in procs:
                p.join(timeout=10)
            raise
        failed = [c.out for c, p in zip(cfgs[i : i + jobs], procs, strict=True) if p.exitcode != 0]
        if failed:
            raise RuntimeError(f"training failed for {failed}")


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def dense_markdown(result: dict[str, Any]) -> str:
    """The leaderboard section of the dense localiser."""
    ind = result["in_dist"] or {}
    methods = sorted(set(result["loao"]) | set(ind.get("test_auc_per_method") or {}))
    if not ind:
        summary = "In-distribution: not trained (leave-one-attack-out models only)"
    else:
        summary = (
            f"In-distribution: test AUC {_f(ind['test_auc'])}, top region within 10 mm for "
            f"{_f(ind['test_within_10mm'])} of tampered test scans ({ind['steps']} steps, "
            + (
                f"{ind['train_seconds']} s"
                if ind["train_seconds"] is not None
                else "stopped early by a time limit: the best checkpoint before it"
            )
            + ")"
        )
    lines = [
        f"## Dense localiser `{result['model']}` (scan level: maximum of the tamper map over the whole scan)",
        "",
        f"Data `{result['data']}`. {summary}. Unseen-attack mean AUC {_f(result['unseen_auc_mean'])}."
        + (f" The models were trained in `{result['trained_in']}`." if result.get("trained_in") else ""),
        "",
        "| method | in-distribution test AUC | unseen (left out of train/val) test AUC | LOAO train s |",
        "| --- | --- | --- | --- |",
    ]
    for m in methods:
        lo = result["loao"].get(m, {})
        lines.append(
            f"| {m} | {_f((ind.get('test_auc_per_method') or {}).get(m))} | {_f(lo.get('auc'))} | "
            f"{lo.get('train_seconds') or '-'} |"
        )
    return "\n".join(lines) + "\n"
