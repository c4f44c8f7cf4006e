"""Outputs and values of ``forge dataset|synthesize|report|train-gan|train-dcgan`` from a fuzz (session 25):
an output that would overwrite an input or unrelated files, or cannot be a folder, is refused before any
work in one line; folders are written whole or not at all; out-of-range values are refused."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medforensics.cli import app
from medforensics.errors import ConfigError, InputError, OutputError
from medforensics.forge.dataset import DatasetConfig, build_dataset
from medforensics.forge.synthesis import synthesize_to_dir

runner = CliRunner()


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _forge(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, ["forge", *args])
    return res.exit_code, res.output


@pytest.fixture()
def places(tmp_path: Path) -> dict[str, Path]:
    """A source folder, a source file, a file and a folder holding a user's files."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "ct.nii.gz").write_bytes(b"not read: the output is checked first")
    busy = tmp_path / "busy"
    busy.mkdir()
    for name in ("syn_0000.png", "montage.png", "realism.md", "notes.txt"):
        (busy / name).write_text("the user's")
    (tmp_path / "afile.txt").write_text("keep")
    return {"src": src, "src_file": src / "ct.nii.gz", "busy": busy, "afile": tmp_path / "afile.txt"}


# ------------------------------------------------------------------------------------------- forge dataset
@pytest.mark.parametrize(
    "where", ["inside the source", "the source file", "a file", "under a file", "a full folder"]
)
def test_dataset_out_is_refused_before_any_work(tmp_path: Path, places: dict[str, Path], where: str) -> None:
    out = {
        "inside the source": places["src"] / "dsout",  # was written there, exit 0
        "the source file": places["src_file"],  # was an internal error (NotADirectoryError)
        "a file": places["afile"],
        "under a file": places["afile"] / "ds",
        "a full folder": places["busy"],
    }[where]
    before = _tree(tmp_path)
    with pytest.raises((OutputError, ConfigError)):
        build_dataset(out, [str(places["src"]), "auto"], DatasetConfig(per_class=1))
    assert _tree(tmp_path) == before
    code, text = _forge("dataset", "--sources", str(places["src"]), "--per-class", "1", "--out", str(out))
    assert code == 2 and "internal error" not in text and _tree(tmp_path) == before


def test_dataset_seed_and_per_class_out_of_range_exit_2(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    for args in (["--seed", "-1"], ["--seed", str(2**32)], ["--per-class", str(10**12)]):  # crash, hang
        code, text = _forge("dataset", "--sources", str(tmp_path / "none"), "--out", str(out), *args)
        assert code == 2 and "internal error" not in text and not out.exists(), args
    with pytest.raises(ConfigError, match="seed"):
        build_dataset(out, [str(tmp_path / "none")], DatasetConfig(seed=-1))


# ---------------------------------------------------------------------------------------- forge synthesize
@pytest.mark.parametrize("where", ["a full folder", "a file", "under a file", "the weights"])
def test_synthesize_out_is_refused_before_any_work(
    tmp_path: Path, places: dict[str, Path], where: str
) -> None:
    from medforensics.forge.dcgan import bundled_weights

    weights = tmp_path / "w.safetensors"
    shutil.copy(bundled_weights("xray"), weights)
    out = {
        "a full folder": places["busy"],  # the user's syn_0000.png and montage.png were overwritten
        "a file": places["afile"],  # internal errors
        "under a file": places["afile"] / "syn",
        "the weights": weights,
    }[where]
    before = _tree(tmp_path)
    with pytest.raises(OutputError):
        synthesize_to_dir("xray", out, n=1, weights=weights)
    assert _tree(tmp_path) == before


def test_synthesize_writes_its_folder_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import medforensics.forge.synthesis as syn

    out = tmp_path / "syn"
    synthesize_to_dir("xray", out, n=3, seed=1)
    synthesize_to_dir("xray", out, n=1, seed=1)  # a rerun replaces its own output, stale files go
    assert sorted(_tree(out)) == ["montage.png", "syn_0000.png", "synthesis.json"]

    def broken(*args: object, **kwargs: object) -> None:
        raise OutputError("disk full", path="x")

    monkeypatch.setattr(syn, "write_montage", broken)  # a failure after the images: nothing half written
    before = _tree(out)
    with pytest.raises(OutputError):
        synthesize_to_dir("xray", out, n=2, seed=2)
    assert _tree(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["syn"]


def test_synthesize_in_batches_gives_the_same_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--n 100000000 ran out of memory (all images at once): images are made in batches, --n is capped."""
    import medforensics.forge.synthesis as syn
    from medforensics.io.nifti import read_nifti

    synthesize_to_dir("ct", tmp_path / "one", n=5, fmt="nifti", seed=4, montage=False)
    monkeypatch.setattr(syn, "_BATCH", 2)
    synthesize_to_dir("ct", tmp_path / "batched", n=5, fmt="nifti", seed=4, montage=False)
    for k in range(5):
        a, b = (read_nifti(tmp_path / d / f"syn_{k:04d}.nii.gz").array for d in ("one", "batched"))
        np.testing.assert_allclose(a, b, atol=1)
    with pytest.raises(ConfigError, match="--n"):
        synthesize_to_dir("ct", tmp_path / "huge", n=syn.MAX_IMAGES + 1)
    code, text = _forge("synthesize", "--modality", "ct", "--n", "100000000", "--out", str(tmp_path / "h"))
    assert code == 2 and "internal error" not in text and not (tmp_path / "h").exists()


# ------------------------------------------------------------------------------------------- forge report
@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    from tests.forge._tiny_ct import shared_tiny_dataset

    data, _ = shared_tiny_dataset()
    shutil.copytree(data, tmp_path / "ds")
    return tmp_path / "ds"


@pytest.mark.parametrize("where", ["the data set", "inside the data set", "a full folder", "a file"])
def test_report_out_is_refused_before_any_work(
    tmp_path: Path, places: dict[str, Path], dataset: Path, where: str
) -> None:
    from medforensics.forge.realism import realism_report

    out = {
        "the data set": dataset,  # was written into the data set, exit 0
        "inside the data set": dataset / "report",
        "a full folder": places["busy"],  # the user's realism.md was overwritten
        "a file": places["afile"],  # internal error
    }[where]
    before = _tree(tmp_path)
    with pytest.raises(OutputError):
        realism_report(dataset, out)
    assert _tree(tmp_path) == before
    code, text = _forge("report", "--data", str(dataset), "--out", str(out))
    assert code == 2 and "internal error" not in text and _tree(tmp_path) == before


def test_report_negative_seed_is_refused_and_writes_nothing(tmp_path: Path, dataset: Path) -> None:
    from medforensics.forge.realism import realism_report

    out = tmp_path / "rep"
    code, text = _forge("report", "--data", str(dataset), "--out", str(out), "--seed", "-1")
    assert code == 2 and "internal error" not in text and not out.exists()
    with pytest.raises(ConfigError, match="seed"):
        realism_report(dataset, out, seed=-1)  # was sklearn's error after montage.png was written
    assert not out.exists()


# ----------------------------------------------------------------------------------- train-gan/train-dcgan
def test_train_gan_never_writes_over_its_init_or_into_its_data(tmp_path: Path) -> None:
    from medforensics.forge.ctgan.train import train_gan

    init = tmp_path / "init.safetensors"
    init.write_bytes(b"weights")
    root = tmp_path / "lidc"
    root.mkdir()
    (root / "69.xml").write_text("<xml/>")
    before = _tree(tmp_path)
    for out, kw in (
        (init, {"init": init}),  # overwrote the --init weights
        (tmp_path / "init.pt", {"init": init}),  # its record init.json would go over the init's record
        (root / "69.xml", {"data_root": root}),  # overwrote a LIDC XML, wrote 69.json beside it
        (root / "new.safetensors", {"data_root": root}),
    ):
        if out.suffix == ".pt":
            (tmp_path / "init.json").write_text("{}")
            before = _tree(tmp_path)
        with pytest.raises(OutputError):
            train_gan("inject", tiny=True, out=out, **kw)  # type: ignore[arg-type]
        assert _tree(tmp_path) == before, out


@pytest.mark.parametrize(
    "command", [["train-gan", "--kind", "inject", "--tiny"], ["train-dcgan", "--modality", "ct"]]
)
def test_weights_out_ending_in_json_is_refused(tmp_path: Path, command: list[str]) -> None:
    """The record goes beside the weights as .json: --out model.json had it overwrite the weights."""
    code, text = _forge(*command, "--epochs", "1", "--out", str(tmp_path / "model.json"))
    assert code == 2 and "must not end in .json" in text and not list(tmp_path.iterdir())


@pytest.mark.parametrize("what", ["corrupt header", "text file", "broken record"])
def test_train_gan_bad_init_is_an_input_error_naming_it(tmp_path: Path, what: str) -> None:
    from safetensors.torch import save_file

    from medforensics.forge.ctgan.train import train_gan

    init = tmp_path / "init.safetensors"
    named = init
    if what == "corrupt header":
        init.write_bytes((200).to_bytes(8, "little") + b"{not json" + b" " * 191)
    elif what == "text file":
        init.write_text("these are not weights\n" * 10)
    else:
        import torch

        save_file({"w": torch.zeros(2)}, str(init))
        named = tmp_path / "init.json"
        named.write_text("{broken")
    with pytest.raises(InputError) as err:
        train_gan("inject", tiny=True, out=tmp_path / "g.safetensors", init=init)
    assert err.value.path == str(named)
    assert not (tmp_path / "g.safetensors").exists()


def test_train_seed_and_threads_out_of_range_exit_2(tmp_path: Path) -> None:
    out = str(tmp_path / "g.safetensors")
    for args in (
        ["train-gan", "--kind", "inject", "--tiny", "--seed", "-1"],  # numpy: internal error
        ["train-dcgan", "--modality", "ct", "--seed", "-1"],
        ["train-dcgan", "--modality", "ct", "--threads", "100000"],  # OpenBLAS: segfault
    ):
        code, text = _forge(*args, "--out", out)
        assert code == 2 and "internal error" not in text, args
    from medforensics.forge.dcgan import train_dcgan

    with pytest.raises(ConfigError, match="threads"):
        train_dcgan("ct", out, threads=100_000)
    assert not list(tmp_path.iterdir())


def test_read_only_folder_is_an_output_error(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: a read-only folder is writable")
        with pytest.raises(OutputError):
            synthesize_to_dir("xray", ro / "syn", n=1)
    finally:
        ro.chmod(0o755)


def test_train_gan_init_weights_read_before_the_data_do_not_follow_the_file(tmp_path: Path) -> None:
    """The --init weights are checked before the data load and used after it: they must be a copy, not a
    view of the file (safetensors' tensors stay backed by it), or a file rewritten meanwhile is trusted."""
    import torch
    from safetensors.torch import save_file

    from medforensics.forge.ctgan.train import _read_init

    init = tmp_path / "gen.safetensors"
    save_file({"w": torch.ones(64)}, str(init))
    state, _ = _read_init(init)
    with open(init, "r+b") as fh:  # the same file rewritten in place: 64 floats of 2.0 at the data's offset
        data = fh.read()
        fh.seek(len(data) - 64 * 4)
        fh.write(np.full(64, 2.0, dtype=np.float32).tobytes())
    assert torch.equal(state["w"], torch.ones(64))
