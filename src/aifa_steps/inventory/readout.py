"""Overscan subtraction and trimming: the first step on every raw frame of a CCD with overscan.

Many CCD cameras read out more columns (or rows) than the chip has: the *overscan* holds the
electronic offset of each read-out, and the *trim section* is the light-sensitive area.
Observatory software names them in the header (``BIASSEC``, ``TRIMSEC`` or ``DATASEC``, in
FITS convention, 1-based and inclusive: ``'[1388:1432,1:1370]'``). Consumer CMOS cameras have
neither, and for them nothing happens here.

The overscan model follows `ccdproc.subtract_overscan`: the overscan region is collapsed
along the read-out direction with a median (one value per row for a column strip, one per
column for a row strip), then ``row`` subtracts those values as they are, ``poly`` subtracts a
polynomial of order ``order`` fitted to them (``order = 0``: one constant). After the overscan
the image is cut to the trim section (`ccdproc.trim_image`). The tests check both against
ccdproc. Here the model is computed once per frame, so that frames read a band of rows at a
time (`aifa_steps.inventory.rowbands.open_image_rows`) get exactly the same correction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
from astropy.io import fits
from astropy.modeling import fitting, models
from ccdproc.utils.slices import slice_from_string

from aifa_steps.inventory.settings import OVERSCAN_MODELS, ReadoutSettings

__all__ = [
    "OVERSCAN_MODELS",
    "DEFAULT_READOUT",
    "ReadoutSettings",
    "Readout",
    "readout_for",
    "parse_section",
]

#: The configuration's ``readout`` section when it is absent.
DEFAULT_READOUT = asdict(ReadoutSettings())

_OVERSCAN_KEYWORDS = ("BIASSEC",)
_TRIM_KEYWORDS = ("TRIMSEC", "DATASEC")


def parse_section(text: str, shape: tuple[int, int]) -> tuple[slice, slice]:
    """Array slices ``(rows, columns)`` of a FITS section such as ``'[18:1382,1:1370]'``.

    Parameters
    ----------
    text : str
        The section, FITS convention (1-based, inclusive, x first); ``*`` means the whole axis.
    shape : tuple of int
        ``(ny, nx)`` of the image, to check the section lies inside it.

    Raises
    ------
    ValueError
        When the text is not a section or the section leaves the image.
    """
    cleaned = str(text).strip().replace(" ", "")
    try:
        rows, columns = slice_from_string(cleaned, fits_convention=True)
    except Exception as exc:  # noqa: BLE001 - ccdproc raises several types
        raise ValueError(f"not a FITS section: {text!r}") from exc
    ny, nx = shape
    rows = slice(rows.start or 0, ny if rows.stop is None else rows.stop)
    columns = slice(columns.start or 0, nx if columns.stop is None else columns.stop)
    if not (0 <= rows.start < rows.stop <= ny and 0 <= columns.start < columns.stop <= nx):
        raise ValueError(f"section {text!r} lies outside the {nx} x {ny} image")
    if rows.step not in (None, 1) or columns.step not in (None, 1):
        raise ValueError(f"section {text!r} is reversed or strided; not supported")
    return rows, columns


@dataclass(frozen=True)
class Readout:
    """Where a frame's overscan and light-sensitive area are, and how to model the overscan.

    Attributes
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the raw image.
    overscan : tuple of slice or None
        Rows and columns of the overscan region (None: no overscan subtraction).
    trim : tuple of slice or None
        Rows and columns kept (None: the whole image).
    model : str
        ``row`` or ``poly`` (see the module docstring).
    order : int
        Order of the ``poly`` model.
    overscan_text, trim_text : str
        The sections as given, for the FITS header.
    """

    shape: tuple[int, int]
    overscan: tuple[slice, slice] | None = None
    trim: tuple[slice, slice] | None = None
    model: str = "poly"
    order: int = 0
    overscan_text: str = ""
    trim_text: str = ""

    @property
    def active(self) -> bool:
        """Whether anything is done to the frame."""
        return self.overscan is not None or self.trim is not None

    @property
    def along_rows(self) -> bool:
        """True for a strip of columns (one overscan value per row), as ccdproc decides."""
        rows, columns = self.overscan
        return (columns.stop - columns.start) <= (rows.stop - rows.start)

    @property
    def output_shape(self) -> tuple[int, int]:
        """``(ny, nx)`` after trimming."""
        if self.trim is None:
            return self.shape
        rows, columns = self.trim
        return rows.stop - rows.start, columns.stop - columns.start

    def profile(self, strip: np.ndarray) -> np.ndarray:
        """The overscan model from the overscan region's pixels.

        Parameters
        ----------
        strip : numpy.ndarray
            The overscan region (already scaled by BSCALE/BZERO).

        Returns
        -------
        numpy.ndarray
            float32 values to subtract: shape ``(ny, 1)`` for a column strip (one per raw
            row), ``(1, nx)`` for a row strip (one per raw column; the region's columns are
            those of the image).
        """
        along_rows = self.along_rows
        values = np.median(np.asarray(strip, dtype=np.float64), axis=1 if along_rows else 0)
        if self.model == "poly":
            x = np.arange(values.size, dtype=float)
            fitted = fitting.LinearLSQFitter()(models.Polynomial1D(int(self.order)), x, values)
            values = fitted(x)
        values = values.astype(np.float32)
        if along_rows:
            full = np.zeros((self.shape[0], 1), np.float32)
            rows = self.overscan[0]
            full[rows, 0] = values
            # Rows outside the strip (if any) take the nearest modelled value.
            full[: rows.start, 0] = values[0]
            full[rows.stop :, 0] = values[-1]
            return full
        full = np.zeros((1, self.shape[1]), np.float32)
        columns = self.overscan[1]
        full[0, columns] = values
        full[0, : columns.start] = values[0]
        full[0, columns.stop :] = values[-1]
        return full

    def apply(self, data: np.ndarray, profile: np.ndarray | None = None) -> np.ndarray:
        """Subtract the overscan from a whole raw image and trim it.

        Parameters
        ----------
        data : numpy.ndarray
            The raw image (float, BSCALE/BZERO applied), shape `shape`.
        profile : numpy.ndarray, optional
            A model from `profile` (computed from ``data`` when not given).

        Returns
        -------
        numpy.ndarray
            The trimmed image, float32.
        """
        data = np.asarray(data, dtype=np.float32)
        if self.overscan is not None:
            if profile is None:
                profile = self.profile(data[self.overscan])
            data = data - profile
        if self.trim is not None:
            data = data[self.trim]
        return np.ascontiguousarray(data)

    def describe(self, header: fits.Header, level: float | None = None) -> None:
        """Record what was done in a FITS header.

        ``OVERSCAN`` (the region), ``OVSMODEL``, ``OVSLEVEL`` (median value subtracted, ADU;
        raw levels such as saturation are this much higher than the corrected data) and
        ``TRIMMED``; the raw frame's BIASSEC, TRIMSEC and DATASEC are removed.
        """
        if self.overscan is not None:
            header["OVERSCAN"] = (self.overscan_text, "overscan region subtracted (raw pixels)")
            model = "row median" if self.model == "row" else f"polynomial order {self.order}"
            header["OVSMODEL"] = (model, "overscan model (as ccdproc.subtract_overscan)")
            if level is not None:
                header["OVSLEVEL"] = (round(float(level), 3), "[adu] median overscan subtracted")
        if self.trim is not None:
            header["TRIMMED"] = (self.trim_text, "raw section kept (ccdproc.trim_image)")
        for key in ("BIASSEC", "TRIMSEC", "DATASEC"):
            if self.active and key in header:
                del header[key]  # they described the raw frame, not this one


def _section(
    header: Mapping, setting: object, keywords: tuple[str, ...], shape: tuple[int, int], what: str
) -> tuple[tuple[slice, slice] | None, str]:
    text = str(setting if setting is not None else "header").strip()
    if text.lower() in ("none", "false", "no", ""):
        return None, ""
    if text.lower() == "header":
        for key in keywords:
            value = header.get(key)
            if isinstance(value, str) and value.strip():
                text = value.strip()
                break
        else:
            return None, ""
    try:
        return parse_section(text, shape), text
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def readout_for(
    header: Mapping,
    settings: ReadoutSettings | Mapping[str, object] | None,
    shape: tuple[int, int] | None = None,
) -> Readout:
    """The overscan and trim of one raw frame, from the configuration and its header.

    Parameters
    ----------
    header : mapping
        The raw header (``NAXIS1``/``NAXIS2``, and ``BIASSEC``, ``TRIMSEC``/``DATASEC`` when the
        settings say ``header``).
    settings : ReadoutSettings, mapping or None
        The configuration's ``readout`` section: ``overscan`` and ``trim`` are ``header``
        (the header's sections when it has them, else nothing), ``none``, or a FITS section;
        ``model`` (``row`` or ``poly``) and ``order``. None: `DEFAULT_READOUT`.
    shape : tuple of int, optional
        ``(ny, nx)`` of the raw image (default from NAXIS2, NAXIS1).

    Returns
    -------
    Readout

    Raises
    ------
    ValueError
        When a section cannot be read or lies outside the image, or the model is unknown.
    """
    if isinstance(settings, ReadoutSettings):
        settings = asdict(settings)
    settings = {**DEFAULT_READOUT, **(settings or {})}
    if shape is None:
        shape = (int(header.get("NAXIS2", 0)), int(header.get("NAXIS1", 0)))
    model = str(settings["model"]).lower()
    if model not in OVERSCAN_MODELS:
        raise ValueError(f"unknown overscan model {model!r}; choose one of {OVERSCAN_MODELS}")
    overscan, overscan_text = _section(
        header, settings["overscan"], _OVERSCAN_KEYWORDS, shape, "overscan section"
    )
    trim, trim_text = _section(header, settings["trim"], _TRIM_KEYWORDS, shape, "trim section")
    return Readout(
        shape=shape,
        overscan=overscan,
        trim=trim,
        model=model,
        order=int(settings["order"]),
        overscan_text=overscan_text,
        trim_text=trim_text,
    )
