"""Header values that FITS can hold.

FITS headers cannot store NaN or infinity (astropy raises ``ValueError: Floating point nan
values are not allowed in FITS headers``), and a quality value of a bad frame is often NaN.
`set_card` writes such values as the strings ``NaN``, ``inf`` or ``-inf``, which Python's
`float` reads back.
"""

from __future__ import annotations

import math
import re

from astropy.io import fits

__all__ = ["fits_value", "set_card", "remove_wcs"]


def fits_value(value: object) -> object:
    """``value`` as a header can hold it (non-finite floats become strings)."""
    if isinstance(value, float | int) and not isinstance(value, bool):
        number = float(value)
        if math.isnan(number):
            return "NaN"
        if math.isinf(number):
            return "inf" if number > 0 else "-inf"
        return value.item() if hasattr(value, "item") else value
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy scalars
        return fits_value(value.item())
    return value


def set_card(header: fits.Header, key: str, value: object, comment: str = "") -> None:
    """Set ``header[key]`` to ``value`` with ``comment``, even when the value is NaN."""
    header[key] = (fits_value(value), comment)


_WCS_PREFIXES = ("CTYPE", "CRVAL", "CRPIX", "CDELT", "CUNIT", "CROTA", "CRDELT", "CFINT")
_WCS_PATTERN = re.compile(r"^(CD\d_\d|PC\d_\d|PV\d_\d+|[AB]P?_(\d_\d|ORDER|DMAX)|WCSAXES)$")


def remove_wcs(header: fits.Header) -> int:
    """Remove the world coordinate keywords a raw frame came with; returns how many.

    Camera software and archives leave pointing WCS of unknown quality (sometimes with its
    values as strings, or describing the untrimmed frame); the workflow solves every frame
    itself and must not mix the two. RADESYS and EQUINOX are kept.
    """
    keys = {k for k in header.keys() if k.startswith(_WCS_PREFIXES) or _WCS_PATTERN.match(k or "")}
    for key in keys:
        header.remove(key, ignore_missing=True, remove_all=True)
    return len(keys)
