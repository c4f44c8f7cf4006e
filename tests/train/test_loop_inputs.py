"""Bad training folders found by the session 25 fuzz: an out over the data, damaged resume points."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from medforensics.errors import ConfigError, InputError, MedforensicsError, OutputError
from medforensics.train import config_from_dict, train
from medforensics.train.data import Sample
from tests.train.test_loop import tiny_source


class NoData:
    """A source that fails the test when read: every check must come before the data."""

    def __iter__(self) -> Iterator[Sample]:
        raise AssertionError("the data was read before the check")


def _cfg(out: Path, **kw: object) -> object:
    base = {"model": "test_cnn", "out": str(out), "epochs": 1, "batch_size": 8, "data": {"size": 32}}
    return config_from_dict({**base, **kw})


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished 1-epoch run with a resume point."""
    out = tmp_path_factory.mktemp("base") / "run"
    train(_cfg(out), tiny_source(24))  # type: ignore[arg-type]
    return out


@pytest.mark.parametrize("where", ["data", "data/scans/uuid", "data/sub"])
def test_an_out_over_or_inside_the_data_set_is_refused(tmp_path: Path, where: str) -> None:
    data = tmp_path / "data"
    (data / "scans" / "uuid").mkdir(parents=True)
    (data / "labels.csv").write_text("type,uuid,z,x,y\n")
    before = sorted(p.name for p in data.rglob("*"))
    cfg = _cfg(tmp_path / where, data={"size": 32, "path": str(data)})
    with pytest.raises(OutputError, match="input"):
        train(cfg, NoData())  # type: ignore[arg-type]
    assert sorted(p.name for p in data.rglob("*")) == before  # was trained into, exit 0


def test_an_out_holding_other_files_is_refused_and_a_rerun_replaces_its_own(
    run: Path, tmp_path: Path
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    with pytest.raises(OutputError, match="already holds other files"):
        train(_cfg(mine), NoData())  # type: ignore[arg-type]
    again = tmp_path / "again"
    shutil.copytree(run, again)
    train(_cfg(again), tiny_source(24))  # type: ignore[arg-type]


def _state(text: str) -> Callable[[Path], None]:
    return lambda d: (d / "last/state.json").write_text(text)


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "state_corrupt": (_state("{bad"), r"state\.json: unreadable resume state"),
    "state_list": (_state("[]"), r"state\.json: resume state must be a JSON object"),
    "state_wrong_types": (
        _state(json.dumps({"epoch": "one", "best": None, "best_epoch": 1, "bad_epochs": 0, "history": []})),
        r"state\.json: resume state: 'epoch'",
    ),
    "optimizer_json_corrupt": (
        lambda d: (d / "last/optimizer.json").write_text("{bad"),
        r"optimizer\.json: optimizer state does not fit",
    ),
    "optimizer_tensors_missing": (
        lambda d: (d / "last/optimizer.safetensors").unlink(),
        r"optimizer\.safetensors: unreadable optimizer state",
    ),
    "optimizer_tensors_garbage": (
        lambda d: (d / "last/optimizer.safetensors").write_bytes(b"\xff" * 64),
        r"optimizer\.safetensors: unreadable optimizer state",
    ),
    "best_weights_garbage": (
        lambda d: (d / "model.safetensors").write_bytes(b"\xff" * 64),
        r"run/model\.safetensors: weights do not fit",
    ),
    "resume_point_missing": (lambda d: shutil.rmtree(d / "last"), "no resume point"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_resume_point_is_one_error_before_the_data_and_writes_nothing(
    run: Path, tmp_path: Path, damage: str
) -> None:
    folder = tmp_path / "run"
    shutil.copytree(run, folder)
    spoil, message = DAMAGE[damage]
    spoil(folder)
    out = tmp_path / "resumed"
    with pytest.raises((InputError, ConfigError), match=message):
        train(_cfg(out, epochs=2, resume=str(folder)), NoData())  # type: ignore[arg-type]
    assert not out.exists()  # config.json was written before the failure


def test_resuming_with_another_optimizer_is_an_error(run: Path, tmp_path: Path) -> None:
    with pytest.raises(MedforensicsError, match=r"optimizer\.json: .*another optimizer"):
        # was KeyError 'momentum' at the first step
        train(_cfg(tmp_path / "o", epochs=2, optimizer="sgd", resume=str(run)), NoData())  # type: ignore[arg-type]
    assert not (tmp_path / "o").exists()


def test_resuming_in_place_still_works(run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "run"
    shutil.copytree(run, folder)
    res = train(_cfg(folder, epochs=2, resume=str(folder)), tiny_source(24))  # type: ignore[arg-type]
    assert res.epochs_run == 2


class SpoilOnRead:
    """``source``, whose reading first runs ``spoil``: the resume point changes between check and use."""

    def __init__(self, source: Iterable[Sample], spoil: Callable[[], None]) -> None:
        self.source, self.spoil = source, spoil

    def __iter__(self) -> Iterator[Sample]:
        self.spoil()
        return iter(self.source)


def test_the_run_resumes_from_the_resume_point_it_checked(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medforensics.train.checkpoint as ckpt

    folder = tmp_path / "run"
    shutil.copytree(run, folder)
    history = json.loads((folder / "last/state.json").read_text())["history"]

    def spoil() -> None:  # was read again after the data, unchecked: a traceback, or another run's state
        (folder / "last/state.json").write_text("{bad")
        (folder / "model.safetensors").write_bytes(b"\xff" * 64)
        (folder / "last/optimizer.json").write_text("{bad")

    reads: list[Path] = []
    real = ckpt.read_state
    monkeypatch.setattr(ckpt, "read_state", lambda path, types: reads.append(path) or real(path, types))
    out = tmp_path / "resumed"
    res = train(_cfg(out, epochs=2, resume=str(folder)), SpoilOnRead(tiny_source(24), spoil))  # type: ignore[arg-type]
    assert reads == [folder / "last/state.json"]  # read once, checked
    assert res.epochs_run == 2
    resumed = json.loads((out / "last/state.json").read_text())["history"]
    assert resumed[0] == history[0] and len(resumed) == 2
