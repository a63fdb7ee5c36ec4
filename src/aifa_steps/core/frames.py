"""Reading and writing calibrated frames: `~astropy.nddata.CCDData` with its extensions.

A calibrated frame (and a master) is one FITS file: the data in ADU (float32), ``UNCERT``
(standard deviation), ``MASK`` (pixels not to use) and ``FLAGS`` (bits of
`aifa_steps.core.formats.PIXEL_FLAGS`, described in the extension's header).
"""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.nddata import CCDData

from aifa_steps.core.atomic import write_hdul
from aifa_steps.core.formats import flag_cards

__all__ = ["read_ccd", "write_ccd"]


def read_ccd(path: str | Path) -> CCDData:
    """Read a CCDData file written by `write_ccd`; a missing ``BUNIT`` means dimensionless."""
    unit = fits.getheader(path).get("BUNIT") or u.dimensionless_unscaled
    return CCDData.read(
        path, unit=unit, hdu_uncertainty="UNCERT", hdu_mask="MASK", hdu_flags="FLAGS"
    )


def write_ccd(ccd: CCDData, path: str | Path) -> None:
    """Write a CCDData file with ``UNCERT``, ``MASK`` and (bit) ``FLAGS`` extensions, atomically."""
    flags = "FLAGS" if isinstance(ccd.flags, np.ndarray) else None
    hdul = ccd.to_hdu(hdu_mask="MASK", hdu_uncertainty="UNCERT", hdu_flags=flags)
    if flags:
        for key, bit, text in flag_cards():
            hdul["FLAGS"].header[key] = (bit, text)
    write_hdul(hdul, path)
