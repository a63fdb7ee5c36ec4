"""Bands of rows of a raw frame's image, read without loading the whole file where possible.

Uncompressed files are memory-mapped; tile-compressed images with tiles of few rows are
decompressed a band at a time. The bands are overscan-subtracted and trimmed like
`aifa_steps.inventory.rawio.read_raw_image` does for whole images.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from aifa_steps.inventory.rawio import _header_and_info, _is_gzip, _open, _scaled
from aifa_steps.inventory.readout import ReadoutSettings, readout_for

__all__ = ["ImageRows", "open_image_rows"]

# Tile-compressed images with tiles at most this many rows high are read a band at a time.
_MAX_TILE_ROWS = 64


class ImageRows:
    """Bands of rows of a raw frame's image, as float32; open it with `open_image_rows`.

    Uncompressed files are memory-mapped, so only the rows asked for are read. Tile-compressed
    images with tiles of few rows are decompressed a band at a time; other compressed images
    (gzip, tiles of many rows) are decompressed once and kept in their stored type.

    Attributes
    ----------
    path : pathlib.Path
        The file.
    shape : tuple of int
        ``(ny, nx)`` of the image (after trimming, see `open_image_rows`).
    layout : aifa_steps.inventory.readout.Readout
        The frame's overscan and trim sections.
    info : RawInfo
        Where the image is and how the file is stored.
    """

    def __init__(
        self, path: str | Path, readout: ReadoutSettings | Mapping[str, object] | None = None
    ) -> None:
        self.path = Path(path)
        gzip = _is_gzip(self.path)
        self._hdul: fits.HDUList | None = _open(self.path, memmap=not gzip)
        self._lock = threading.Lock()
        self._section = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", AstropyWarning)
                _, self.info = _header_and_info(self._hdul, gzip, strict=True)
                hdu = self._hdul[self.info.hdu]
                self._header = hdu.header.copy()
                self.shape = self.info.shape
                tile = getattr(hdu, "tile_shape", None)
                if self.info.compression == "tile" and tile and int(tile[0]) <= _MAX_TILE_ROWS:
                    self._section = hdu.section
                    self._data = None
                else:
                    self._data = hdu.data
        except Exception:
            self.close()
            raise
        if self.info.compression:
            if self._section is None:
                self._data = np.asarray(self._data)
                self._hdul.close()
                self._hdul = None
        self.layout = readout_for(self._header, readout, self.info.shape)
        self._profile = None
        if self.layout.overscan is not None:
            rows, columns = self.layout.overscan
            strip = self._raw_rows(rows)[:, columns]
            self._profile = self.layout.profile(strip)
        self.shape = self.layout.output_shape

    @property
    def overscan_level(self) -> float:
        """Median overscan value subtracted from the rows (0 without an overscan), ADU."""
        return 0.0 if self._profile is None else float(np.median(self._profile))

    def _raw_rows(self, rows: slice) -> np.ndarray:
        if self._section is not None:
            with self._lock:  # decompression reads the file: one band at a time
                raw = self._section[rows]
        else:
            raw = self._data[rows]
        return _scaled(raw, self._header, np.float32)

    def rows(self, rows: slice) -> np.ndarray:
        """Rows ``rows`` of the image, BSCALE/BZERO applied, as a new native float32 array.

        With an overscan or trim section (see `open_image_rows`), rows and columns are those
        of the trimmed image and the overscan is subtracted.
        """
        if not self.layout.active:
            return self._raw_rows(rows)
        start, stop, step = rows.indices(self.shape[0])
        y0, x_cut = 0, slice(None)
        if self.layout.trim is not None:
            y0, x_cut = self.layout.trim[0].start, self.layout.trim[1]
        raw_rows = slice(start + y0, stop + y0, step)
        raw = self._raw_rows(raw_rows)
        if self._profile is not None:
            profile = self._profile
            raw -= profile[raw_rows] if profile.shape[1] == 1 else profile
        return np.ascontiguousarray(raw[:, x_cut])

    def close(self) -> None:
        """Release the file (and the memory map or decompressed image)."""
        self._data = None
        self._section = None
        if self._hdul is not None:
            self._hdul.close()
            self._hdul = None

    def __enter__(self) -> ImageRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_image_rows(
    path: str | Path, readout: ReadoutSettings | Mapping[str, object] | None = None
) -> ImageRows:
    """Open a raw frame's image for reading bands of rows (see `ImageRows`).

    Parameters
    ----------
    path : str or pathlib.Path
        A raw FITS file (plain, gzip- or tile-compressed, single or multi-extension).
    readout : mapping, optional
        Overscan and trim settings, as for `read_raw_image`: the bands are then those of the
        trimmed, overscan-subtracted image (the overscan model is computed once per frame).

    Returns
    -------
    ImageRows
        Use as a context manager, or call ``close()``.

    Raises
    ------
    ValueError
        If no HDU holds a 2-D image.
    """
    return ImageRows(path, readout)
