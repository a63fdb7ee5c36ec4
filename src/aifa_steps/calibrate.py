"""Calibration of science frames: (raw - bias - scaled dark) / flat, with uncertainty and mask.

The result is a `~astropy.nddata.CCDData` in ADU (float32) with

- an uncertainty plane from the CCD equation: the variance in ADU^2 of the raw signal
  ``S = raw - bias`` is ``S / g + (RN / g)^2`` for gain ``g`` in e-/ADU and read noise ``RN`` in e-,
  plus the variances of the masters, all divided by the flat;
- flags (uint8 bits, extension ``FLAGS``): the bad-pixel mask bits (``HOT``, ``LOW_RESPONSE``,
  ``HIGH_RESPONSE``), ``SATURATED`` where the raw value reached saturation, ``COSMIC_RAY``
  where L.A.Cosmic (astroscrappy) found a hit (optional); and the boolean ``MASK``
  (astropy's convention, True = do not use) wherever any flag is set.

Headers keep the raw keywords and record which masters and parameters were applied.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty

from .badpixels import COSMIC_RAY, LOW_RESPONSE, SATURATED
from .masters import dark_for_exposure
from .provenance import add_provenance

__all__ = ["Masters", "CalibrationParameters", "calibrate_frame", "frame_statistics", "write_ccd"]

log = logging.getLogger(__name__)


@dataclass
class Masters:
    """The master calibrations of a night, loaded once for many frames.

    Attributes
    ----------
    bias : CCDData
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
    """

    bias: CCDData
    darks: dict[float, CCDData] = field(default_factory=dict)
    flats: dict[str, CCDData] = field(default_factory=dict)
    bad_pixels: np.ndarray | None = None
    names: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        bias: str | Path,
        darks: list[str | Path],
        flats: dict[str, str | Path],
        bad_pixels: str | Path | None = None,
    ) -> Masters:
        """Read masters written by the workflow."""
        master_bias = _read_master(bias)
        dark_ccds = {}
        names = {"bias": Path(bias).name}
        for path in darks:
            ccd = _read_master(path)
            t = float(ccd.meta["EXPTIME"])
            dark_ccds[t] = ccd
            names[f"dark:{t:g}"] = Path(path).name
        flat_ccds = {}
        for name, path in flats.items():
            flat_ccds[name] = _read_master(path)
            names[f"flat:{name}"] = Path(path).name
        mask = None
        if bad_pixels:
            mask = fits.getdata(bad_pixels).astype(np.uint8)
            names["bad_pixels"] = Path(bad_pixels).name
        return cls(master_bias, dark_ccds, flat_ccds, mask, names)


@dataclass(frozen=True)
class CalibrationParameters:
    """Detector parameters and options of the calibration."""

    gain: float  # e-/ADU
    read_noise: float  # e-
    saturation: float = 65535.0
    cosmic_rays: bool = False
    cosmic_ray_sigma: float = 4.5
    exptime_keyword: str = "EXPTIME"


def _native_float32(array: np.ndarray) -> np.ndarray:
    """``array`` as float32, without a copy when it already is (of either byte order).

    FITS data are big-endian; numpy swaps bytes on the fly in arithmetic, which is cheaper than
    a swapped copy of a full frame.
    """
    array = np.asarray(array)
    if array.dtype.kind == "f" and array.dtype.itemsize == 4:
        return array
    return array.astype(np.float32)


def _uncertainty_plane(ccd: CCDData | None) -> np.ndarray | float:
    if ccd is None or ccd.uncertainty is None:
        return 0.0
    return _native_float32(ccd.uncertainty.array)


def _add_square(
    total: np.ndarray, plane: np.ndarray | float, factor: float, scratch: np.ndarray
) -> None:
    """``total += (plane * factor)**2`` in place (``scratch`` may be ``plane`` itself)."""
    if np.isscalar(plane):
        total += np.float32((plane * factor) ** 2)
        return
    np.multiply(plane, np.float32(factor), out=scratch)
    scratch *= scratch
    total += scratch


def _read_master(path: str | Path) -> CCDData:
    """A master's image and uncertainty as native float32; its mask planes are not needed."""
    with fits.open(path, memmap=False) as hdul:
        header = hdul[0].header.copy()
        data = _native_float32(hdul[0].data)
        uncertainty = (
            StdDevUncertainty(_native_float32(hdul["UNCERT"].data), copy=False)
            if "UNCERT" in hdul
            else None
        )
    unit = header.get("BUNIT") or u.dimensionless_unscaled
    return CCDData(data, unit=unit, meta=header, uncertainty=uncertainty, copy=False)


def calibrate_frame(
    path: str | Path,
    masters: Masters,
    filter_name: str,
    params: CalibrationParameters,
) -> CCDData:
    """Calibrate one raw science frame.

    Parameters
    ----------
    path : path
        Raw frame.
    masters : Masters
        Master calibrations.
    filter_name : str
        Canonical filter of the frame (selects the master flat).
    params : CalibrationParameters
        Gain, read noise, saturation and cosmic-ray options.

    Returns
    -------
    astropy.nddata.CCDData
        Calibrated frame in ADU with uncertainty and mask.

    Raises
    ------
    KeyError
        If there is no master flat for the filter.
    """
    path = Path(path)
    with fits.open(path, memmap=False) as hdul:
        raw = hdul[0].data.astype(np.float32)
        header = hdul[0].header.copy()
    if filter_name not in masters.flats:
        raise KeyError(f"{path.name}: no master flat for filter {filter_name!r}")
    exptime = float(header[params.exptime_keyword])
    # In-place float32 arithmetic: a full frame is 61 MB a plane, and every temporary costs.
    saturated = raw >= params.saturation
    signal = raw
    signal -= _native_float32(masters.bias.data)
    variance = np.maximum(signal, 0.0)
    variance *= np.float32(1.0 / params.gain)
    variance += np.float32((params.read_noise / params.gain) ** 2)
    scratch = np.empty_like(signal)
    _add_square(variance, _uncertainty_plane(masters.bias), 1.0, scratch)
    dark_name = "none"
    scale = 0.0
    if masters.darks:
        dark, scale = dark_for_exposure(masters.darks, exptime)
        np.multiply(_native_float32(dark.data), np.float32(scale), out=scratch)
        signal -= scratch
        _add_square(variance, _uncertainty_plane(dark), scale, scratch)
        dark_name = masters.names.get(f"dark:{float(dark.meta['EXPTIME']):g}", "master dark")
    flat_ccd = masters.flats[filter_name]
    flat = _native_float32(flat_ccd.data)
    good_flat = flat > 0.05
    inverse_flat = np.divide(np.float32(1.0), flat, out=np.ones_like(flat), where=good_flat)
    data = signal
    data *= inverse_flat
    # variance / flat**2 + (data * flat_error / flat)**2
    variance *= inverse_flat
    variance *= inverse_flat
    flat_err = _uncertainty_plane(flat_ccd)
    if not np.isscalar(flat_err):
        np.multiply(data, flat_err, out=scratch)
        scratch *= inverse_flat
        _add_square(variance, scratch, 1.0, scratch)
    del scratch, inverse_flat
    mask = np.zeros(data.shape, dtype=np.uint8)
    if masters.bad_pixels is not None:
        mask |= masters.bad_pixels
    mask[saturated] |= SATURATED
    mask[~good_flat] |= LOW_RESPONSE
    n_cosmic = 0
    if params.cosmic_rays:
        import astroscrappy

        crmask, _ = astroscrappy.detect_cosmics(
            data * flat,  # the dark-subtracted signal before flat-fielding
            inmask=mask.astype(bool),
            sigclip=params.cosmic_ray_sigma,
            gain=params.gain,
            readnoise=params.read_noise,
            satlevel=params.saturation,
            sepmed=True,
            cleantype="medmask",
        )
        mask[crmask] |= COSMIC_RAY
        n_cosmic = int(crmask.sum())

    header["BUNIT"] = "adu"
    header["BIASCORR"] = (masters.names.get("bias", "master bias"), "master bias subtracted")
    header["DARKCORR"] = (dark_name, "master dark subtracted")
    header["DARKSCAL"] = (round(scale, 6), "dark scaled by exposure-time ratio")
    header["FLATCORR"] = (
        masters.names.get(f"flat:{filter_name}", "master flat"),
        "divided by master flat",
    )
    header["BPMASK"] = (masters.names.get("bad_pixels", "none"), "bad-pixel mask applied")
    header["GAIN_E"] = (params.gain, "[e-/adu] gain used for uncertainties")
    header["RDNOISE"] = (params.read_noise, "[e-] read noise used for uncertainties")
    header["SATURATE"] = (params.saturation, "[adu] raw saturation level")
    header["CRCLEAN"] = (params.cosmic_rays, "cosmic rays masked (astroscrappy)")
    header["NCOSMIC"] = (n_cosmic, "pixels masked as cosmic rays")
    header["FILTNAME"] = (filter_name, "canonical filter name")
    add_provenance(
        header,
        "calibration (raw - bias - scaled dark) / flat",
        [path],
        {"gain": params.gain, "read_noise": params.read_noise, "cosmic_rays": params.cosmic_rays},
    )
    for key in ("BZERO", "BSCALE"):
        header.remove(key, ignore_missing=True)
    return CCDData(
        data,
        unit=u.adu,
        meta=header,
        mask=mask > 0,
        flags=mask,
        uncertainty=StdDevUncertainty(np.sqrt(variance, out=variance)),
    )


def read_ccd(path: str | Path) -> CCDData:
    """Read a CCDData file written by `write_ccd`; a missing ``BUNIT`` means dimensionless."""
    unit = fits.getheader(path).get("BUNIT") or u.dimensionless_unscaled
    return CCDData.read(
        path, unit=unit, hdu_uncertainty="UNCERT", hdu_mask="MASK", hdu_flags="FLAGS"
    )


def write_ccd(ccd: CCDData, path: str | Path) -> None:
    """Write a CCDData file with ``UNCERT``, ``MASK`` and (bit) ``FLAGS`` extensions."""
    flags = "FLAGS" if isinstance(ccd.flags, np.ndarray) else None
    hdul = ccd.to_hdu(hdu_mask="MASK", hdu_uncertainty="UNCERT", hdu_flags=flags)
    if flags:
        hdul["FLAGS"].header["BITS"] = (
            "1 hot 2 low resp 4 high resp 8 saturated 16 cosmic",
            "meaning of flag bits",
        )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    hdul.writeto(path, overwrite=True)


def frame_statistics(ccd: CCDData) -> dict:
    """Sky level, noise and masked-pixel counts of a calibrated frame (for quality control)."""
    from astropy.stats import sigma_clipped_stats

    # Every 4th pixel of every 4th row: a million pixels of a full frame, plenty for a median.
    data = np.asarray(ccd.data)[::4, ::4]
    mask = np.asarray(ccd.mask)[::4, ::4] > 0 if ccd.mask is not None else None
    # The MAD is little affected by faint stars, unlike a clipped standard deviation.
    _, median, std = sigma_clipped_stats(data, mask=mask, sigma=3.0, maxiters=3, stdfunc="mad_std")
    flags = ccd.flags if isinstance(ccd.flags, np.ndarray) else None
    full_mask = np.asarray(flags) if flags is not None else np.zeros(ccd.shape, np.uint8)
    unc = np.asarray(ccd.uncertainty.array)[::4, ::4] if ccd.uncertainty is not None else None
    return {
        "sky_median": float(median),
        "sky_std": float(std),
        "predicted_std": float(np.median(unc)) if unc is not None else float("nan"),
        "n_saturated": int(np.count_nonzero(full_mask & SATURATED)),
        "n_cosmic": int(np.count_nonzero(full_mask & COSMIC_RAY)),
        "n_masked": int(np.count_nonzero(full_mask)),
    }
