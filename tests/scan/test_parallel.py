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
    seen: list[tuple[int, object]] = []
    monkeypatch.setattr(parallel, "configure", lambda level, to=None: seen.append((level, to)))
    monkeypatch.setattr(parallel, "_WORKER", {})
    import logging.handlers
    import queue

    import torch

    threads = torch.get_num_threads()
    q: queue.Queue[logging.LogRecord] = queue.Queue()
    try:
        parallel._init(setup)  # as a worker would (it also sets torch's threads: restored below)
        parallel._init(setup, q)  # ... with the parent's relay
    finally:
        torch.set_num_threads(threads)
    assert seen[0] == (logging.INFO, None) and parallel._WORKER["setup"] is setup
    level, to = seen[1]
    assert level == logging.INFO and isinstance(to, logging.handlers.QueueHandler) and to.queue is q


def test_a_worker_s_warnings_are_printed_by_this_process_once(
    tmp_path: Path, ct_series: Path, detector: Detector, caplog: pytest.LogCaptureFixture
) -> None:
    """Workers send their log records here (before, each printed its own on its stderr: past a progress
    bar, and again when a report writer here read the series): they reach this process's handlers, which
    print each distinct warning once."""
    import logging

    from medforensics.logging import OnceFilter

    series = another_series(ct_series, tmp_path / "dup")
    first = sorted(series.glob("*.dcm"))[3]
    (series / f"{first.stem}-copy.dcm").write_bytes(first.read_bytes())  # exported twice: a warning
    another_series(ct_series, tmp_path / "other")
    once = logging.Handler()
    once.addFilter(OnceFilter())
    printed: list[str] = []
    once.emit = lambda record: printed.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger().addHandler(once)
    try:
        with caplog.at_level(logging.WARNING):
            report, volumes = scan_paths(
                [tmp_path], detector=detector, signatures=False, explain=None, keep_volumes="lazy", jobs=2
            )
            assert len(report.series) == 2 and all(s.error is None for s in report.series)
            relayed = [r for r in caplog.records if "duplicate slice position" in r.getMessage()]
            assert len(relayed) == 1 and relayed[0].processName != "MainProcess"  # made in a worker
            dup = next(s for s in report.series if s.path.endswith("dup"))
            assert volumes[dup.key].shape[0] > 0  # read again here, as a report writer does: warns again
    finally:
        logging.getLogger().removeHandler(once)
    assert len([r for r in caplog.records if "duplicate slice position" in r.getMessage()]) == 2
    assert len([m for m in printed if "duplicate slice position" in m]) == 1
