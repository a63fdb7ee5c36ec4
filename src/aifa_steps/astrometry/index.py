"""Index files for astrometry.net and the configurations of the two ``solve-field`` passes.

Index files are built from the reference catalogue with ``build-astrometry-index`` at the
scales that suit the field; pass 2 verifies with the densest of them only.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from astropy.table import Table

from aifa_steps.core.atomic import atomic_path, write_table, write_text

__all__ = [
    "index_scales",
    "verify_index_scale",
    "build_indexes",
    "write_solver_config",
    "solver_problem",
    "write_solver_configs",
]

log = logging.getLogger(__name__)


def index_scales(width_arcmin: float, height_arcmin: float) -> list[int]:
    """astrometry.net index scale numbers (``-P``) for a field of this size.

    Scale P suits fields of about 6 * 2**(P/2) arcmin; quads from a fifth of the shorter side to
    the longer side are covered.
    """
    small, large = sorted((width_arcmin, height_arcmin))
    low = int(np.floor(2 * np.log2(max(small / 5.0, 1e-3) / 6.0)))
    high = int(np.ceil(2 * np.log2(large / 6.0)))
    return list(range(max(low, -5), max(high, low) + 1))


def verify_index_scale(width_arcmin: float, height_arcmin: float, scales: list[int]) -> int:
    """The densest of ``scales`` that the second (verifying) ``solve-field`` pass uses.

    ``solve-field`` verifies with indexes whose largest quads (``2 * sqrt(2)**(P + 1)`` arcmin)
    reach a tenth of the field's shorter side; the finest such index holds the most stars. Pass
    2 with this one index matches as many stars as with all of them, at a third of the time.
    """
    small = min(width_arcmin, height_arcmin)
    finest = int(np.ceil(2 * np.log2(max(small / 20.0, 1e-6)) - 1))
    usable = [s for s in scales if s >= finest]
    return min(usable) if usable else max(scales)


def build_indexes(
    catalogue: Table,
    outdir: str | Path,
    scales: list[int],
    mag_column: str = "rmag",
    ra_column: str = "RA_ICRS",
    dec_column: str = "DE_ICRS",
    id_base: int = 7000,
) -> list[Path]:
    """Build astrometry.net index files from a catalogue with ``build-astrometry-index``.

    Parameters
    ----------
    catalogue : astropy.table.Table
        Stars with positions and a magnitude (brighter stars are preferred for quads).
    outdir : path
        Folder for the index files.
    scales : list of int
        Scale numbers (``-P``), see `index_scales`.
    mag_column, ra_column, dec_column : str
        Columns of the catalogue.
    id_base : int
        Unique index id of the first scale.

    Returns
    -------
    list of pathlib.Path
        The index files.

    Raises
    ------
    RuntimeError
        If ``build-astrometry-index`` fails.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    good = np.isfinite(np.asarray(catalogue[mag_column], dtype=float))
    table = Table(
        {
            "RA": np.asarray(catalogue[ra_column][good], dtype=float),
            "DEC": np.asarray(catalogue[dec_column][good], dtype=float),
            "MAG": np.asarray(catalogue[mag_column][good], dtype=float),
        }
    )
    files = []
    # The input table stays out of the index folder, where autoindex would try to load it.
    with tempfile.TemporaryDirectory(prefix="aifa-index-") as scratch:
        source = Path(scratch) / "index_catalogue.fits"
        write_table(table, source)
        for k, scale in enumerate(scales):
            out = outdir / f"index-{scale:+d}.fits".replace("+", "p").replace("-", "m", 1)
            with atomic_path(out) as partial:
                _build_index(source, partial, scale, id_base + k)
            files.append(out)
    log.info("built %d index files from %d stars: scales %s", len(files), len(table), scales)
    return files


def _build_index(source: Path, out: Path, scale: int, index_id: int) -> None:
    """Run ``build-astrometry-index`` for one scale."""
    cmd = [
        "build-astrometry-index",
        "-i",
        str(source),
        "-e",
        "1",
        "-o",
        str(out),
        "-P",
        str(scale),
        "-S",
        "MAG",
        "-E",
        "-I",
        str(index_id),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"build-astrometry-index failed for scale {scale}: {proc.stderr[-2000:]}"
        )


def write_solver_config(
    path: str | Path,
    index_dirs: list[str | Path],
    cpulimit: float = 60.0,
    parallel: bool = True,
    index_files: list[str | Path] | None = None,
    problem: str = "",
) -> None:
    """Write an astrometry.net configuration (``--config``).

    Parameters
    ----------
    path : path
        The configuration file.
    index_dirs : list of path
        Folders whose index files are all loaded (``add_path`` and ``autoindex``).
    cpulimit : float
        CPU seconds per field.
    parallel : bool
        Load the indexes in parallel (``inparallel``).
    index_files : list of path, optional
        Single index files to load (``index``), besides the folders.
    problem : str, optional
        Why the configuration lacks index files (kept as a comment; see `solver_problem`).
    """
    lines = ["# astrometry.net configuration written by aifa-steps"]
    if problem:
        lines.append(f"{_PROBLEM} {' '.join(problem.split())}")
    if parallel:
        lines.append("inparallel")
    lines.append(f"cpulimit {int(cpulimit)}")
    lines += [f"index {Path(f).resolve()}" for f in index_files or []]
    lines += [f"add_path {Path(d).resolve()}" for d in index_dirs]
    if index_dirs:
        lines.append("autoindex")
    write_text(path, "\n".join(lines) + "\n")


_PROBLEM = "# problem:"


def solver_problem(path: str | Path) -> str:
    """Why a solver configuration has no index files ('' when it has them)."""
    for line in Path(path).read_text().splitlines():
        if line.startswith(_PROBLEM):
            return line[len(_PROBLEM) :].strip()
    return ""


def write_solver_configs(
    solver: str | Path,
    verifier: str | Path,
    catalogue: Table | None,
    field_arcmin: tuple[float, float],
    build_index: bool = True,
    index_dirs: list[str | Path] | tuple[str | Path, ...] = (),
    index_mag_column: str = "rmag",
    cpulimit: float = 60.0,
) -> str:
    """Build index files (when asked) and write the configurations of both passes.

    The index files go next to ``solver``. Pass 1 (``solver``) loads every index; pass 2
    (``verifier``) the densest built one (`verify_index_scale`) and the given folders. When no
    index can be built (an empty catalogue, no magnitude column, a failing
    ``build-astrometry-index``) and no folders are given, both configurations say why
    (`solver_problem`), and so will every frame's status.

    Parameters
    ----------
    solver, verifier : path
        The configurations of pass 1 and pass 2.
    catalogue : astropy.table.Table or None
        The reference stars of all targets (None when no index is built).
    field_arcmin : tuple of float
        Width and height of the field (arcmin).
    build_index : bool
        Build index files from ``catalogue``.
    index_dirs : sequence of path
        Folders of existing index files.
    index_mag_column : str
        Magnitude column of ``catalogue`` that orders the stars.
    cpulimit : float
        CPU seconds per pass.

    Returns
    -------
    str
        Why no index was built ('' when it was, or when none was asked for).
    """
    solver = Path(solver)
    dirs = [Path(d) for d in index_dirs]
    verify_files: list[Path] = []
    problem = ""
    if build_index:
        width, height = field_arcmin
        mag = index_mag_column
        if catalogue is None or len(catalogue) == 0:
            problem = "no index built: the reference catalogue is empty"
        elif mag not in catalogue.colnames:
            problem = f"no index built: the reference catalogue has no column {mag}"
        if problem:
            problem += " (see logs/reference_catalogue_*.log)"
        else:
            try:
                scales = index_scales(width, height)
                files = build_indexes(catalogue, solver.parent, scales, mag_column=mag)
                verify_files = [files[scales.index(verify_index_scale(width, height, scales))]]
            except (RuntimeError, OSError, ValueError) as exc:
                problem = f"no index built: {exc}"
    if problem:
        log.error("%s", problem)
    said = "" if dirs else problem
    write_solver_config(
        solver, [*dirs, solver.parent] if verify_files else dirs, cpulimit=cpulimit, problem=said
    )
    # Pass 2 verifies with the densest built index only (plus any given folders).
    write_solver_config(verifier, dirs, cpulimit=cpulimit, index_files=verify_files, problem=said)
    log.info("solver configuration %s with index folders %s", solver, dirs)
    log.info(
        "pass-2 configuration %s with index files %s and folders %s", verifier, verify_files, dirs
    )
    return problem
