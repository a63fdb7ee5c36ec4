"""``solve-field``: running ``workflow/scripts/solve_field.sh`` and reading what it writes.

The shell script is the one implementation of the source list and the two ``solve-field``
passes (the workflow's rule ``solve_field`` runs it). Python runs it through `run_solve_field`,
for example on the source list of a frame that the rule skipped (`solve_source_list`); its path
is an argument, as the package does not know where the workflow lives. The readers turn the
script's outputs (``.wcs``, ``.corr``, ``.xyls``; empty files when there is no solution) into a
WCS and tables.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS

from aifa_steps.astrometry.settings import SolveSettings

__all__ = [
    "solve_field_command",
    "run_solve_field",
    "solve_source_list",
    "read_solution",
    "read_corr",
    "read_sources",
    "matches_from_corr",
]

log = logging.getLogger(__name__)


def solve_field_command(
    script: str | Path,
    frame: str | Path,
    solver: str | Path,
    verifier: str | Path,
    outputs: tuple[str | Path, str | Path, str | Path],
    shape: tuple[int, int],
    pixel_scale: float,
    settings: SolveSettings | None = None,
    hint: str = "",
    solve: bool = True,
    sources: str | Path | None = None,
) -> list[str]:
    """The command line of ``solve_field.sh`` for one frame (see the script's header).

    Parameters
    ----------
    script : path
        ``workflow/scripts/solve_field.sh``.
    frame : path
        The calibrated frame.
    solver, verifier : path
        astrometry.net configurations of pass 1 and pass 2 (`aifa_steps.astrometry.index`).
    outputs : tuple of path
        The ``.wcs``, ``.corr`` and ``.xyls`` files to write.
    shape : tuple of int
        ``(ny, nx)`` of the frame.
    pixel_scale : float
        Expected pixel scale (arcsec).
    settings : SolveSettings, optional
        Scale tolerance, CPU limit, SIP order (the defaults without).
    hint : str
        ``--ra R --dec D --radius r`` from the header pointing, or '' for a blind solve.
    solve : bool
        False: the source list only.
    sources : path, optional
        An existing source list to solve instead of running Source Extractor.

    Returns
    -------
    list of str
        The arguments, ``bash`` first.
    """
    settings = settings or SolveSettings()
    low, high = settings.scale_range(pixel_scale)
    wcs, corr, xyls = outputs
    ny, nx = shape
    command = ["bash", str(script), "--frame", str(frame), "--solver", str(solver)]
    command += ["--verifier", str(verifier), "--wcs", str(wcs), "--corr", str(corr)]
    command += ["--xyls", str(xyls), "--width", str(int(nx)), "--height", str(int(ny))]
    command += ["--scale-low", str(low), "--scale-high", str(high)]
    command += ["--cpulimit", str(settings.cpulimit), "--sip", str(settings.sip_order)]
    command += ["--solve", "yes" if solve else "no"]
    if sources is not None:
        command += ["--sources", str(sources)]
    return command + shlex.split(hint or "")


def run_solve_field(command: list[str], log_path: str | Path | None = None) -> str:
    """Run `solve_field_command`'s command; its messages go to ``log_path`` (and are returned).

    Raises
    ------
    subprocess.CalledProcessError
        For a wrong command line (the script itself turns failures into empty outputs).
    """
    proc = subprocess.run(command, capture_output=True, text=True)
    text = proc.stdout + proc.stderr
    if log_path is not None:
        Path(log_path).write_text(text)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, command, proc.stdout, proc.stderr)
    return text


def solve_source_list(
    script: str | Path,
    frame: str | Path,
    source_list: str | Path,
    solver: str | Path,
    verifier: str | Path,
    pixel_scale: float,
    shape: tuple[int, int],
    hint: str = "",
    settings: SolveSettings | None = None,
) -> tuple[WCS | None, Table | None]:
    """Both ``solve-field`` passes on a frame's existing source list (``solve_field.sh``).

    For a frame that the rule ``solve_field`` skipped (only its source list was made).

    Parameters
    ----------
    script : path
        ``workflow/scripts/solve_field.sh``.
    frame : path
        The calibrated frame.
    source_list : path
        Its Source Extractor list (``astrometry/solve/<stem>.xyls``).
    solver, verifier : path
        astrometry.net configurations of pass 1 and pass 2.
    pixel_scale : float
        Expected pixel scale (arcsec).
    shape : tuple of int
        ``(ny, nx)``.
    hint : str
        ``--ra R --dec D --radius r`` from the header pointing, or ''.
    settings : SolveSettings, optional
        Scale tolerance, CPU limit, SIP order.

    Returns
    -------
    wcs, corr : WCS and Table, or None and None
        The best pass's solution and matched stars.
    """
    with tempfile.TemporaryDirectory(prefix="aifa-solve-") as tmp:
        outputs = (Path(tmp) / "frame.wcs", Path(tmp) / "frame.corr", Path(tmp) / "frame.xyls")
        command = solve_field_command(
            script,
            frame,
            solver,
            verifier,
            outputs,
            shape,
            pixel_scale,
            settings,
            hint,
            sources=source_list,
        )
        said = run_solve_field(command)
        lines = said.strip().splitlines()
        log.info("%s: solve_field.sh says %s", Path(frame).name, lines[-1] if lines else "nothing")
        wcs = read_solution(outputs[0])
        if wcs is None:
            return None, None
        return wcs, read_corr(outputs[1])


def _written(path: str | Path) -> bool:
    """Whether ``solve_field.sh`` wrote something there (an empty file: no solution)."""
    path = Path(path)
    return path.exists() and path.stat().st_size > 0


def read_solution(path: str | Path) -> WCS | None:
    """The WCS in a ``solve-field`` ``.wcs`` file, or None when the file is empty or missing."""
    if not _written(path):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        return WCS(fits.getheader(path))


def read_corr(path: str | Path) -> Table | None:
    """solve-field's ``.corr`` file (its units warnings silenced), or None when empty."""
    if not _written(path):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        return Table.read(path)


def read_sources(path: str | Path) -> Table:
    """A Source Extractor list as ``x``, ``y`` (0-based pixels) and ``flux``, brightest first.

    Reads ``X_IMAGE``, ``Y_IMAGE``, ``FLUX_AUTO``; the table is empty when the file is empty
    or missing (a frame whose sources could not be extracted).
    """
    empty = Table(names=("x", "y", "flux"), dtype=(float, float, float))
    if not _written(path):
        return empty
    with warnings.catch_warnings(), fits.open(path) as hdul:
        warnings.simplefilter("ignore", AstropyWarning)
        raw = Table(hdul[1].data) if len(hdul) > 1 and hdul[1].data is not None else None
    if raw is None or len(raw) == 0:
        return empty
    table = Table(
        {
            "x": np.asarray(raw["X_IMAGE"], float) - 1.0,
            "y": np.asarray(raw["Y_IMAGE"], float) - 1.0,
            "flux": np.asarray(raw["FLUX_AUTO"], float),
        }
    )
    table = table[np.isfinite(table["x"]) & np.isfinite(table["y"]) & (table["flux"] > 0)]
    table.sort("flux", reverse=True)
    return table


def matches_from_corr(corr: Table, wcs: WCS, pixel_scale: float) -> Table:
    """The matched stars of solve-field's ``.corr`` file with their residuals in ``wcs``.

    Parameters
    ----------
    corr : astropy.table.Table
        solve-field's correspondences (``field_x/y`` 1-based, ``index_ra/dec``).
    wcs : astropy.wcs.WCS
        The solution.
    pixel_scale : float
        Arcsec per pixel, for ``residual_arcsec``.

    Returns
    -------
    astropy.table.Table
        ``x``, ``y`` (0-based), ``ra``, ``dec``, ``dx``, ``dy``, ``residual_arcsec``.
    """
    matched = Table(
        {
            "x": np.asarray(corr["field_x"], float) - 1,
            "y": np.asarray(corr["field_y"], float) - 1,
            "ra": np.asarray(corr["index_ra"], float),
            "dec": np.asarray(corr["index_dec"], float),
        }
    )
    px, py = wcs.all_world2pix(matched["ra"], matched["dec"], 0)
    matched["dx"], matched["dy"] = matched["x"] - px, matched["y"] - py
    matched["residual_arcsec"] = np.hypot(matched["dx"], matched["dy"]) * pixel_scale
    return matched
