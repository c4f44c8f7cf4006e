"""``forge report``: realism evidence for a data set built by ``forge dataset``.

(a) ``montage.png``: axial centre slices (lung window) of real nodules (TM), healthy regions (TB), and the
regions of each inject (FM) and remove (FB) method; (b) ``hu_histograms.png`` and HU statistics of real vs
injected nodules; (c) a trivial detector, logistic regression on intensity statistics of the region,
separating real (TM + TB) from forged (FM + FB) per method, AUC from patient-grouped cross-validation (an AUC
near 0.5 means the attack is hard for it). Results in ``realism.json`` and ``realism.md``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage, stats

from medforensics._atomic import atomic_path, check_folder_output
from medforensics._seed import check_seed
from medforensics.errors import InputError
from medforensics.forge.dataset_layout import manifest_path, read_manifest
from medforensics.io.volume import Volume
from medforensics.logging import get_logger

log = get_logger("forge.realism")

REGION_MM = 32.0  # side of the analysed region
CORE_MM = 3.0  # radius of the nodule core for HU statistics
FEATURES = (
    "mean",
    "std",
    "p5",
    "p25",
    "p50",
    "p75",
    "p95",
    "skew",
    "kurtosis",
    "grad_mean",
    "grad_std",
    "grad_p95",
    "highpass_std",
)


@dataclass
class Item:
    """One data-set sample with its analysed region."""

    uuid: str
    label: str
    method: str
    patient: str
    center: tuple[int, int, int]
    region: NDArray[np.float32]
    local: tuple[int, int, int]  # the site inside ``region`` (regions are clipped at the scan border)
    spacing: tuple[float, float, float]
    center_slice: NDArray[np.float32]
    augmentation: list[dict[str, Any]] = field(default_factory=list)

    @property
    def hu_preserved(self) -> bool:
        """False when a brightness augmentation rescaled the HU (excluded from the HU statistics)."""
        return not any(a.get("kind") == "brightness" for a in self.augmentation)


#: The manifest columns the report reads.
_COLUMNS = ("uuid", "type", "method", "patient", "z", "y", "x", "cand_z", "cand_y", "cand_x")
_UUID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _center(row: dict[str, str]) -> tuple[int, int, int]:
    if row["type"] in ("TM", "FM", "FB"):
        return int(row["z"]), int(row["y"]), int(row["x"])
    return int(row["cand_z"] or 0), int(row["cand_y"] or 0), int(row["cand_x"] or 0)


def _parse_row(row: dict[str, str], k: int, path: Path) -> tuple[tuple[int, int, int], list[dict[str, Any]]]:
    """The location and augmentation chain of manifest row ``k`` (1: the first after the header); a broken
    row is one error naming it."""

    def bad(why: str) -> InputError:
        return InputError(f"row {k} (uuid {row.get('uuid')!r}): {why}", path=path)

    if not _UUID.fullmatch(row["uuid"] or ""):
        raise bad("the uuid is not a scan name")
    try:
        center = _center(row)
    except (ValueError, TypeError):  # a missing cell reads as None: TypeError
        axes = ("z", "y", "x") if row["type"] in ("TM", "FM", "FB") else ("cand_z", "cand_y", "cand_x")
        raise bad(f"{', '.join(axes)} are not whole numbers: {[row.get(a) for a in axes]}") from None
    try:
        chain = json.loads(row.get("augmentation") or "[]")
    except ValueError:
        raise bad("augmentation is not JSON") from None
    if not isinstance(chain, list) or not all(isinstance(a, dict) for a in chain):
        raise bad("augmentation is not a JSON list of objects")
    return center, chain


def _box(vol: Volume, c: tuple[int, int, int], side_mm: float) -> tuple[slice, ...]:
    half = [max(1, round(side_mm / 2 / s)) for s in vol.spacing]
    return tuple(
        slice(max(0, ci - h), min(n, ci + h + 1)) for ci, h, n in zip(c, half, vol.shape, strict=True)
    )


def load_items(data: Path) -> list[Item]:
    """Every sample's region (``REGION_MM`` cube around its location or candidate location)."""
    from medforensics.forge.ctgan.data import read_any
    from medforensics.forge.dataset import scan_path

    path = data / "manifest.csv"
    rows = read_manifest(data, _COLUMNS)
    parsed = [_parse_row(row, k, path) for k, row in enumerate(rows, start=1)]  # all before any scan
    items = []
    for k, (row, (c, chain)) in enumerate(zip(rows, parsed, strict=True), start=1):
        vol = read_any(scan_path(data, row["uuid"]))
        if not all(0 <= ci < n for ci, n in zip(c, vol.shape, strict=True)):
            why = f"location {list(c)} is outside the scan (shape {list(vol.shape)})"
            raise InputError(f"row {k} (uuid {row['uuid']!r}): {why}", path=path)
        box = _box(vol, c, REGION_MM)
        region = vol.array[box]
        local = (c[0] - box[0].start, c[1] - box[1].start, c[2] - box[2].start)
        win = _box(vol, c, 2 * REGION_MM)
        items.append(
            Item(
                row["uuid"],
                row["type"],
                row["method"],
                row["patient"],
                c,
                region,
                local,
                vol.spacing,
                vol.array[c[0], win[1], win[2]],
                chain,
            )
        )
    return items


def region_features(region: NDArray[np.floating], spacing: tuple[float, float, float]) -> NDArray[np.float64]:
    """Intensity statistics of a region (see :data:`FEATURES`)."""
    x = np.asarray(region, dtype=np.float64)
    flat = x.ravel()
    p5, p25, p50, p75, p95 = np.percentile(flat, [5, 25, 50, 75, 95])
    grads = np.gradient(x, *spacing) if min(x.shape) > 1 else [np.gradient(x[0], *spacing[1:])[0]]
    gmag = np.sqrt(sum(g**2 for g in grads)).ravel()
    hp = x - ndimage.gaussian_filter(x, [1.0 / s for s in spacing])
    with np.errstate(all="ignore"):
        skew, kurt = float(stats.skew(flat)), float(stats.kurtosis(flat))
    return np.nan_to_num(
        np.array(
            [
                flat.mean(),
                flat.std(),
                p5,
                p25,
                p50,
                p75,
                p95,
                skew,
                kurt,
                gmag.mean(),
                gmag.std(),
                np.percentile(gmag, 95),
                hp.std(),
            ]
        )
    )


def oof_probabilities(
    X: NDArray[np.float64], y: NDArray[np.int_], groups: NDArray[Any], seed: int = 0
) -> NDArray[np.float64] | None:
    """Out-of-fold P(forged) of standardised logistic regression, folds grouped by patient (None when
    there are not both classes or not two patients)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n_groups = len(set(groups.tolist()))
    if len(set(y.tolist())) < 2 or n_groups < 2:
        return None
    prob = np.full(len(y), np.nan)
    for tr, te in GroupKFold(n_splits=min(5, n_groups)).split(X, y, groups):
        if len(set(y[tr].tolist())) < 2:  # a fold without both classes: predict the training rate
            prob[te] = float(y[tr].mean())
            continue
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
        clf.fit(X[tr], y[tr])
        prob[te] = clf.predict_proba(X[te])[:, 1]
    return prob


def _auc_rows(y: NDArray[np.int_], prob: NDArray[np.float64]) -> NDArray[np.float64]:
    """ROC AUC of each row (Mann-Whitney U with tied ranks averaged); NaN for rows with one class."""
    ranks = stats.rankdata(prob, axis=-1)
    n1 = y.sum(axis=-1)
    n0 = y.shape[-1] - n1
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((ranks * y).sum(axis=-1) - n1 * (n1 + 1) / 2.0) / (n1 * n0)


def auc_with_ci(
    y: NDArray[np.int_], prob: NDArray[np.float64], seed: int = 0, n_boot: int = 1000
) -> tuple[float, tuple[float, float]]:
    """ROC AUC and its 95 % percentile-bootstrap interval (resampling samples)."""
    idx = np.random.default_rng(seed).integers(0, len(y), (n_boot, len(y)))
    boots = _auc_rows(y[idx], prob[idx])
    boots = boots[np.isfinite(boots)]
    lo, hi = np.percentile(boots, [2.5, 97.5]) if boots.size else (np.nan, np.nan)
    return float(_auc_rows(y, prob)), (round(float(lo), 3), round(float(hi), 3))


def detector_auc(items: list[Item], seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per forged method (and all together): patient-grouped CV AUC of logistic regression.

    ``auc``: real (TM + TB) vs the method's forgeries (``all``: every FM and FB). ``auc_matched``: against
    the real class that looks alike (FM vs TM: both show a nodule; FB and SYN vs TB: neither does), so it
    measures the attack's traces rather than the presence of a nodule.
    """
    feats = {it.uuid: region_features(it.region, it.spacing) for it in items}
    forged_methods = sorted({f"{it.label}:{it.method}" for it in items if it.label in ("FM", "FB", "SYN")})
    out: dict[str, dict[str, Any]] = {}
    for key in [*forged_methods, "all"]:
        fake = [
            it
            for it in items
            if (it.label in ("FM", "FB") and key == "all") or f"{it.label}:{it.method}" == key
        ]
        res: dict[str, Any] = {"n_forged": len(fake)}
        matched = {"FM": "TM", "FB": "TB", "SYN": "TB"}.get(key.split(":")[0])
        for name, real_labels in (("auc", ("TM", "TB")), ("auc_matched", (matched,) if matched else None)):
            if real_labels is None:
                continue
            real = [it for it in items if it.label in real_labels]
            sel = real + fake
            X = np.stack([feats[it.uuid] for it in sel]) if sel else np.zeros((0, len(FEATURES)))
            y = np.array([0] * len(real) + [1] * len(fake))
            groups = np.array([it.patient for it in sel])
            prob = oof_probabilities(X, y, groups, seed)
            res[name] = None
            if prob is not None:
                res[name], res[f"{name}_ci95"] = auc_with_ci(y, prob, seed)
            if name == "auc":
                res.update(n_real=len(real), n_patients=len(set(groups.tolist())))
        if res["auc"] is None:
            res["note"] = "needs both classes and at least 2 patients"
        out[key] = res
    return out


def _core(it: Item, radius_mm: float = CORE_MM) -> NDArray[np.float32]:
    c = it.local
    zz, yy, xx = np.meshgrid(
        *[(np.arange(n) - ci) * sp for n, ci, sp in zip(it.region.shape, c, it.spacing, strict=True)],
        indexing="ij",
    )
    return it.region[zz**2 + yy**2 + xx**2 <= radius_mm**2]


def hu_statistics(items: list[Item]) -> dict[str, dict[str, float]]:
    """Mean/std HU of the nodule core (sphere of ``CORE_MM``) per real / injected method / removed method,
    over the samples whose HU no brightness augmentation changed."""
    groups: dict[str, list[NDArray[np.float32]]] = {}
    for it in items:
        if it.label in ("TM", "FM", "FB") and it.hu_preserved:
            key = "real (TM)" if it.label == "TM" else f"{it.label}:{it.method}"
            groups.setdefault(key, []).append(_core(it))
    out = {}
    for key, vals in sorted(groups.items()):
        v = np.concatenate(vals)
        out[key] = {
            "n_regions": len(vals),
            "mean_hu": round(float(v.mean()), 1),
            "std_hu": round(float(v.std()), 1),
            "median_hu": round(float(np.median(v)), 1),
        }
    return out


def _plot_histograms(items: list[Item], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    bins = [float(b) for b in np.linspace(-1000, 400, 71)]
    keys = ["TM", *sorted({f"FM:{it.method}" for it in items if it.label == "FM"})]
    for key in keys:
        sel = [
            it
            for it in items
            if it.hu_preserved and (it.label == "TM" if key == "TM" else f"FM:{it.method}" == key)
        ]
        if sel:
            v = np.concatenate([_core(it, 6.0) for it in sel])
            ax.hist(
                v,
                bins=bins,
                density=True,
                histtype="step",
                lw=1.8,
                label=("real nodules (TM)" if key == "TM" else f"injected ({key[3:]})") + f", n={len(sel)}",
            )
    ax.set_xlabel("HU (sphere of 6 mm around the nodule centre; no brightness augmentation)")
    ax.set_ylabel("density")
    ax.set_title("HU of real vs injected nodules")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_montage(items: list[Item], path: Path, per_row: int = 6) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medforensics.io.image2d import apply_window

    rows = [
        ("real nodule (TM)", [it for it in items if it.label == "TM"]),
        ("healthy (TB)", [it for it in items if it.label == "TB"]),
    ]
    for lab, name in (("FM", "injected"), ("FB", "removed"), ("SYN", "synthetic")):
        for m in sorted({it.method for it in items if it.label == lab}):
            rows.append((f"{name}: {m}", [it for it in items if it.label == lab and it.method == m]))
    rows = [r for r in rows if r[1]]
    fig, axes = plt.subplots(
        len(rows), per_row, figsize=(1.6 * per_row + 1.4, 1.7 * len(rows)), dpi=110, squeeze=False
    )
    for r, (title, sel) in enumerate(rows):
        for k in range(per_row):
            ax = axes[r][k]
            ax.set_xticks([])
            ax.set_yticks([])
            if k < len(sel):
                ax.imshow(apply_window(sel[k].center_slice, "lung"), cmap="gray", vmin=0, vmax=255)
            else:
                ax.axis("off")
        axes[r][0].set_ylabel(title, fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle(f"Axial centre slices, lung window, {2 * REGION_MM:.0f} mm around the site", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _markdown(summary: dict[str, Any]) -> str:
    lines = [
        "# Realism report",
        "",
        f"Data set: `{summary['data']}`, {summary['n_samples']} samples.",
        "",
        "## Trivial detector (logistic regression on region intensity statistics)",
        "",
        "Real = TM + TB, forged = the method's samples; AUC of out-of-fold predictions, folds grouped by "
        "patient. AUC near 0.5: the attack is hard for this detector. Few patients and samples: read the "
        "bootstrap intervals before the point values.",
        "",
        "| method | n real | n forged | patients | AUC vs TM+TB [95 % CI] | AUC matched (FM:TM, FB:TB) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for k, v in summary["detector"].items():
        auc, matched = (
            "n/a" if v.get(n) is None else f"{v[n]:.3f} [{v[n + '_ci95'][0]:.2f}, {v[n + '_ci95'][1]:.2f}]"
            for n in ("auc", "auc_matched")
        )
        lines.append(f"| {k} | {v['n_real']} | {v['n_forged']} | {v['n_patients']} | {auc} | {matched} |")
    lines += [
        "",
        f"## HU in the nodule core (sphere of {CORE_MM:.0f} mm)",
        "",
        "| group | regions | mean HU | std HU |",
        "| --- | --- | --- | --- |",
    ]
    for k, v in summary["hu_core"].items():
        lines.append(f"| {k} | {v['n_regions']} | {v['mean_hu']} | {v['std_hu']} |")
    lines += ["", "Figures: `montage.png`, `hu_histograms.png`.", ""]
    return "\n".join(lines)


def realism_report(data: str | Path, out: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write montage, histograms, ``realism.json`` and ``realism.md`` into the folder ``out`` (written
    whole, atomically: a rerun replaces its own report, nothing else); returns the summary."""
    data, out = Path(data), Path(out)
    check_seed(seed, "--seed")
    manifest_path(data)  # before the output checks: "not a data set" says more
    check_folder_output(out, [data], marker="realism.json")  # before any work: never lose data
    items = load_items(data)
    if not items:
        raise InputError("data set has no samples", path=data)
    det = detector_auc(items, seed=seed)
    summary: dict[str, Any] = {
        "data": str(data),
        "n_samples": len(items),
        "region_mm": REGION_MM,
        "features": list(FEATURES),
        "detector": det,
        "auc_per_method": {k: v["auc"] for k, v in det.items()},
        "hu_core": hu_statistics(items),
        "montage": "montage.png",
        "histograms": "hu_histograms.png",
    }
    with atomic_path(out) as tmp:  # built beside ``out``, renamed into place when complete
        tmp.mkdir()
        _plot_montage(items, tmp / "montage.png")
        _plot_histograms(items, tmp / "hu_histograms.png")
        (tmp / "realism.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        (tmp / "realism.md").write_text(_markdown(summary), encoding="utf-8")
    return summary
