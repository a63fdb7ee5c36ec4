"""Reading and writing calibrated frames: `~astropy.nddata.CCDData` with its extensions.

A calibrated frame (and a master) is one FITS file: the data in ADU (float32, as computed),
``UNCERT`` (standard deviation), ``MASK`` (pixels not to use) and ``FLAGS`` (bits of
`aifa_steps.core.formats.PIXEL_FLAGS`, described in the extension's header).

Storage is compact (`write_ccd`): the data plane stays float32 (exact; Source Extractor and
DS9 read it as it is), ``UNCERT`` is stored as 16-bit integers with ``BSCALE``/``BZERO`` (a step
of 1/400 of the smallest uncertainty or finer: far below anything photometry can notice; any
FITS reader returns floats), ``MASK`` and ``FLAGS`` are 8-bit (not tile-compressed: Source
Extractor cannot read a file with a compressed extension). A frame takes 8 bytes per pixel
instead of 10 (a 16-bit raw frame: 2). Masters keep a float32 ``UNCERT`` (``compact=False``).

A solved frame is its calibrated file plus its solution (`read_solved`): the astrometry writes
a header-only FITS file with the frame's header, the WCS and ``IMAGEW``/``IMAGEH``
(`solution_hdu`), not a second copy of the pixels.
"""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.nddata import CCDData
from astropy.wcs import WCS

from aifa_steps.core.atomic import write_hdul
from aifa_steps.core.formats import flag_cards

__all__ = [
    "UNCERTAINTY_STEPS",
    "read_ccd",
    "write_ccd",
    "scaled_uncertainty_hdu",
    "solution_hdu",
    "solution_wcs",
    "read_solved",
    "with_wcs",
]

#: The 16-bit ``UNCERT`` plane's step is at most the smallest positive uncertainty divided by
#: this (and at least the largest divided by 65000, so that every value fits).
UNCERTAINTY_STEPS = 400.0

#: Card of a ``MASK`` plane that holds the flag bits (written instead of a separate ``FLAGS``).
MASK_BITS_CARD = "MASKBITS"

#: Cards that describe a file's arrays, not the frame (left out of a solution's header).
_STRUCTURE = ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "BSCALE", "BZERO")


def read_ccd(path: str | Path) -> CCDData:
    """Read a CCDData file written by `write_ccd`; a missing ``BUNIT`` means dimensionless."""
    with fits.open(path) as hdul:
        unit = hdul[0].header.get("BUNIT") or u.dimensionless_unscaled
        separate_flags = "FLAGS" in hdul
        bits_in_mask = "MASK" in hdul and bool(hdul["MASK"].header.get(MASK_BITS_CARD, False))
    if bits_in_mask and not separate_flags:
        # One plane with the bits: read once as the flags; the mask is "a bit is set".
        ccd = CCDData.read(
            path, unit=unit, hdu_uncertainty="UNCERT", hdu_mask=None, hdu_flags="MASK"
        )
        ccd.flags = np.asarray(ccd.flags, dtype=np.uint8)
        ccd.mask = ccd.flags > 0
        return ccd
    return CCDData.read(
        path,
        unit=unit,
        hdu_uncertainty="UNCERT",
        hdu_mask="MASK",
        hdu_flags="FLAGS" if separate_flags else None,
    )


def scaled_uncertainty_hdu(sigma: np.ndarray, header: fits.Header | None = None) -> fits.ImageHDU:
    """The ``UNCERT`` extension as 16-bit integers with ``BSCALE`` and ``BZERO``.

    Parameters
    ----------
    sigma : numpy.ndarray
        Standard deviations (ADU); NaN or infinite values (pixels without data) are stored as
        the largest value, i.e. as worthless.
    header : astropy.io.fits.Header, optional
        Cards to keep (e.g. astropy's ``UTYPE``).

    Returns
    -------
    astropy.io.fits.ImageHDU
        Physical value = ``BZERO + BSCALE * stored``; the step ``BSCALE`` is at most 1/400 of
        the smallest positive uncertainty (0.25 %), coarser only when the largest value needs it.
    """
    sigma = np.asarray(sigma, dtype=np.float32)
    finite = np.isfinite(sigma)
    usable = finite & (sigma > 0)
    if not usable.any():
        step, top = 1.0, 0.0
    else:
        low = float(np.min(sigma, where=usable, initial=np.inf))
        top = float(np.max(sigma, where=usable, initial=0.0))
        step = max(low / UNCERTAINTY_STEPS, top / 65000.0)
    scaled = np.multiply(sigma, np.float32(1.0 / step), dtype=np.float32)
    scaled[~finite] = top / step
    np.clip(scaled, np.float32(0.0), np.float32(65535.0), out=scaled)
    scaled += np.float32(0.5 - 32768.0)  # round half up, then shift into int16
    np.floor(scaled, out=scaled)
    stored = scaled.astype(np.int16)
    hdu = fits.ImageHDU(stored, name="UNCERT")
    _copy_cards(header, hdu.header)
    hdu.header["BSCALE"] = (step, "[adu] step")
    hdu.header["BZERO"] = (32768 * step, "[adu] value = BZERO + BSCALE * stored")
    hdu.header["UNCTYPE"] = ("std", "standard deviation")
    return hdu


def _copy_cards(source: fits.Header | None, target: fits.Header) -> None:
    """Copy the cards of ``source`` that ``target`` lacks (not structure, COMMENT, HISTORY)."""
    for card in (source or fits.Header()).cards:
        if card.keyword in target or card.keyword in ("", "COMMENT", "HISTORY"):
            continue
        if card.keyword in _STRUCTURE or card.keyword in ("XTENSION", "PCOUNT", "GCOUNT"):
            continue
        target[card.keyword] = (card.value, card.comment)


def _byte_plane(data: np.ndarray, name: str) -> fits.ImageHDU:
    """An 8-bit plane (mask, flags).

    Not tile-compressed: Source Extractor, which reads the calibrated frame, cannot open a file
    with a compressed extension.
    """
    data = np.asarray(data)
    return fits.ImageHDU(data.astype(np.uint8, copy=data.dtype != np.uint8), name=name)


def write_ccd(ccd: CCDData, path: str | Path, compact: bool = True) -> None:
    """Write a CCDData file with ``UNCERT``, ``MASK`` and ``FLAGS``, atomically.

    Parameters
    ----------
    ccd : astropy.nddata.CCDData
        The frame; its data plane is written as given (float32).
    path : path
        Output file.
    compact : bool
        ``UNCERT`` as scaled 16-bit integers (see the module). Masters are written with
        ``compact=False`` (float32): there are few of them, and every calibration job reads
        them, which is faster without the conversion.
    """
    out = ccd.to_hdu(hdu_mask=None, hdu_uncertainty=None, hdu_flags=None)
    if ccd.uncertainty is not None:
        header = fits.Header({"UTYPE": type(ccd.uncertainty).__name__})
        if compact:
            out.append(scaled_uncertainty_hdu(ccd.uncertainty.array, header))
        else:
            plane = np.asarray(ccd.uncertainty.array, dtype=np.float32)
            out.append(fits.ImageHDU(plane, header, name="UNCERT"))
    mask = ccd.mask if isinstance(ccd.mask, np.ndarray) else None
    flags = ccd.flags if isinstance(ccd.flags, np.ndarray) else None
    if compact and mask is not None and flags is not None and _mask_is_any_flag(mask, flags):
        # One plane serves both: the bits, which any FITS reader (CCDData.read) takes as a
        # boolean mask where a bit is set.
        out.append(_byte_plane(flags, "MASK"))
        out["MASK"].header[MASK_BITS_CARD] = (True, "the mask holds the flag bits below")
        flag_plane = out["MASK"]
    else:
        if mask is not None:
            out.append(_byte_plane(mask, "MASK"))
        flag_plane = None
        if flags is not None:
            out.append(_byte_plane(flags, "FLAGS"))
            flag_plane = out["FLAGS"]
    if flag_plane is not None:
        for key, bit, text in flag_cards():
            flag_plane.header[key] = (bit, text)
    write_hdul(out, path)


def _mask_is_any_flag(mask: np.ndarray, flags: np.ndarray) -> bool:
    """Whether ``mask`` is exactly "some flag bit is set" (then a second plane is redundant)."""
    return mask.shape == flags.shape and bool(np.array_equal(np.asarray(mask, bool), flags > 0))


def solution_hdu(
    header: fits.Header, shape: tuple[int, int], pixels: str | Path = ""
) -> fits.PrimaryHDU:
    """A header-only FITS HDU of a solved frame: its header (with the WCS) and its size.

    Parameters
    ----------
    header : astropy.io.fits.Header
        The frame's header with the solution's WCS and QC keywords.
    shape : tuple of int
        The image's shape ``(ny, nx)``, recorded as ``IMAGEH`` and ``IMAGEW`` (the form of
        astrometry.net's ``.wcs`` files and of the simulator's true WCS files).
    pixels : path, optional
        The file with the pixels, recorded by name as ``PIXFILE``.
    """
    out = header.copy() if isinstance(header, fits.Header) else fits.Header(dict(header))
    for key in _STRUCTURE:
        out.remove(key, ignore_missing=True, remove_all=True)
    out["IMAGEW"] = (int(shape[1]), "image width in pixels")
    out["IMAGEH"] = (int(shape[0]), "image height in pixels")
    if pixels:
        out["PIXFILE"] = (Path(pixels).name[:68], "calibrated frame with the pixels")
    return fits.PrimaryHDU(header=out)


def solution_wcs(header: fits.Header) -> WCS:
    """The WCS of a solution's header (`solution_hdu`), with the image size as its pixel shape.

    A header-only file has ``NAXIS = 0``; it is left out so that astropy does not warn that the
    WCS has more axes than the (absent) image.
    """
    cards = fits.Header([c for c in header.cards if c.keyword not in _STRUCTURE])
    wcs = WCS(cards, relax=True)
    if "IMAGEW" in header and "IMAGEH" in header:
        wcs.pixel_shape = (int(header["IMAGEW"]), int(header["IMAGEH"]))
    return wcs


def read_solved(frame: str | Path, solution: str | Path) -> CCDData:
    """A calibrated frame with its astrometric solution: the pixels of one, the header of the other.

    Parameters
    ----------
    frame : path
        The calibrated frame (`write_ccd`).
    solution : path
        Its solution (`solution_hdu`, ``astrometry/<stem>.fits``).

    Returns
    -------
    astropy.nddata.CCDData
        The frame with the solution's header and WCS.

    Raises
    ------
    ValueError
        When the solution has no celestial WCS or its image size differs from the frame's.
    """
    ccd = read_ccd(frame)
    header = fits.getheader(solution)
    wcs = solution_wcs(header)
    if not wcs.has_celestial:
        raise ValueError(f"{solution}: no celestial WCS (the frame is not solved)")
    size = (header.get("IMAGEH"), header.get("IMAGEW"))
    if None not in size and tuple(size) != ccd.shape:
        raise ValueError(f"{solution}: solution for a {size} image, {frame} is {ccd.shape}")
    meta = fits.Header([c for c in header.cards if c.keyword not in ("IMAGEW", "IMAGEH")])
    return with_wcs(ccd, meta, wcs)


def with_wcs(ccd: CCDData, meta: fits.Header, wcs: WCS) -> CCDData:
    """The same pixels, uncertainty, mask and flags with another header and WCS (no copy)."""
    return CCDData(
        ccd.data,
        unit=ccd.unit,
        meta=meta,
        wcs=wcs,
        mask=ccd.mask,
        uncertainty=ccd.uncertainty,
        flags=ccd.flags,
    )
