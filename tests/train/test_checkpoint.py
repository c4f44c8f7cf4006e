"""Checkpoint files (medforensics.train.checkpoint): what is read is the run's own copy."""

from __future__ import annotations

from pathlib import Path

import torch

from medforensics.train.checkpoint import check_resume, save_last, save_weights


def _run(seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 2)
    return model, torch.optim.AdamW(model.parameters(), lr=0.01)


def test_the_checked_resume_point_is_a_copy_of_the_files(tmp_path: Path) -> None:
    """safetensors' tensors map their file: the optimizer state check_resume returned changed with the file
    after it was checked (a run resumed with moments read after the data, or a crash if the file shrank)."""
    model, opt = _run()
    model(torch.ones(3, 4)).sum().backward()
    opt.step()
    state = {"epoch": 1, "best": 0.5, "best_epoch": 1, "bad_epochs": 0, "history": [{}]}
    save_last(tmp_path, model, opt, state)
    save_weights(model, tmp_path / "model.safetensors")

    point = check_resume(tmp_path, *_run(1))
    for name in ("last/optimizer.safetensors", "last/model.safetensors", "model.safetensors"):
        with (tmp_path / name).open("r+b") as f:  # in place, as another process writing the folder would
            f.write(b"\xff" * (tmp_path / name).stat().st_size)

    want = opt.state_dict()["state"]
    got = point.optimizer["state"]
    assert all(torch.equal(got[i][k], want[i][k]) for i in want for k in want[i])
    weights = model.state_dict()
    assert point.best is not None
    assert all(torch.equal(point.weights[k], v) and torch.equal(point.best[k], v) for k, v in weights.items())
