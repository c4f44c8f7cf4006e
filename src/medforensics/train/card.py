"""The model card written beside every checkpoint (data seen, scores, intended use, limitations)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from medforensics._atomic import write_text_atomic


def fmt_number(v: Any, digits: int = 4) -> str:
    """A metric for a model card: floats rounded to ``digits``, ``None`` as n/a."""
    return f"{v:.{digits}f}" if isinstance(v, float) else "n/a" if v is None else str(v)


#: What a feature model (no network, nothing initialised) learnt from, by family.
FITTED_ON = {
    "anomaly": "- Fitted on the train split's authentic samples only (TB, TM): it never saw an attack; "
    "validation data set its calibration and threshold.",
    "classical": "- Fitted on the forensic features of the train split (no initial weights).",
}


def _init_line(init: Any, seed: Any, family: str = "cnn") -> str:
    """Where the training started: pretrained weights (named, with their SHA-256) or random ones; for a
    feature model, what it was fitted on."""
    if family in FITTED_ON:
        return FITTED_ON[family]
    if isinstance(init, dict) and init.get("weights"):
        sha = str(init.get("sha256", ""))[:12]
        return (
            f"- Initial weights: {init['weights']} (sha256 {sha}), fine-tuned on the data below: the network "
            "also saw that pretraining set."
        )
    return f"- Initial weights: random (seed {seed})."


def write_model_card(
    path: Path, config: dict[str, Any], info: dict[str, Any], data: dict[str, Any], metrics: dict[str, Any]
) -> Path:
    """Markdown model card from the resolved config, model metadata, split summary and metrics."""
    lines = [
        f"# Model card: {config['model']}",
        "",
        f"- Family: {info['family']}; input: {info['input_kind']} of {data.get('input_shape')} in [0, 1].",
        f"- Task: `{config['data']['task']}`, classes {data.get('classes')}; "
        f"score = probability of not authentic (sum of {data.get('fake_classes')}).",
        f"- Parameters: {info.get('parameters') or 'n/a'}; seed {config['seed']}; "
        f"preset {config.get('preset') or 'none'}.",
        _init_line(info.get("init_weights"), config["seed"], str(info.get("family", "cnn"))),
        "",
        "## Data seen",
        f"Source: `{config['data'].get('path') or 'in-memory arrays'}`. Patient-level splits (no patient "
        "in two splits).",
        "",
        "| split | samples | patients | labels |",
        "| --- | --- | --- | --- |",
    ]
    for name, s in data.get("splits", {}).items():
        labels = ", ".join(f"{k} {v}" for k, v in sorted(Counter(s.get("labels", {})).items()))
        lines.append(f"| {name} | {s.get('n', 0)} | {s.get('patients', 0)} | {labels} |")
    if data.get("left_out"):
        left = ", ".join(f"{n} {label}" for label, n in data["left_out"].items())
        lines.append(f"\nLeft out (the task has no class for them): {left}.")
    if config["data"].get("exclude_types"):
        lines.append(f"\nExcluded from train/val (unseen attack): {config['data']['exclude_types']}.")
    lines += ["", "## Scores", ""]
    for split in ("val", "test"):
        m = metrics.get(split, {}).get("operating_point")
        if not m:
            continue
        tpr = next((v for k, v in m.items() if k.startswith("tpr_at_")), None)
        lines.append(
            f"- {split}: AUC {fmt_number(m.get('roc_auc'))}, accuracy {fmt_number(m.get('accuracy'))}, "
            f"TPR at 1% FPR {fmt_number(tpr)}, F1 {fmt_number(m.get('f1'))} (n={m.get('n')})"
        )
    op = metrics.get("operating_point", {})
    lines += [
        "",
        f"Operating point: threshold {fmt_number(op.get('threshold'))} on the calibrated score, chosen on "
        f"validation data for FPR <= {op.get('max_fpr', 0.01):g}.",
        "",
        "## Intended use",
        "Research and triage of medical images for tampering (CT-GAN style injection/removal, synthesis). A "
        "flag calls for a human review of the study and its provenance; it is not a diagnosis.",
        "",
        "## Limitations",
        "- Trained on the data above only: other scanners, reconstruction kernels, attack methods or "
        "post-processing (re-compression, resampling) may lower the scores; check the unseen-attack results.",
        "- Scores are calibrated on the validation split; recalibrate on local data before relying on the "
        "threshold.",
        "- Small data sets give wide confidence intervals on every figure above.",
        "",
    ]
    return write_text_atomic(path, "\n".join(lines))
