"""Reference catalogues: local files in ATLAS-RefCat2's VizieR columns, cut to a frame's sky."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.table import Table

__all__ = ["REFCAT_COLUMNS", "load_reference_catalogue", "select_around"]

REFCAT_COLUMNS = ("RA_ICRS", "DE_ICRS", "gmag", "e_gmag", "rmag", "e_rmag", "imag", "e_imag")


def load_reference_catalogue(path: str | Path, columns: dict[str, str] | None = None) -> Table:
    """Read a local reference catalogue and rename its columns to ATLAS-RefCat2's.

    Parameters
    ----------
    path : path
        Any table astropy reads (ECSV, FITS, VOTable, CSV).
    columns : dict, optional
        Map from RefCat2 column name (e.g. ``"RA_ICRS"``) to the file's column name.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    KeyError
        If the position columns are missing.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"reference catalogue {path} does not exist")
    table = Table.read(path)
    for ours, theirs in (columns or {}).items():
        if theirs in table.colnames and theirs != ours:
            table.rename_column(theirs, ours)
    missing = [c for c in ("RA_ICRS", "DE_ICRS") if c not in table.colnames]
    if missing:
        raise KeyError(
            f"{path}: reference catalogue lacks the column(s) {missing} "
            "(map them with reference_catalogue.columns)"
        )
    return table


def select_around(
    table: Table,
    ra: float,
    dec: float,
    radius_deg: float,
    ra_col: str = "RA_ICRS",
    dec_col: str = "DE_ICRS",
) -> Table:
    """Rows within ``radius_deg`` of (ra, dec) (small-angle approximation, fine below ~5 deg)."""
    dra = (np.asarray(table[ra_col]) - ra + 180.0) % 360.0 - 180.0
    ddec = np.asarray(table[dec_col]) - dec
    sep = np.hypot(dra * np.cos(np.radians(dec)), ddec)
    return table[sep < radius_deg]
