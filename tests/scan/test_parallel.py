"""Series scanned in worker processes (``scan --jobs``): the same report as one at a time, and a worker
that dies costs only its own series."""

from __future__ import annotations

from pathlib import Path

import pytest

from medforensics.scan.detector import Detector
from medforensics.scan.parallel import DIED
from medforensics.scan.pipeline import scan_paths
from medforensics.scan.result import ScanReport
from medforensics.scan.volumes import LazyVolumes
from tests.scan._helpers import another_series


def _rows(report: ScanReport) -> list[tuple]:
    return [
        (
            s.path,
            s.verdict,
            s.label,
            s.error,
            None if s.score is None else round(s.score, 5),
            [(f.type, f.center_voxel, round(f.score, 5)) for f in s.findings],
        )
        for s in report.series
    ]


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory, ct_series: Path) -> Path:
    """Three series of the CT (written with new UIDs: not copies) and a corrupt one."""
    root = tmp_path_factory.mktemp("studies")
    for name in ("a", "b", "c"):
        another_series(ct_series, root / name)
    (root / "bad").mkdir()
    src = sorted(ct_series.glob("*.dcm"))[0].read_bytes()
    (root / "bad" / "x.dcm").write_bytes(src[: len(src) // 2])
    return root


def test_series_scanned_in_workers_give_the_report_scanned_here(studies: Path, detector: Detector) -> None:
    here, _ = scan_paths([studies], detector=detector, signatures=False, explain=None, keep_volumes="lazy")
    seen: list[tuple[int, int, str]] = []
    there, volumes = scan_paths(
        [studies],
        detector=detector,
        signatures=False,
        explain=None,
        keep_volumes=True,  # held volumes cannot come back from the workers: read again when asked for
        jobs=2,
        on_progress=lambda i, n, label: seen.append((i, n, label)),
    )
    assert _rows(there) == _rows(here)
    assert [s.verdict for s in there.series].count("error") == 1
    assert isinstance(volumes, LazyVolumes) and len(volumes) == 3
    assert volumes[there.series[0].key].shape == volumes[here.series[0].key].shape
    assert [i for i, _, _ in seen] == [1, 2, 3, 4, 4] and seen[-1][2] == "done"
    assert all(s.seconds > 0 for s in there.series)


def test_a_series_whose_worker_dies_is_an_error_and_the_others_are_scanned(
    studies: Path, detector: Detector, tmp_path: Path
) -> None:
    from tests.scan._dying import DyingDetector

    root = tmp_path / "studies"
    for name in ("a", "die", "z"):
        another_series(studies / "a", root / name)
    report, _ = scan_paths(
        [root], detector=DyingDetector.like(detector), signatures=False, explain=None, jobs=2
    )
    by_name = {Path(s.path).name: s for s in report.series}
    assert by_name["die"].verdict == "error" and by_name["die"].error == DIED
    assert by_name["a"].verdict != "error" and by_name["z"].verdict != "error"
    assert report.exit_status == 0


def test_a_detector_that_cannot_be_pickled_is_a_one_line_error_before_any_worker(
    studies: Path, detector: Detector
) -> None:
    import copy

    from medforensics.errors import ConfigError

    det = copy.copy(detector)
    det.model = copy.deepcopy(detector.model)
    det.model.register_forward_hook(lambda *a: None)  # a local function: not picklable
    with pytest.raises(ConfigError, match="--jobs 2: the detector cannot be sent"):
        scan_paths([studies], detector=det, signatures=False, explain=None, jobs=2)


def test_an_interrupted_scan_stops_its_workers_at_once(
    studies: Path, detector: Detector, tmp_path: Path
) -> None:
    """Ctrl-C (or SIGINT to this process alone) must not wait for the series in progress: the graceful
    shutdown waited for them (here two minutes), and could hang on a worker blocked in its queue."""
    import multiprocessing
    import time

    from tests.scan._dying import DyingDetector

    root = tmp_path / "studies"
    for name in ("a", "slow", "z"):
        another_series(studies / "a", root / name)

    def interrupt(i: int, _n: int, _label: str) -> None:
        if i == 1:  # "a" done; "slow" is in progress in the other worker
            raise KeyboardInterrupt

    det = DyingDetector.like(detector)
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        scan_paths([root], detector=det, signatures=False, explain=None, jobs=2, on_progress=interrupt)
    assert time.perf_counter() - t0 < 60
    # the workers are dead; the pool's own thread may still be reaping one (it waits on them too)
    while multiprocessing.active_children() and time.perf_counter() - t0 < 60:
        time.sleep(0.1)
    assert multiprocessing.active_children() == [] and time.perf_counter() - t0 < 60


def test_workers_log_at_the_parent_s_level(detector: Detector, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spawned workers set up logging as the command did (-v's detail, one format), not Python's default."""
    import logging

    from medforensics.scan import parallel

    monkeypatch.setattr(logging.getLogger(), "level", logging.INFO)
    setup = parallel.Setup.share(detector, None, None, None, 2)
    assert setup.log_level == logging.INFO and not setup.digest
    seen: list[int] = []
    monkeypatch.setattr(parallel, "configure", seen.append)
    monkeypatch.setattr(parallel, "_WORKER", {})
    import torch

    threads = torch.get_num_threads()
    try:
        parallel._init(setup)  # as a worker would (it also sets torch's threads: restored below)
    finally:
        torch.set_num_threads(threads)
    assert seen == [logging.INFO] and parallel._WORKER["setup"] is setup
