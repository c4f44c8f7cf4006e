"""Options more than one command takes, defined once."""

from __future__ import annotations

import typer

#: ``--max-slice-mm`` and ``--max-pixel-mm`` (``scan``, and ``evaluate`` at scan level).
MAX_SLICE_MM = typer.Option(
    None,
    "--max-slice-mm",
    min=0.1,
    help="Score CT series whose slices are up to this far apart (default: the detector's validated "
    "limit, 3 mm for the bundled one; thicker series get verdict error, not assessed).",
)
MAX_PIXEL_MM = typer.Option(
    None,
    "--max-pixel-mm",
    min=0.01,
    help="Score CT series whose in-plane pixels are up to this large (default: the detector's "
    "validated limit, 1 mm for the bundled one; coarser series get verdict error, not assessed).",
)
