"""Formats that several stages share: one definition each.

- **Pixel flags**: the bits of the ``FLAGS`` extension of calibrated frames and of the bad-pixel
  mask, with names and descriptions (`PIXEL_FLAGS`), written into headers by `flag_cards`.
- **Frame names**: a raw file's stem (`frame_stem`) names every product of the frame
  (``calibrated/<stem>.fits``, ``photometry/<target>/<stem>.ecsv``, ...).
- **File-safe names** of header values (targets, filters): `safe_name`, `safe_names`.
- **Aperture columns**: the suffix of an aperture (``4`` for 4 arcsec, ``1.5fwhm`` for 1.5 x
  the seeing FWHM) and the photometry columns built from it (`flux_column`, ...).
- **Reason codes**: why the inventory leaves a raw file out (`Reason`, the text such a reason
  starts with) and the categories of problems of a whole night (`NightProblem`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path

__all__ = [
    "HOT",
    "LOW_RESPONSE",
    "HIGH_RESPONSE",
    "SATURATED",
    "COSMIC_RAY",
    "NO_DATA",
    "PIXEL_FLAGS",
    "flag_cards",
    "flag_names",
    "FITS_SUFFIXES",
    "is_fits_name",
    "frame_stem",
    "safe_name",
    "safe_names",
    "AUTO_APERTURE_FWHM",
    "APERTURE_CONFIG_KEYS",
    "aperture_keys",
    "fwhm_keys",
    "flux_column",
    "flux_err_column",
    "snr_column",
    "flag_column",
    "Reason",
    "NightProblem",
]

# ---- Pixel flags -------------------------------------------------------------------------------
HOT = 1
LOW_RESPONSE = 2
HIGH_RESPONSE = 4
SATURATED = 8
COSMIC_RAY = 16
NO_DATA = 32

#: Bit -> (name, description) of every pixel flag.
PIXEL_FLAGS: dict[int, tuple[str, str]] = {
    HOT: ("HOT", "dark current far above the master dark's noise (bad-pixel mask)"),
    LOW_RESPONSE: ("LOW_RESPONSE", "flat far below its local level: dead or deep defect"),
    HIGH_RESPONSE: ("HIGH_RESPONSE", "flat far above its local level"),
    SATURATED: ("SATURATED", "raw counts at or above the saturation level (per frame)"),
    COSMIC_RAY: ("COSMIC_RAY", "cosmic-ray hit found by astroscrappy (per frame)"),
    NO_DATA: ("NO_DATA", "not finite (NaN or infinite) in the raw frame (per frame)"),
}


def flag_names(value: int) -> list[str]:
    """Names of the bits set in a flag value (``9`` -> ``['HOT', 'SATURATED']``)."""
    return [name for bit, (name, _) in PIXEL_FLAGS.items() if int(value) & bit]


def flag_cards() -> list[tuple[str, int, str]]:
    """Header cards that document the flag bits: ``(FLAGBITn, bit, name: description)``.

    Every ``FLAGS`` extension and bad-pixel mask carries them, so a file explains its own bits.
    """
    return [
        (f"FLAGBIT{n}", bit, f"{name}: {text}"[:68])
        for n, (bit, (name, text)) in enumerate(PIXEL_FLAGS.items())
    ]


# ---- Frame names -------------------------------------------------------------------------------
_BASES = (".fits", ".fit", ".fts")
#: File name endings of raw FITS files (compared case-insensitively), longest first.
FITS_SUFFIXES: tuple[str, ...] = tuple(
    sorted({b + c for b in _BASES for c in ("", ".gz", ".fz")} | {".fz"}, key=len, reverse=True)
)


def is_fits_name(name: str | Path) -> bool:
    """Whether a file name ends like a FITS file (``.fits``, ``.fit.gz``, ``.FTS``, ``.fz``...).

    Parameters
    ----------
    name : str or pathlib.Path
        A file name or path; only its last part counts, case-insensitively.

    Returns
    -------
    bool
        True for the endings of `FITS_SUFFIXES`.
    """
    return Path(name).name.lower().endswith(FITS_SUFFIXES)


def frame_stem(path: str | Path) -> str:
    """The file name without its FITS ending (``a_1.50s.fits.fz`` -> ``a_1.50s``).

    The stem names every product of a frame; use it wherever a frame's name comes from a path.

    Parameters
    ----------
    path : str or pathlib.Path
        A raw file or a product of a frame.

    Returns
    -------
    str
        The name without any of `FITS_SUFFIXES`; without its last suffix for other names.
    """
    name = Path(path).name
    lower = name.lower()
    for suffix in FITS_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


# ---- File-safe names of header values (targets, filters) ---------------------------------------
# Header values become folder and file names (``photometry/<target>/``, ``stack_<filter>.fits``),
# but an OBJECT may hold spaces, slashes, dots or non-ASCII letters (``HAT-P-32 b/test``, ``M 31``,
# ``Plejaden Süd``). Every such value maps to exactly one safe name used for every path; tables
# and the report keep the original next to it.
_UNSAFE = re.compile(r"[^A-Za-z0-9+\-]+")


def safe_name(text: object, empty: str = "unnamed") -> str:
    """A file-safe version of a header value.

    Accents are dropped (``ü`` -> ``u``), every run of other characters outside letters,
    digits, ``+`` and ``-`` becomes one ``_``, and leading or trailing ``_`` are removed.
    Names of only unsafe characters become ``empty`` plus a short hash of the original, so
    that different originals stay apart.

    Parameters
    ----------
    text : object
        The header value (converted with `str`).
    empty : str
        Base name for values with no safe character.

    Returns
    -------
    str
        A name of ``A-Z a-z 0-9 + - _`` only, never empty, never starting with ``.`` or ``-``.

    Examples
    --------
    >>> safe_name("HAT-P-32 b/test")
    'HAT-P-32_b_test'
    >>> safe_name("Qatar-1")
    'Qatar-1'
    """
    original = str(text).strip()
    ascii_text = unicodedata.normalize("NFKD", original).encode("ascii", "ignore").decode("ascii")
    name = _UNSAFE.sub("_", ascii_text).strip("_")
    if name.startswith("-"):
        name = "_" + name
    if not name:
        digest = hashlib.sha1(original.encode("utf-8")).hexdigest()[:8]
        name = f"{empty}_{digest}" if original else empty
    return name


def safe_names(values: Iterable[object]) -> dict[str, str]:
    """Safe names of several values, distinct for distinct values.

    When two different values map to the same safe name (``M 31`` and ``M/31``), each gets a
    short hash of its original appended, so no two targets ever share a folder.

    Parameters
    ----------
    values : iterable
        Header values (converted with `str` and stripped).

    Returns
    -------
    dict
        Original (stripped) value -> safe name.
    """
    originals = sorted({str(v).strip() for v in values})
    first = {v: safe_name(v) for v in originals}
    counts: dict[str, int] = {}
    for name in first.values():
        counts[name] = counts.get(name, 0) + 1
    result = {}
    for value, name in first.items():
        if counts[name] > 1:
            name = f"{name}_{hashlib.sha1(value.encode('utf-8')).hexdigest()[:6]}"
        result[value] = name
    return result


# ---- Aperture columns --------------------------------------------------------------------------
#: Radii of automatic apertures in units of the FWHM: from the core (best S/N for faint stars,
#: about 1 FWHM) to 3 FWHM (bright stars, where the curve of growth is flat).
AUTO_APERTURE_FWHM = (1.0, 1.5, 2.0, 2.5, 3.0)

#: Keys of the ``photometry`` config section that decide the apertures.
APERTURE_CONFIG_KEYS = ("apertures", "apertures_arcsec", "aperture_fwhm")


def aperture_keys(radii_arcsec: Iterable[float]) -> list[str]:
    """Column suffixes of apertures given in arcsec (``4``, ``6``, ``7.5``, ...)."""
    return [f"{r:g}" for r in radii_arcsec]


def fwhm_keys(multiples: Iterable[float]) -> list[str]:
    """Column suffixes of automatic apertures (``1fwhm``, ``1.5fwhm``, ...)."""
    return [f"{m:g}fwhm" for m in multiples]


def flux_column(key: str) -> str:
    """Name of the flux column of the aperture with suffix ``key`` (``flux_4``)."""
    return f"flux_{key}"


def flux_err_column(key: str) -> str:
    """Name of the flux uncertainty column of the aperture with suffix ``key``."""
    return f"flux_err_{key}"


def snr_column(key: str) -> str:
    """Name of the signal-to-noise column of the aperture with suffix ``key``."""
    return f"snr_{key}"


def flag_column(key: str) -> str:
    """Name of the flag column of the aperture with suffix ``key`` (``flag_4``)."""
    return f"flag_{key}"


# ---- Reason codes ------------------------------------------------------------------------------
class Reason(StrEnum):
    """Why the inventory leaves a raw file out: the text each such reason starts with.

    The inventory writes a reason as the code's text plus details
    (``f"{Reason.MISSING_KEYWORD} FILTER"`` -> ``'missing keyword FILTER'``); whoever reads
    reasons matches the code (`Reason.found_in`) instead of retyping its text. Several reasons
    of one file are joined with ``"; "``.
    """

    UNREADABLE_FITS = "unreadable FITS"
    TRUNCATED = "truncated"
    MISSING_KEYWORD = "missing keyword"
    UNKNOWN_FRAME_TYPE = "unknown frame type"
    NO_TIME_OF_DAY = "no time of day"
    READOUT = "readout:"
    UNREADABLE_VALUE = "unreadable"
    MIXED_GEOMETRY = "shape or binning differs"
    EXPOSURE_TIME = "exposure time"
    NOT_AN_IMAGE = "not a 2-D image"
    DUPLICATE_NAME = "duplicate file name"

    def found_in(self, reason: object) -> bool:
        """Whether a reason (possibly several joined with ``"; "``) names this code."""
        return self.value.lower() in str(reason).lower()


class NightProblem(StrEnum):
    """Categories of problems of a night as a whole (``inventory.fatal`` lists them)."""

    NO_BIAS = "no_bias"
    NO_DARK = "no_dark"
    NO_FLAT = "no_flat"
    MIXED_GEOMETRY = "mixed_geometry"
    UNMATCHED_DARK = "unmatched_dark"
