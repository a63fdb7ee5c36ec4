"""The master calibrations of a night, loaded once for many frames (`Masters`).

Every master is optional; a master that could not be made is a header-only file saying why
(`aifa_steps.core.failures.write_failed_fits`) and is noted in `Masters.missing`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty

from aifa_steps.core.failures import fits_failure

__all__ = ["Masters", "read_master", "native_float32"]

log = logging.getLogger(__name__)


@dataclass
class Masters:
    """The master calibrations of a night, loaded once for many frames.

    Every master is optional: a night may lack bias, darks or flats (a transit night of a
    small telescope often has only light frames), and a master that could not be made is a
    header-only file saying why (`aifa_steps.core.failures.write_failed_fits`).

    Attributes
    ----------
    bias : CCDData or None
        Master bias.
    darks : dict
        Master darks by exposure time (s).
    flats : dict
        Master flats by canonical filter name.
    bad_pixels : numpy.ndarray or None
        Bit mask (uint8) of bad pixels.
    names : dict
        File names of the masters, for provenance: keys ``bias``, ``dark:<t>``, ``flat:<f>``,
        ``bad_pixels``.
    missing : dict
        Why a master is not there, by the same keys (a master that failed, or that the night
        has no frames for).
    """

    bias: CCDData | None = None
    darks: dict[float, CCDData] = field(default_factory=dict)
    flats: dict[str, CCDData] = field(default_factory=dict)
    bad_pixels: np.ndarray | None = None
    names: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        bias: str | Path | None,
        darks: list[str | Path],
        flats: dict[str, str | Path | None],
        bad_pixels: str | Path | None = None,
    ) -> Masters:
        """Read masters written by the workflow; absent or failed masters are noted.

        Parameters
        ----------
        bias : path or None
            Master bias (None: the night has no bias frames).
        darks : list of path
            Master darks.
        flats : dict
            Canonical filter -> master flat (None: no flats in that filter).
        bad_pixels : path or None
            Bad-pixel mask.
        """
        masters = cls()
        if bias:
            masters.bias = masters._read("bias", bias)
        else:
            masters.missing["bias"] = "no bias frames in this night"
        for path in darks:
            ccd = masters._read("dark", path)
            if ccd is not None:
                t = float(ccd.meta["EXPTIME"])
                masters.darks[t] = ccd
                masters.names[f"dark:{t:g}"] = Path(path).name
        if not darks:
            masters.missing["dark"] = "no dark frames in this night"
        for name, path in flats.items():
            ccd = masters._read(f"flat:{name}", path) if path else None
            if ccd is not None:
                masters.flats[name] = ccd
            elif not path:
                masters.missing[f"flat:{name}"] = f"no flats in filter {name}"
        if bad_pixels:
            failure = fits_failure(bad_pixels)
            if failure:
                masters.missing["bad_pixels"] = failure[1]
            else:
                masters.bad_pixels = np.asarray(fits.getdata(bad_pixels), dtype=np.uint8)
                masters.names["bad_pixels"] = Path(bad_pixels).name
        return masters

    def _read(self, key: str, path: str | Path) -> CCDData | None:
        failure = fits_failure(path)
        if failure:
            self.missing[key] = f"{Path(path).name}: {failure[1]}"
            log.warning("master %s not used: %s", key, self.missing[key])
            return None
        self.names[key] = Path(path).name
        return read_master(path)


def native_float32(array: np.ndarray) -> np.ndarray:
    """``array`` as float32, without a copy when it already is (of either byte order).

    FITS data are big-endian; numpy swaps bytes on the fly in arithmetic, which is cheaper than
    a swapped copy of a full frame.
    """
    array = np.asarray(array)
    if array.dtype.kind == "f" and array.dtype.itemsize == 4:
        return array
    return array.astype(np.float32)


def mapped_float32(hdu: fits.ImageHDU | fits.PrimaryHDU) -> np.ndarray:
    """An image HDU opened with ``memmap=True, do_not_scale_image_data=True`` as float32.

    Unscaled float32 data stay a view of the mapped file; scaled (BZERO/BSCALE) or integer
    data are converted, with BLANK pixels as NaN.
    """
    header = hdu.header
    data = hdu.data
    bscale = float(header.get("BSCALE", 1.0))
    bzero = float(header.get("BZERO", 0.0))
    if data.dtype.kind == "f" and bscale == 1.0 and bzero == 0.0:
        return native_float32(data)
    out = data.astype(np.float32)
    if bscale != 1.0:
        out *= np.float32(bscale)
    if bzero != 0.0:
        out += np.float32(bzero)
    if data.dtype.kind in "iu" and "BLANK" in header:
        out[data == header["BLANK"]] = np.nan
    return out


def read_master(path: str | Path) -> CCDData:
    """A master's image and uncertainty as float32; its mask planes are not needed.

    The planes are memory-mapped, not read: every calibration job of the night maps the same
    pages of the operating system's file cache instead of reading (and allocating) its own
    copy of each master. They are read-only and big-endian (numpy swaps on the fly).
    """
    with fits.open(path, memmap=True, do_not_scale_image_data=True) as hdul:
        header = hdul[0].header.copy()
        data = mapped_float32(hdul[0])
        uncertainty = (
            StdDevUncertainty(mapped_float32(hdul["UNCERT"]), copy=False)
            if "UNCERT" in hdul
            else None
        )
    for key in ("BZERO", "BSCALE", "BLANK"):
        header.remove(key, ignore_missing=True)
    unit = header.get("BUNIT") or u.dimensionless_unscaled
    return CCDData(data, unit=unit, meta=header, uncertainty=uncertainty, copy=False)
