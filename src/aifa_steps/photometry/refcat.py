"""Reference catalogues: local files in ATLAS-RefCat2's VizieR columns, cut to a frame's sky."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import Table

from aifa_steps.core.atomic import write_table
from aifa_steps.photometry.settings import RefcatSettings

__all__ = [
    "RefcatSettings",
    "target_catalogue",
    "REFCAT_COLUMNS",
    "REFCAT2_VIZIER",
    "load_reference_catalogue",
    "select_around",
    "fetch_refcat2",
    "crossmatch",
    "reference_extract",
]

REFCAT2_VIZIER = "J/ApJ/867/105/refcat2"

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


def fetch_refcat2(
    ra: float,
    dec: float,
    radius_deg: float,
    cache_path: str | Path,
    catalog: str = REFCAT2_VIZIER,
    timeout: float = 60.0,
) -> Table:
    """ATLAS-RefCat2 stars around (ra, dec) from VizieR, cached on disk.

    A cached extract is reused without any network access. Otherwise VizieR is queried with
    astroquery (all rows, the RefCat2 columns) and the result written to ``cache_path``.

    Parameters
    ----------
    ra, dec : float
        Centre in degrees.
    radius_deg : float
        Radius of the cone.
    cache_path : path
        ECSV file of the cache.
    catalog : str
        VizieR catalogue identifier.
    timeout : float
        Seconds to wait for VizieR.

    Raises
    ------
    ConnectionError
        If VizieR cannot be reached and there is no cache.
    LookupError
        If VizieR returns no stars.
    """
    cache_path = Path(cache_path)
    if cache_path.exists():
        return Table.read(cache_path)
    from astropy import units as u
    from astropy.coordinates import SkyCoord
    from astroquery.vizier import Vizier

    vizier = Vizier(columns=list(REFCAT_COLUMNS), row_limit=-1, timeout=timeout)
    try:
        result = vizier.query_region(
            SkyCoord(ra * u.deg, dec * u.deg), radius=radius_deg * u.deg, catalog=catalog
        )
    except Exception as exc:  # noqa: BLE001 - any network failure means the same to the user
        raise ConnectionError(
            f"cannot query VizieR ({catalog}) for {ra:.4f} {dec:+.4f}: {exc}; there is no cache "
            f"at {cache_path}. Run once with network, copy a cached extract there, or use "
            "reference_catalogue.source: file"
        ) from exc
    if len(result) == 0 or len(result[0]) == 0:
        raise LookupError(
            f"VizieR {catalog} has no stars within {radius_deg} deg of {ra:.4f} {dec:+.4f}"
        )
    table = result[0]
    keep = [c for c in REFCAT_COLUMNS if c in table.colnames]
    table = Table(table[keep], masked=False)
    table.meta = {"source": f"VizieR {catalog}", "centre": [ra, dec], "radius_deg": radius_deg}
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    write_table(table, cache_path)
    return table


def crossmatch(
    sources: Table, refcat: Table, radius_arcsec: float = 2.0, prefix: str = ""
) -> Table:
    """Attach the nearest reference star within a radius to each source.

    Parameters
    ----------
    sources : astropy.table.Table
        Table with ``ra`` and ``dec`` (deg).
    refcat : astropy.table.Table
        Reference catalogue in RefCat2 columns (``RA_ICRS``, ``DE_ICRS``, ``gmag``, ...).
    radius_arcsec : float
        Match radius (the tutorial's 2 arcsec).
    prefix : str
        Prefix for the added column names.

    Returns
    -------
    astropy.table.Table
        A copy of ``sources`` with ``refcat_sep_arcsec`` (NaN when unmatched), ``refcat_row``
        (-1 when unmatched) and the catalogue's magnitude columns (NaN when unmatched).
    """
    from astropy.coordinates import SkyCoord

    out = sources.copy()
    n = len(out)
    mags = [c for c in REFCAT_COLUMNS[2:] if c in refcat.colnames]
    row = np.full(n, -1)
    sep_out = np.full(n, np.nan)
    if len(refcat) and n:
        ref = SkyCoord(
            np.asarray(refcat["RA_ICRS"], float), np.asarray(refcat["DE_ICRS"], float), unit="deg"
        )
        src = SkyCoord(np.asarray(out["ra"], float), np.asarray(out["dec"], float), unit="deg")
        idx, sep, _ = src.match_to_catalog_sky(ref)
        ok = sep.arcsec < radius_arcsec
        row[ok] = idx[ok]
        sep_out[ok] = sep.arcsec[ok]
    out[f"{prefix}refcat_sep_arcsec"] = sep_out
    out[f"{prefix}refcat_row"] = row
    for col in mags:
        values = np.full(n, np.nan)
        values[row >= 0] = np.asarray(refcat[col], float)[row[row >= 0]]
        out[f"{prefix}{col}"] = values
    return out


def reference_extract(
    config: RefcatSettings | Mapping[str, Any], ra: float, dec: float, cache_path: str | Path
) -> tuple[Table, str, str]:
    """The reference catalogue around a target as the configuration asks for it.

    ``source: file`` reads the local catalogue; ``source: vizier`` queries ATLAS-RefCat2 (or
    reuses the cache) and falls back to the local ``path`` when VizieR cannot be reached.
    Without network, cache and local file the extract is empty and ``problem`` says why: the
    target then gets no astrometric refinement and no zero points, the rest of the night is
    reduced.

    Parameters
    ----------
    config : RefcatSettings or mapping
        The settings, or the ``reference_catalogue`` section they are read from.
    ra, dec : float
        Target position (deg).
    cache_path : path
        Cache file of the VizieR extract.

    Returns
    -------
    table : astropy.table.Table
        Stars within ``radius_deg`` in RefCat2 columns.
    source : str
        Where they came from.
    problem : str
        Empty, or what went wrong.
    """
    settings = config if isinstance(config, RefcatSettings) else RefcatSettings.from_config(config)
    radius = float(settings.radius_deg)
    if settings.source == "file":
        table = load_reference_catalogue(settings.path, settings.columns)
        return select_around(table, ra, dec, radius), str(settings.path), ""
    try:
        return fetch_refcat2(ra, dec, radius, cache_path), f"VizieR {REFCAT2_VIZIER}", ""
    except ConnectionError as exc:
        if settings.path:
            local = load_reference_catalogue(settings.path, settings.columns)
            extract = select_around(local, ra, dec, radius)
            return extract, str(settings.path), f"{exc}; used the local catalogue instead"
        empty = Table({c: np.zeros(0) for c in REFCAT_COLUMNS})
        return empty, "none", str(exc)


def target_catalogue(
    settings: RefcatSettings, target: str, ra: float, dec: float, default_cache_dir: str | Path
) -> tuple[Table, str]:
    """A target's reference catalogue (`reference_extract`) with its provenance.

    Parameters
    ----------
    settings : RefcatSettings
        Where the catalogue comes from.
    target : str
        File-safe target name (names the cache file).
    ra, dec : float
        Target position (deg).
    default_cache_dir : path
        Cache folder when ``cache_dir`` is not set.

    Returns
    -------
    table : astropy.table.Table
        The extract; metadata ``source``, ``centre`` and, when something went wrong,
        ``problem``.
    problem : str
        Empty, or what went wrong.
    """
    cache = settings.cache_file(target, default_cache_dir)
    extract, source, problem = reference_extract(settings, ra, dec, cache)
    if problem:
        extract.meta["problem"] = problem
    extract.meta["source"] = source
    extract.meta["centre"] = [ra, dec]
    return extract, problem
