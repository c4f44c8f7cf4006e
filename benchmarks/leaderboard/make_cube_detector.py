"""Train, calibrate and bundle the cube CT detector (``cnn3d``) from a forge data set.

It was the bundled default until the dense localiser replaced it (``make_dense_detector.py``); the bundle
now goes to ``--work``/bundle (pass it to ``medforensics scan --model``), not into the package.

Usage (long job: run with ``nice`` when the machine is quiet)::

    python benchmarks/leaderboard/make_cube_detector.py --data /tmp/bench/ds1 \\
        --benchmark /tmp/bench/run1 --work /tmp/bench/default --epochs 30

Steps: read 32^3 cubes at 1 mm (attack task: authentic / injected / removed; SYN rows are not usable by
this task), add flipped copies of the TRAINING cubes only (in-plane flips: the same patients, no leak), train
on the train split, fit Platt scaling and the <= 1 % FPR threshold on val, score test, then copy the folder
into ``src/medforensics/assets/detector/`` with ``calibration.json``, a model card that carries the
benchmark's leave-one-attack-out AUCs, and the leaderboard.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medforensics._atomic import write_text_atomic
from medforensics.train import config_from_dict, train
from medforensics.train.data import ForgeDatasetSource, ListSource, Sample

KEEP = ("model.safetensors", "config.json", "train_log.csv")


def flipped(samples: list[Sample]) -> list[Sample]:
    """The training cubes plus their in-plane flips (x, y, both); val/test samples unchanged."""
    out = []
    for s in samples:
        out.append(s)
        if s.meta.get("split") != "train":
            continue
        for axes in ((3,), (2,), (2, 3)):
            arr = np.ascontiguousarray(np.flip(s.array, axis=tuple(a - 1 for a in axes)))
            out.append(Sample(arr, s.label, s.group, {**s.meta, "flip": list(axes)}))
    return out


def per_method(
    train_dir: Path, samples: list[Sample], platt: list[float], threshold: float
) -> dict[str, Any]:
    """Test-split AUC (vs the authentic test cubes) and recall at the operating point, per attack method."""
    from medforensics.evaluate.metrics import apply_platt, fake_score, roc_auc
    from medforensics.models.inference import predict_proba
    from medforensics.train.checkpoint import load_trained

    model, cfg, _ = load_trained(train_dir)
    test = [s for s in samples if s.meta.get("split") == "test"]
    probs = predict_proba(model, np.stack([s.array for s in test]), 64, cfg.precision, cfg.channels_last)
    score = apply_platt(fake_score(probs, (1, 2)), platt)
    meth = np.array([str(s.meta.get("method")) for s in test])
    auth = meth == "none"
    out = {}
    for m in sorted(set(meth) - {"none"}):
        sel = meth == m
        y = np.r_[np.zeros(auth.sum()), np.ones(sel.sum())]
        out[m] = {
            "n": int(sel.sum()),
            "auc": roc_auc(y, np.r_[score[auth], score[sel]]),
            "recall": float((score[sel] >= threshold).mean()),
        }
    return out


def loao(cfg: Any, samples: list[Sample], work: Path) -> list[dict[str, Any]]:
    """Leave-one-attack-out with this recipe (flips, epochs, patience): test AUC per held-out method."""
    from dataclasses import replace

    from medforensics.train.data import leave_method_out, sample_methods

    rows = []
    for m in sample_methods(samples):
        t0 = time.perf_counter()
        run = replace(cfg, out=str(work / "loao" / m))
        res = train(run, ListSource(flipped(leave_method_out(samples, m))))
        op = res.metrics["test"]["operating_point"]
        rows.append(
            {
                "held_out": m,
                "auc": op["roc_auc"],
                "tpr_at_1pct_fpr": op["tpr_at_1pct_fpr"],
                "n_test": op["n"],
                "best_epoch": res.best_epoch,
                "train_s": round(time.perf_counter() - t0, 1),
            }
        )
        shutil.rmtree(work / "loao" / m / "last", ignore_errors=True)
        write_text_atomic(work / "loao.json", json.dumps(rows, indent=1))
    return rows


def _f(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def model_card(metrics: dict[str, Any], bench: dict[str, Any] | None, data: dict[str, Any]) -> str:
    """The bundled detector's card: data seen, scores, operating point, limitations."""
    test, val = metrics["test"], metrics["val"]
    op = test["operating_point"]
    cal = metrics["operating_point"]
    per = test["per_label"]
    lines = [
        "# Model card: medforensics default CT detector (`cnn3d`)",
        "",
        "3-D CNN (4 conv-BN-ReLU stages 16-128 channels, max-pool, global pool, dropout 0.3, "
        f"{metrics['parameters']:,} parameters) on 32^3 cubes at 1 mm isotropic around a candidate, "
        "HU window [-1000, 400] scaled to [0, 1]. Outputs authentic / injected / removed probabilities; the "
        "tamper score is 1 - p(authentic), Platt-calibrated on validation data (`calibration.json`).",
        "",
        "## Data seen",
        "",
        f"Forge data set `{data['name']}` built by `medforensics forge dataset --per-class "
        f"{data['per_class']} --seed {data['seed']}` from the only real chest CTs available offline: "
        f"{data['sources']}. Patients per split: {data['patients_per_split']} (one patient per split "
        "for val and test). Attack methods: "
        f"{data['methods']}. Sub-volumes are augmented (seed-study augmentations) with probability 0.75 "
        "whatever their class. Training cubes were also flipped in-plane (x, y, both).",
        "",
        "| split | samples | labels |",
        "| --- | --- | --- |",
    ]
    for k, s in metrics["data"].items():
        lines.append(f"| {k} | {s['n']} | {', '.join(f'{a} {b}' for a, b in sorted(s['labels'].items()))} |")
    lines += [
        "",
        "SYN (fully synthetic DCGAN) samples are not used: this detector's task is injection/removal. "
        "The validation patient has no removal (FB) samples (in-painting failed near its slab border), "
        "so calibration and the operating point were fitted without removals.",
        "",
        "## Scores (test split: one patient never seen in training or validation)",
        "",
        f"- In-distribution ROC-AUC {_f(op['roc_auc'])}; TPR at 1 % FPR {_f(op['tpr_at_1pct_fpr'])}; "
        f"at the operating point: accuracy {_f(op['accuracy'])}, precision {_f(op['precision'])}, recall "
        f"{_f(op['recall'])}, F1 {_f(op['f1'])}, FPR {_f(op['fpr'])} (n = {op['n']}).",
        "- Accuracy per CT-GAN label at the operating point: "
        + ", ".join(
            f"{k} {_f(per[k]['accuracy'])} (n={per[k]['n']})" for k in ("TB", "TM", "FB", "FM") if k in per
        )
        + ".",
        "- Attack type (authentic / injected / removed) accuracy: "
        f"{_f(test.get('classes', {}).get('accuracy'))}.",
        f"- Validation ROC-AUC {_f(val['operating_point']['roc_auc'])}.",
        "- Per attack method on test (AUC vs the authentic test cubes; recall at the operating point): "
        + "; ".join(
            f"{m} AUC {_f(v['auc'])}, recall {_f(v['recall'])} (n={v['n']})"
            for m, v in metrics.get("test_per_method", {}).items()
        )
        + ".",
    ]
    if bench:
        row: dict[str, Any] = next((r for r in bench["rows"] if r["model"] == "cnn3d"), {})
        loao = [r for r in bench.get("loao", []) if r["model"] == "cnn3d"]
        lines += [
            "- Unseen attacks (benchmark, leave-one-attack-out, same split, "
            f"{bench['config'].get('epochs')} epochs): "
            + ", ".join(f"{r['held_out']} {_f(r['auc'])}" for r in loao)
            + f"; mean {_f(row.get('unseen_auc_mean'))}. (Held-out methods its task cannot score are n/a.)",
        ]
    if metrics.get("loao_recipe"):
        rows = metrics["loao_recipe"]
        mean = float(np.mean([r["auc"] for r in rows if r["auc"] is not None]))
        lines.append(
            "- Unseen attacks with THIS model's recipe (flips, same epochs; each method left out of "
            "train/val, test = its fakes + authentic test cubes): "
            + ", ".join(f"{r['held_out']} AUC {_f(r['auc'])}" for r in rows)
            + f"; mean {mean:.3f}."
        )
    unseen = [r["auc"] for r in metrics.get("loao_recipe", []) if r["auc"] is not None]
    label_acc = {k: per[k]["accuracy"] for k in ("TB", "TM", "FB", "FM") if k in per}

    def verdict(ok: bool) -> str:
        return "reached" if ok else "MISSED"

    lines += [
        "",
        "## Targets of issue 4 (honest status)",
        "",
        f"- Unseen-attack AUC >= 0.95: mean {np.mean(unseen) if unseen else float('nan'):.3f}: "
        f"{verdict(bool(unseen) and float(np.mean(unseen)) >= 0.95)}. An AUC near 0 means the held-out "
        "attack is scored systematically as MORE authentic than real tissue (probably because in-painted "
        "removals look smoother than real lung to a model that never saw a removal): the detector does not "
        "generalise to attack methods it was not trained on.",
        f"- In-distribution AUC >= 0.99: {op['roc_auc']:.3f}: {verdict(op['roc_auc'] >= 0.99)}.",
        "- TB/TM/FB/FM accuracy >= 95 %: "
        + ", ".join(f"{k} {v:.3f}" for k, v in label_acc.items())
        + f": {verdict(all(v >= 0.95 for v in label_acc.values()))}.",
    ]
    if bench:
        lines += [
            "",
            "## Why this model",
            "",
            f"The leaderboard's first model by unseen-attack AUC is `{bench.get('recommended')}` (a 2-D "
            "feature-density anomaly detector trained on authentic crops only). It cannot serve the CT scan: "
            "it has no 3-D context and no attack type, and the scan loads CNNs only. Among the CNNs with "
            f"3-D context the leaderboard ranks `{bench.get('recommended_ct')}` first, within noise of "
            "`cnn3d`; `cnn3d` was bundled because it gives the attack type (injected / removed) the scan "
            "reports, and with this model's recipe (flips, 30 epochs) its unseen-attack mean is the higher "
            "of the two. Pairing it with the anomaly detector's score is the obvious next step.",
        ]
    lines += [
        "",
        "## Operating point",
        "",
        f"Threshold {cal['threshold']:.4f} on the calibrated cube score, chosen on validation data for "
        f"FPR <= 1 % (Platt a = {cal['calibration']['platt'][0]:.4f}, "
        f"b = {cal['calibration']['platt'][1]:.4f}). No series-level threshold is fitted here (it needs "
        "scanned validation series); `scan` falls back to the cube threshold.",
        "",
        "## Intended use",
        "Research and triage of chest CT for CT-GAN-style tampering (nodule injection / removal). A flag "
        "calls for a human review of the study and its provenance; it is not a diagnosis.",
        "",
        "## Limitations (read these)",
        "- Only four real CT patients exist offline (three LIDC-IDRI slabs of 11-16 slices with one nodule "
        "each, and one full chest CT without nodule annotations). Train, validation and test each hold one "
        "or two patients, so every figure above has a very wide confidence interval and says little about "
        "other scanners, kernels or populations.",
        "- The attacks are this project's own (blob injection, copy-move, in-painting removal); the learned "
        "CT-GAN attacks were not available when this model was trained. Real attacks may look different.",
        "- Real nodules (TM) of an unseen patient can look unlike the training nodules: check the TM "
        "accuracy above before trusting a 'tampered' verdict on a study with true nodules.",
        "- Recalibrate the threshold on local data before relying on it.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--benchmark", help="benchmark output folder (benchmark.json, leaderboard.md)")
    ap.add_argument("--work", default="/tmp/bench/default")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reuse", action="store_true", help="reuse WORK/train (only rewrite the bundle)")
    ap.add_argument("--loao", action="store_true", help="also run leave-one-attack-out with this recipe")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    samples = [s for s in ForgeDatasetSource(a.data, "3d", 32) if s.label != "SYN"]
    work = Path(a.work)
    cfg = config_from_dict(
        {
            "model": "cnn3d",
            "out": str(work / "train"),
            "preset": "cpu-fast",
            "epochs": a.epochs,
            "early_stopping_patience": a.patience,
            "batch_size": 16,
            "seed": a.seed,
            "data": {"task": "attack", "size": 32},
        }
    )
    train_dir = work / "train"
    if a.reuse and (train_dir / "metrics.json").is_file():
        metrics = json.loads((train_dir / "metrics.json").read_text())
    else:
        metrics = dict(train(cfg, ListSource(flipped(samples))).metrics)
    if a.loao:
        metrics["loao_recipe"] = loao(cfg, samples, work)
    elif (work / "loao.json").is_file():
        metrics["loao_recipe"] = json.loads((work / "loao.json").read_text())
    ds = json.loads((Path(a.data) / "dataset.json").read_text())
    bench = json.loads((Path(a.benchmark) / "benchmark.json").read_text()) if a.benchmark else None
    op0 = metrics["operating_point"]
    metrics["test_per_method"] = per_method(train_dir, samples, op0["calibration"]["platt"], op0["threshold"])
    metrics["version"] = f"cnn3d-ct-{time.strftime('%Y%m%d')}-seed{a.seed}"
    if bench:
        metrics["benchmark"] = {
            "loao": [r for r in bench["loao"] if r["model"] == "cnn3d"],
            "row": next((r for r in bench["rows"] if r["model"] == "cnn3d"), None),
        }
    op = metrics["operating_point"]
    calib = {
        "platt": op["calibration"]["platt"],
        "threshold": op["threshold"],
        "series_threshold": None,
        "max_fpr": op["max_fpr"],
        "fitted_on": "validation split (cube scores)",
    }
    data = {
        "name": Path(a.data).name,
        "per_class": ds["config"]["per_class"],
        "seed": ds["config"]["seed"],
        "sources": ", ".join(s["name"] for s in ds["sources"]),
        "patients_per_split": {k: len(v) for k, v in ds["patients_per_split"].items()},
        "methods": ", ".join(sorted({str(s.meta.get("method")) for s in samples} - {"none"})),
    }
    metrics["data_counts"] = dict(Counter(s.label for s in samples))
    out = work / "bundle"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for name in KEEP:
        shutil.copy2(train_dir / name, out / name)
    resolved = json.loads((out / "config.json").read_text())
    resolved.update(out=".", resume=None)
    write_text_atomic(out / "config.json", json.dumps(resolved, indent=1))
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=1, default=str))
    write_text_atomic(out / "calibration.json", json.dumps(calib, indent=1))
    write_text_atomic(out / "model_card.md", model_card(metrics, bench, data))
    if a.benchmark:
        shutil.copy2(Path(a.benchmark) / "leaderboard.md", out / "leaderboard.md")
    print(
        json.dumps(
            {"seconds": round(time.perf_counter() - t0, 1), "test": metrics["test"]["operating_point"]}
        )
    )


if __name__ == "__main__":
    main()
