"""The benchmark's leaderboard: ranking and the Markdown / CSV files (written atomically).

Order: unseen-attack AUC (mean over held-out methods) first, then in-distribution AUC, then inference
speed; models without LOAO numbers come after those with, errors last.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from medforensics._atomic import write_text_atomic
from medforensics.evaluate.metrics import auc_se, normal_ci95

LABEL_COLUMNS = ("acc_TB", "acc_TM", "acc_FB", "acc_FM", "acc_SYN")
#: Fixed leaderboard columns; ``unseen_auc_<method>`` columns follow, one per held-out method.
COLUMNS = (
    "rank",
    "model",
    "input",
    "family",
    "task",
    "params",
    "train_s",
    "img_per_s",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "tpr_at_1pct_fpr",
    *LABEL_COLUMNS,
    "type_accuracy",
    "in_dist_auc",
    "in_dist_auc_ci95",
    "unseen_auc_mean",
    "unseen_auc_mean_ci95",
)
LOAO_COLUMNS = (
    "model",
    "held_out",
    "auc",
    "auc_ci95",
    "tpr_at_1pct_fpr",
    "accuracy",
    "n_test",
    "n_positive",
    "train_s",
    "note",
)


def data_summary(samples: Iterable[tuple[str, str, str, str]]) -> dict[str, Any]:
    """The data set line of the leaderboard from each sample's (split, label, patient, method)."""
    per_split: dict[str, Counter[str]] = {}
    patients: dict[str, set[str]] = {}
    methods: Counter[str] = Counter()
    n = 0
    for split, label, patient, method in samples:
        per_split.setdefault(split, Counter())[label] += 1
        patients.setdefault(split, set()).add(patient)
        methods[method] += 1
        n += 1
    return {
        "n": n,
        "labels_per_split": {k: dict(sorted(v.items())) for k, v in sorted(per_split.items())},
        "patients_per_split": {k: len(v) for k, v in sorted(patients.items())},
        "methods": dict(methods),
    }


def with_unseen(row: dict[str, Any], loao: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``row`` with the unseen-attack AUCs of its leave-one-attack-out rows (their mean and one per held-out
    method, when it has any) and ``wall_s``: what the row cost, its in-distribution and held-out runs."""
    if loao:
        aucs = [r["auc"] for r in loao if r["auc"] is not None]
        row["unseen_auc_mean"] = sum(aucs) / len(aucs) if aucs else None
        row.update({f"unseen_auc_{r['held_out']}": r["auc"] for r in loao})
    row["wall_s"] = round(row.get("run_s", 0.0) + sum(r.get("train_s") or 0.0 for r in loao), 1)
    return row


def recommend(rows: list[dict[str, Any]], kinds: tuple[str, ...] | None) -> str | None:
    """First model in leaderboard order (unseen AUC, then speed) of a CNN or dense family with an allowed
    input kind (any model without ``kinds``)."""
    for r in rows:
        if "error" in r:
            continue
        if kinds is None or (r.get("family") in ("cnn", "dense") and r.get("input", "").split()[0] in kinds):
            return str(r["model"])
    return None


def _se(auc: Any, n: Any, n_pos: Any) -> float | None:
    """Hanley-McNeil standard error of a stored AUC (None without the counts)."""
    if auc is None or not isinstance(n, int) or not isinstance(n_pos, int):
        return None
    return auc_se(float(auc), n_pos, n - n_pos)


def _ci(auc: Any, se: float | None) -> tuple[float, float] | None:
    return None if se is None else normal_ci95(float(auc), se)


def with_intervals(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with 95 % intervals: ``auc_ci95`` per LOAO run, ``in_dist_auc_ci95`` and
    ``unseen_auc_mean_ci95`` per model (the mean's from the runs' standard errors as if independent: the
    held-out runs share their authentic test samples, so it is a rough guide). Computed from the stored
    AUCs and class counts, so older results get them too."""
    loao, se_of = [], {}
    for i, r in enumerate(result.get("loao", [])):
        se_of[i] = _se(r.get("auc"), r.get("n_test"), r.get("n_positive"))
        loao.append({**r, "auc_ci95": _ci(r.get("auc"), se_of[i])})
    rows = []
    for r in result["rows"]:
        se = _se(r.get("in_dist_auc"), r.get("n"), r.get("n_positive"))
        row = {**r, "in_dist_auc_ci95": _ci(r.get("in_dist_auc"), se)}
        ses = [se_of[i] for i, x in enumerate(loao) if x["model"] == r["model"] and x.get("auc") is not None]
        if ses and r.get("unseen_auc_mean") is not None and all(v is not None for v in ses):
            mean_se = math.sqrt(sum(v * v for v in ses if v is not None)) / len(ses)
            row["unseen_auc_mean_ci95"] = normal_ci95(float(r["unseen_auc_mean"]), mean_se)
        rows.append(row)
    return {**result, "rows": rows, "loao": loao}


def _key(row: dict[str, Any]) -> tuple[int, float, float, float]:
    if "error" in row:
        return (2, 0.0, 0.0, 0.0)
    unseen = row.get("unseen_auc_mean")
    return (
        0 if unseen is not None else 1,
        -(unseen or 0.0),
        -(row.get("in_dist_auc") or 0.0),
        -(row.get("img_per_s") or 0.0),
    )


def rank_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows sorted by :func:`_key`, each with its ``rank`` (1-based)."""
    return [{**r, "rank": i + 1} for i, r in enumerate(sorted(rows, key=_key))]


def columns(result: dict[str, Any]) -> list[str]:
    """Leaderboard columns of a benchmark result (per-method unseen AUCs appended)."""
    return [*COLUMNS, *(f"unseen_auc_{m}" for m in result.get("methods", [])), "wall_s", "error"]


#: Columns shown with one decimal (seconds, rates); other floats with three.
ONE_DECIMAL = ("train_s", "img_per_s", "wall_s")


def _fmt(v: Any, col: str = "") -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, tuple | list) and len(v) == 2 and all(isinstance(x, float) for x in v):
        return f"{v[0]:.2f}-{v[1]:.2f}"
    if isinstance(v, float):
        return f"{v:.1f}" if col in ONE_DECIMAL else f"{v:.3f}"
    if isinstance(v, int) and v >= 100_000:
        return f"{v / 1e6:.2f} M"
    return str(v).replace("|", "/")


def _csv_cell(v: Any) -> Any:
    """A CSV cell: empty for None, an interval as ``lo-hi`` (3 decimals)."""
    if v is None:
        return ""
    if isinstance(v, tuple | list) and len(v) == 2:
        return f"{v[0]:.3f}-{v[1]:.3f}"
    return v


def _csv(rows: Sequence[dict[str, Any]], cols: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(cols), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: _csv_cell(r.get(c)) for c in cols})
    return buf.getvalue()


def _table(rows: Sequence[dict[str, Any]], cols: Sequence[str]) -> list[str]:
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    lines += ["| " + " | ".join(_fmt(r.get(c), c) for c in cols) + " |" for r in rows]
    return lines


def loao_matrix(result: dict[str, Any]) -> list[str]:
    """Markdown table: one row per model, one AUC column per held-out method, and the mean."""
    methods = result.get("methods", [])
    by_model: dict[str, dict[str, Any]] = {}
    for r in result.get("loao", []):
        by_model.setdefault(r["model"], {})[r["held_out"]] = r
    cols = ["model", *methods, "mean"]
    rows = []
    for r in result["rows"]:
        if r["model"] not in by_model:
            continue
        cells = by_model[r["model"]]
        rows.append(
            {
                "model": r["model"],
                **{m: cells.get(m, {}).get("auc") for m in methods},
                "mean": r.get("unseen_auc_mean"),
            }
        )
    return _table(rows, cols)


def markdown(result: dict[str, Any]) -> str:
    """The whole ``leaderboard.md``."""
    cfg, mach, data = result["config"], result["machine"], result["data_summary"]
    shown = [c for c in columns(result) if c != "error" and any(r.get(c) is not None for r in result["rows"])]
    lines = [
        "# medforensics benchmark leaderboard",
        "",
        f"Data: `{Path(str(result['data'])).name}`: {data['n']} samples; labels per split "
        f"{data['labels_per_split']}; patients per split {data['patients_per_split']}; attack methods "
        f"{', '.join(result['methods']) or 'none'}.",
        "",
        f"Run: preset `{cfg['preset']}`, seed {cfg['seed']}, 2-D crops {cfg['size_2d']} px, epochs "
        f"{cfg['epochs'] or 'preset'}, patience {cfg.get('patience') or 'preset'}, batch "
        f"{cfg.get('batch_size') or 'preset'}, protocols {', '.join(cfg['protocols'])}; "
        f"torch {mach['torch']} on "
        f"{mach['cpus']} CPU(s), {mach['torch_threads']} thread(s), CNNs on {mach.get('device', 'cpu')}; "
        "load average at start "
        f"{mach['load_average_start']}, at end {mach['load_average_end']}; total wall time "
        f"{result['wall_s']:.0f} s.",
        *_reused(result),
        "",
        "Scores: test split; `accuracy`..`f1` at the operating threshold chosen on val for <= 1 % FPR "
        "(Platt-calibrated score); `acc_<label>` = share of that label called correctly (real/fake) at that "
        "threshold; `type_accuracy` = authentic/injected/removed accuracy (3-class models); `in_dist_auc` = "
        "test ROC-AUC; `unseen_auc_<method>` = test ROC-AUC when `<method>` was left out of train/val "
        "(test = its tampered samples + authentic test samples); `img_per_s` = inference on this machine; "
        "`train_s` = training wall seconds (in-distribution run); `*_ci95` = approximate 95 % interval of "
        "the AUC from the test class counts (Hanley-McNeil; the unseen mean's treats the held-out runs as "
        "independent; per held-out run in `loao.csv`).",
        "",
        *_table(result["rows"], shown),
        "",
    ]
    if result.get("loao"):
        lines += [
            "## Leave-one-attack-out (test ROC-AUC on the held-out method)",
            "",
            *loao_matrix(result),
            "",
        ]
        notes = [r for r in result["loao"] if r.get("note")]
        lines += [f"- {r['model']} / {r['held_out']}: {r['note']}" for r in notes]
    excl = [r for r in result["rows"] if r.get("excluded_labels")]
    errors = [r for r in result["rows"] if r.get("error")]
    dense = [r for r in result["rows"] if r.get("family") == "dense" and not r.get("error")]
    if excl or errors or dense:
        lines += ["", "## Notes", ""]
        lines += [
            f"- {r['model']}: a dense localiser, scored at scan level: each test scan scanned as `scan` "
            "does (it finds the edit as well as judges it; the zoo's inputs are centred on the site); "
            f"TB/TM/FB/FM label accuracy {_fmt(r.get('label_accuracy'))}, top finding within 10 mm of "
            f"the edit {_fmt(r.get('localised_10mm'))}; its figures in `{r.get('folder')}/eval/`"
            for r in dense
        ]
        lines += [
            f"- {r['model']}: labels {r['excluded_labels']} not usable by its task, left out" for r in excl
        ]
        lines += [f"- {r['model']}: error: {r['error']}" for r in errors]
    lines += [
        "",
        f"Recommended (unseen-attack AUC, then speed): **{result.get('recommended')}**; among CNNs that see "
        f"3-D context (the CT scan detector): **{result.get('recommended_ct')}**.",
        *_overlapping(result),
        "",
    ]
    return "\n".join(lines)


def _reused(result: dict[str, Any]) -> list[str]:
    """A line on the training runs taken from an earlier run (``benchmark --resume``), when there are any."""
    reused = result.get("reused_runs") or []
    if not reused:
        return []
    return [
        "",
        f"{len(reused)} training run(s) were taken from an earlier, interrupted run of the same samples and "
        "settings (`--resume`): the total wall time is this run's; each row's `wall_s` counts its runs "
        "wherever they ran, and its `img_per_s` was measured by the run that trained it.",
    ]


def overlapping_top(rows: list[dict[str, Any]], best: str | None) -> list[str]:
    """Models whose unseen-attack 95 % interval overlaps that of ``best`` (the recommended model)."""
    top = next((r for r in rows if r["model"] == best), None)
    ci = top.get("unseen_auc_mean_ci95") if top else None
    if not ci:
        return []
    return [
        str(r["model"])
        for r in rows
        if r["model"] != best
        and r.get("unseen_auc_mean_ci95")
        and r["unseen_auc_mean_ci95"][1] >= ci[0]
        and r["unseen_auc_mean_ci95"][0] <= ci[1]
    ]


def _overlapping(result: dict[str, Any]) -> list[str]:
    """A line naming the models one run does not tell apart from the recommended one (session 30: the
    order of the top two flipped between two draws of the same patients)."""
    close = overlapping_top(result["rows"], result.get("recommended"))
    if not close:
        return []
    return [
        "",
        f"Not told apart from it by this run (unseen-attack 95 % intervals overlap): {', '.join(close)}. One "
        "data set's order among them is not settled; `benchmarks/leaderboard/draws.py` repeats fast models "
        "over several forge draws.",
    ]


def write_leaderboard(result: dict[str, Any], out: str | Path) -> list[Path]:
    """``leaderboard.md``, ``leaderboard.csv`` and ``loao.csv`` under ``out`` (with 95 % AUC intervals)."""
    out = Path(out)
    result = with_intervals(result)
    return [
        write_text_atomic(out / "leaderboard.md", markdown(result)),
        write_text_atomic(out / "leaderboard.csv", _csv(result["rows"], columns(result))),
        write_text_atomic(out / "loao.csv", _csv(result.get("loao", []), LOAO_COLUMNS)),
    ]
