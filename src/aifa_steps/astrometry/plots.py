"""Figures of the astrometry: the night's quality, and residual vectors of the reference stars.

The only astrometry module that imports matplotlib (with the Agg backend); the per-frame jobs
do not load it.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from astropy.table import Table  # noqa: E402

from aifa_steps.core.atomic import save_figure, write_table  # noqa: E402
from aifa_steps.core.formats import frame_stem  # noqa: E402

__all__ = ["residual_figure", "astrometry_report", "residual_plots"]


def residual_figure(
    matched: Table, shape: tuple[int, int], path: str | Path, title: str = "", scale: float = 200.0
) -> None:
    """Residual vectors of the reference stars over the field, coloured by size."""
    ny, nx = shape
    fig, ax = plt.subplots(figsize=(8, 8 * ny / nx + 1))
    if len(matched):
        q = ax.quiver(
            matched["x"],
            matched["y"],
            matched["dx"] * scale,
            matched["dy"] * scale,
            matched["residual_arcsec"],
            angles="xy",
            scale_units="xy",
            scale=1,
            cmap="viridis",
            width=0.003,
        )
        fig.colorbar(q, ax=ax, label="residual [arcsec]", shrink=0.8)
        rms = np.sqrt(np.mean(np.square(matched["residual_arcsec"])))
        title = f"{title}  {len(matched)} stars, RMS {rms:.3f} arcsec (vectors x{scale:g})"
    ax.set_xlim(0, nx)
    ax.set_ylim(0, ny)
    ax.set_aspect("equal")
    ax.set_xlabel("x [pixel]")
    ax.set_ylabel("y [pixel]")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)
    plt.close(fig)


def _shape_of(matched: Table) -> tuple[int, int]:
    """Image shape recorded with the matched stars (or their extent)."""
    if "NAXIS1" in matched.meta:
        return int(matched.meta["NAXIS2"]), int(matched.meta["NAXIS1"])
    return (
        int(np.ceil(max(matched["y"].max(), 1))) + 1,
        int(np.ceil(max(matched["x"].max(), 1))) + 1,
    )


def astrometry_report(
    status: Table,
    match_files: list[str | Path],
    table_path: str | Path,
    figure_path: str | Path,
    residual_dir: str | Path,
) -> None:
    """Write the night's status table, the quality figure and a residual plot per target.

    Parameters
    ----------
    status : astropy.table.Table
        One row per frame (see `SolveStatus`).
    match_files : list of path
        Matched-star tables, named ``<stem>.ecsv``, in any order.
    table_path, figure_path : path
        Outputs: ``astrometry/status.ecsv`` and the figure.
    residual_dir : path
        Folder for one residual plot per object (the frame with the median RMS).

    See Also
    --------
    residual_plots : the residual plot of every solved frame.
    """
    status.sort("stem")
    write_table(status, table_path)
    fig, axes = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
    index = np.arange(len(status))
    solved = np.asarray(status["solved"], dtype=bool)
    axes[0].plot(index[solved], status["rms_arcsec"][solved], "o", ms=3, label="solved")
    axes[0].set_ylabel("RMS residual [arcsec]")
    axes[1].plot(index[solved], status["n_matches"][solved], "o", ms=3)
    axes[1].plot(index[~solved], np.zeros((~solved).sum()), "rx", ms=8, label="failed")
    axes[1].set_ylabel("reference stars")
    axes[1].set_xlabel("frame (in order of name)")
    axes[1].legend(fontsize=8)
    title = f"{solved.sum()} of {len(status)} frames solved"
    if (~solved).any():
        # Counts of the reasons, not a list of frames: it stays readable with hundreds of
        # frames; every frame with its reason is in astrometry/status.ecsv and summary.html.
        reasons = Counter(_reason_kind(str(r)) for r in status["reason"][~solved])
        common = "; ".join(f"{n} x {reason}" for reason, n in reasons.most_common(2))
        more = f" (+{len(reasons) - 2} other reasons)" if len(reasons) > 2 else ""
        title += f"\nfailed: {common}{more}"
    axes[0].set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, figure_path, dpi=100)
    plt.close(fig)

    residual_dir = Path(residual_dir)
    residual_dir.mkdir(parents=True, exist_ok=True)
    files = _match_files_by_stem(match_files)
    objects: dict[str, list] = {}
    name = "target" if "target" in status.colnames else "object"
    for row in status[solved]:
        key = str(row[name]) if name in status.colnames else "frames"
        objects.setdefault(key, []).append(row)
    for obj, rows in objects.items():
        rows.sort(key=lambda r: r["rms_arcsec"])
        typical = rows[len(rows) // 2]
        matched = Table.read(files[typical["stem"]])
        residual_figure(
            matched, _shape_of(matched), residual_dir / f"{obj}.png", title=typical["stem"]
        )


def _reason_kind(reason: str) -> str:
    """A failure reason without its numbers, so that alike failures count together."""
    text = re.sub(r"[-+]?\d[\d.:eE+-]*", "#", reason)
    return text if len(text) <= 60 else text[:57] + "..."


def _match_files_by_stem(match_files: list[str | Path]) -> dict[str, Path]:
    return {frame_stem(p): Path(p) for p in match_files}


def residual_plots(status: Table, match_files: list[str | Path], plot_dir: str | Path) -> int:
    """Write the residual-vector plot of every solved frame as ``<plot_dir>/<stem>.png``.

    Kept apart from `astrometry_report`, whose status table the later steps wait for: the
    plots of a long night take minutes and need not hold anything up.

    Parameters
    ----------
    status : astropy.table.Table
        One row per frame (see `SolveStatus`).
    match_files : list of path
        Matched-star tables, named ``<stem>.ecsv``, in any order.
    plot_dir : path
        Output folder (created).

    Returns
    -------
    int
        Number of plots written.
    """
    plot_dir = Path(plot_dir)
    plot_dir.mkdir(parents=True, exist_ok=True)
    files = _match_files_by_stem(match_files)
    solved = status[np.asarray(status["solved"], dtype=bool)]
    for row in solved:
        matched = Table.read(files[row["stem"]])
        residual_figure(
            matched, _shape_of(matched), plot_dir / f"{row['stem']}.png", title=row["stem"]
        )
    return len(solved)
