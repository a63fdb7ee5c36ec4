"""Open raw frames the way cameras and archives write them.

A raw frame may be a plain FITS file (``.fits``, ``.fit``, ``.fts``, any case), gzip-compressed
(``.fits.gz``) or tile-compressed (``.fits.fz``: an empty primary HDU and the image as a
``CompImageHDU`` in extension 1), and its image may sit in the primary HDU or in the first image
extension of a multi-extension file. Keywords such as EXPTIME may be in the primary header, the
image extension's header or both: the *merged header* holds both, the extension winning.

Raw files are only ever opened read-only; headers are read without the pixel data. Whether a
file holds all its data is checked in `aifa_steps.inventory.completeness`; bands of rows of an
image are read by `aifa_steps.inventory.rowbands`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from gzip import GzipFile
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from aifa_steps.inventory.readout import ReadoutSettings, readout_for

__all__ = [
    "RawInfo",
    "image_hdu_index",
    "merge_headers",
    "clean_header",
    "read_raw_header",
    "read_raw_image",
]


_BLOCK = 2880
_GZIP_MAGIC = b"\x1f\x8b"

# Keywords that describe how an HDU is stored rather than what the frame is.
_STORAGE_KEYWORDS = (
    "XTENSION",
    "PCOUNT",
    "GCOUNT",
    "GROUPS",
    "THEAP",
    "TFIELDS",
    "EXTNAME",
    "EXTVER",
    "EXTLEVEL",
    "INHERIT",
    "BZERO",
    "BSCALE",
    "BLANK",
    "CHECKSUM",
    "DATASUM",
    "ZIMAGE",
    "ZSIMPLE",
    "ZTENSION",
    "ZEXTEND",
    "ZBLOCKED",
    "ZBITPIX",
    "ZNAXIS",
    "ZPCOUNT",
    "ZGCOUNT",
    "ZCMPTYPE",
    "ZQUANTIZ",
    "ZDITHER0",
    "ZMASKCMP",
    "ZHECKSUM",
    "ZDATASUM",
)
_STORAGE_PREFIXES = ("ZNAXIS", "ZTILE", "ZNAME", "ZVAL", "TTYPE", "TFORM", "TUNIT", "TDIM")
# Keywords of an extension's header that the merged header takes from the image structure.
_EXTENSION_ONLY = ("EXTNAME", "EXTVER", "EXTLEVEL", "INHERIT", "CHECKSUM", "DATASUM")


@dataclass(frozen=True)
class RawInfo:
    """Where a raw frame's image is and how the file is stored.

    Attributes
    ----------
    hdu : int
        Index of the image HDU (0 also when no HDU holds a 2-D image; ``shape`` then says so).
    shape : tuple of int
        Shape of that HDU's data in numpy order (``(ny, nx)`` for an image, ``()`` if empty).
    compression : str
        ``""`` for a plain file, ``"gzip"`` for a gzip-compressed file, ``"tile"`` for a
        tile-compressed image (``CompImageHDU``).
    """

    hdu: int
    shape: tuple[int, ...]
    compression: str


def _shape(header: fits.Header) -> tuple[int, ...]:
    naxis = int(header.get("NAXIS", 0))
    return tuple(int(header.get(f"NAXIS{k}", 0)) for k in range(naxis, 0, -1))


def _is_image_hdu(hdu: object) -> bool:
    return isinstance(hdu, fits.ImageHDU | fits.CompImageHDU)


def image_hdu_index(hdul: fits.HDUList) -> int:
    """Index of the HDU that holds the frame's 2-D image.

    Parameters
    ----------
    hdul : astropy.io.fits.HDUList
        An open file (lazily loaded HDUs are read only as far as needed).

    Returns
    -------
    int
        0 when the primary HDU holds a 2-D image (NAXIS = 2); else the first image extension
        (``ImageHDU`` or ``CompImageHDU``) with two axes.

    Raises
    ------
    ValueError
        If no HDU holds a 2-D image.
    """
    naxis = [hdul[0].header.get("NAXIS", 0)]
    if naxis[0] == 2:
        return 0
    for index, hdu in enumerate(hdul):
        if index == 0:
            continue
        if _is_image_hdu(hdu):
            naxis.append(hdu.header.get("NAXIS", 0))
            if naxis[-1] == 2:
                return index
    name = Path(hdul.filename()).name if hdul.filename() else "the file"
    raise ValueError(
        f"no 2-D image in any HDU of {name} "
        f"({len(hdul)} HDU(s); NAXIS of the primary and image extensions: {naxis})"
    )


def merge_headers(primary: fits.Header, image: fits.Header) -> fits.Header:
    """One header for a frame whose image is in an extension.

    Parameters
    ----------
    primary : astropy.io.fits.Header
        The primary header (usually of an empty primary HDU).
    image : astropy.io.fits.Header
        The image extension's header (for a ``CompImageHDU``, its image header).

    Returns
    -------
    astropy.io.fits.Header
        A primary-style header: SIMPLE, BITPIX and NAXIS* of the image, then the keywords of
        the primary header, then those of the extension (whose values win). BZERO, BSCALE and
        BLANK are the image's; the extension's XTENSION, PCOUNT, GCOUNT, EXTNAME and checksums
        are left out.
    """
    merged = fits.Header()
    merged["SIMPLE"] = (True, "conforms to FITS standard")
    merged["BITPIX"] = (image["BITPIX"], "array data type")
    shape = _shape(image)
    merged["NAXIS"] = (len(shape), "number of array dimensions")
    for k, n in enumerate(reversed(shape), start=1):
        merged[f"NAXIS{k}"] = n
    for header in (primary, image):
        rest = header.copy(strip=True)
        for key in _EXTENSION_ONLY:
            rest.remove(key, ignore_missing=True, remove_all=True)
        merged.extend(rest, update=True)
    for key in ("BSCALE", "BZERO", "BLANK"):
        if key in image:
            merged[key] = (image[key], image.comments[key])
    return merged


def clean_header(header: fits.Header) -> fits.Header:
    """A copy of a raw header without the keywords that describe how the raw file was stored.

    What is left can head a new primary HDU of processed (float) data: XTENSION, PCOUNT,
    GCOUNT, EXTNAME, EXTVER, BZERO, BSCALE, BLANK, CHECKSUM, DATASUM and the tile-compression
    keywords (ZIMAGE, ZBITPIX, ZNAXISn, ZTILEn, ZCMPTYPE, ZNAMEn, ZVALn, ZQUANTIZ...) are
    removed; SIMPLE, BITPIX and NAXIS* are kept (astropy rewrites them for the new data).

    Parameters
    ----------
    header : astropy.io.fits.Header
        A raw header, e.g. the merged header of `read_raw_header`.

    Returns
    -------
    astropy.io.fits.Header
        The cleaned copy.
    """
    clean = header.copy()
    for key in _STORAGE_KEYWORDS:
        clean.remove(key, ignore_missing=True, remove_all=True)
    for key in {k for k in clean.keys() if k.startswith(_STORAGE_PREFIXES)}:
        if key[-1].isdigit():
            clean.remove(key, ignore_missing=True, remove_all=True)
    return clean


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _open(path: Path, memmap: bool = False) -> fits.HDUList:
    return fits.open(
        path,
        mode="readonly",
        memmap=memmap,
        lazy_load_hdus=True,
        do_not_scale_image_data=True,
    )


def _header_and_info(hdul: fits.HDUList, gzip: bool, strict: bool) -> tuple[fits.Header, RawInfo]:
    try:
        index = image_hdu_index(hdul)
    except ValueError:
        if strict:
            raise
        index = 0
    hdu = hdul[index]
    compression = "gzip" if gzip else ("tile" if isinstance(hdu, fits.CompImageHDU) else "")
    header = hdul[0].header.copy() if index == 0 else merge_headers(hdul[0].header, hdu.header)
    return header, RawInfo(index, _shape(hdu.header), compression)


def read_raw_header(path: str | Path) -> tuple[fits.Header, RawInfo]:
    """The merged header of a raw frame and where its image is, without reading pixel data.

    Parameters
    ----------
    path : str or pathlib.Path
        A raw FITS file (plain, gzip- or tile-compressed, single or multi-extension).

    Returns
    -------
    header : astropy.io.fits.Header
        The primary header when the primary HDU holds the image; otherwise the primary and
        image-extension headers merged by `merge_headers` (NAXIS, NAXIS1, NAXIS2 are the
        image's). When no HDU holds a 2-D image, the primary header (its NAXIS says so).
    info : RawInfo
        The image HDU's index, shape and the file's compression.

    Raises
    ------
    OSError
        If the file is not a readable FITS file.
    """
    path = Path(path)
    gzip = _is_gzip(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        if gzip:
            found = _gzip_header_and_info(path)
            if found is not None:
                return found
        with _open(path) as hdul:
            return _header_and_info(hdul, gzip, strict=False)


def _gzip_header_and_info(path: Path) -> tuple[fits.Header, RawInfo] | None:
    """`read_raw_header` of a gzip file, decompressing only up to the image's header.

    (``fits.open`` decompresses the primary HDU's data even when only its header is wanted.)
    None when the image is not a plain image HDU (e.g. a gzipped tile-compressed file).
    """
    with GzipFile(path, mode="rb") as f:
        primary = fits.Header.fromfile(f)
        if primary.get("NAXIS", 0) == 2:
            return primary, RawInfo(0, _shape(primary), "gzip")
        header, index = primary, 0
        while True:
            f.seek(_data_span(header), os.SEEK_CUR)
            try:
                header = fits.Header.fromfile(f)
            except EOFError:
                return primary, RawInfo(0, _shape(primary), "gzip")
            index += 1
            if header.get("ZIMAGE", False):
                return None
            if header.get("XTENSION", "").strip() == "IMAGE" and header.get("NAXIS", 0) == 2:
                return merge_headers(primary, header), RawInfo(index, _shape(header), "gzip")


def _data_span(header: fits.Header) -> int:
    """Bytes of an HDU's data including the padding to full FITS blocks (FITS standard 4.4.1)."""
    naxis = int(header.get("NAXIS", 0))
    if naxis == 0:
        return 0
    axes = [int(header.get(f"NAXIS{k}", 0)) for k in range(1, naxis + 1)]
    if header.get("GROUPS", False) and axes[0] == 0:
        axes = axes[1:]
    size = abs(int(header["BITPIX"])) // 8 * int(header.get("GCOUNT", 1))
    size *= int(header.get("PCOUNT", 0)) + int(np.prod(axes, dtype=np.int64))
    return -(-size // _BLOCK) * _BLOCK


def _scaled(raw: np.ndarray, header: fits.Header, dtype: type = np.float32) -> np.ndarray:
    """Raw stored values as ``dtype`` (native byte order, a new array), BSCALE/BZERO applied.

    Integer values equal to BLANK become NaN.
    """
    out = raw.astype(dtype)
    bscale = header.get("BSCALE", 1.0)
    bzero = header.get("BZERO", 0.0)
    if bscale != 1.0:
        out *= out.dtype.type(bscale)
    if bzero != 0.0:
        out += out.dtype.type(bzero)
    blank = header.get("BLANK")
    if blank is not None and raw.dtype.kind in "iu":
        out[raw == blank] = np.nan
    return out


def read_raw_image(
    path: str | Path,
    dtype: type = np.float32,
    readout: ReadoutSettings | Mapping[str, object] | None = None,
) -> tuple[np.ndarray, fits.Header]:
    """The image of a raw frame, overscan-subtracted and trimmed, and its merged header.

    Parameters
    ----------
    path : str or pathlib.Path
        A raw FITS file (plain, gzip- or tile-compressed, single or multi-extension).
    dtype : numpy floating type
        Type of the returned pixels.
    readout : mapping, optional
        The configuration's ``readout`` section (overscan and trim, see
        `aifa_steps.inventory.readout.readout_for`); default: the header's BIASSEC and
        TRIMSEC/DATASEC when it has them. The header then says what was done (``OVERSCAN``,
        ``TRIMMED``).

    Returns
    -------
    data : numpy.ndarray
        The 2-D image with BSCALE/BZERO applied, native byte order, as ``dtype``.
    header : astropy.io.fits.Header
        The merged header (see `read_raw_header`).

    Raises
    ------
    ValueError
        If no HDU holds a 2-D image.
    """
    path = Path(path)
    gzip = _is_gzip(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        # A memory map of an uncompressed file is read straight into the float array.
        with _open(path, memmap=not gzip) as hdul:
            header, info = _header_and_info(hdul, gzip, strict=True)
            hdu = hdul[info.hdu]
            data = _scaled(hdu.data, hdu.header, dtype)
    layout = readout_for(header, readout, data.shape)
    if layout.active:
        profile = None if layout.overscan is None else layout.profile(data[layout.overscan])
        data = layout.apply(data, profile).astype(dtype, copy=False)
        layout.describe(header, None if profile is None else float(np.median(profile)))
    return data, header
