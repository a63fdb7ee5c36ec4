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
        master_bias = read_ccd(bias)
        dark_ccds = {}
        names = {"bias": Path(bias).name}
        for path in darks:
            ccd = read_ccd(path)
            t = float(ccd.meta["EXPTIME"])
            dark_ccds[t] = ccd
            names[f"dark:{t:g}"] = Path(path).name
        flat_ccds = {}
        for name, path in flats.items():
            flat_ccds[name] = read_ccd(path)
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


def _uncertainty_plane(ccd: CCDData | None) -> np.ndarray | float:
    if ccd is None or ccd.uncertainty is None:
        return 0.0
    return np.asarray(ccd.uncertainty.array, dtype=np.float32)


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
        raw = np.asarray(hdul[0].data, dtype=np.float32)
        header = hdul[0].header.copy()
    if filter_name not in masters.flats:
        raise KeyError(f"{path.name}: no master flat for filter {filter_name!r}")
    exptime = float(header[params.exptime_keyword])
    bias = np.asarray(masters.bias.data, dtype=np.float32)
    signal = raw - bias
    variance = np.clip(signal, 0.0, None) / np.float32(params.gain)
    variance += np.float32((params.read_noise / params.gain) ** 2)
    variance += np.square(_uncertainty_plane(masters.bias))
    dark_name = "none"
    scale = 0.0
    if masters.darks:
        dark, scale = dark_for_exposure(masters.darks, exptime)
        signal -= np.asarray(dark.data, dtype=np.float32) * np.float32(scale)
        variance += np.square(_uncertainty_plane(dark) * np.float32(scale))
        dark_name = masters.names.get(f"dark:{float(dark.meta['EXPTIME']):g}", "master dark")
    flat_ccd = masters.flats[filter_name]
    flat = np.asarray(flat_ccd.data, dtype=np.float32)
    good_flat = flat > 0.05
    safe_flat = np.where(good_flat, flat, 1.0).astype(np.float32)
    data = signal / safe_flat
    flat_err = _uncertainty_plane(flat_ccd)
    variance = variance / safe_flat**2 + np.square(data * flat_err / safe_flat)
    mask = np.zeros(raw.shape, dtype=np.uint8)
    if masters.bad_pixels is not None:
        mask |= masters.bad_pixels
    mask[raw >= params.saturation] |= SATURATED
    mask[~good_flat] |= LOW_RESPONSE
    n_cosmic = 0
    if params.cosmic_rays:
        import astroscrappy

        crmask, _ = astroscrappy.detect_cosmics(
            signal,
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
        data.astype(np.float32),
        unit=u.adu,
        meta=header,
        mask=mask > 0,
        flags=mask,
        uncertainty=StdDevUncertainty(np.sqrt(variance).astype(np.float32)),
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

    data = np.asarray(ccd.data)[::2, ::2]
    mask = np.asarray(ccd.mask)[::2, ::2] > 0 if ccd.mask is not None else None
    # The MAD is little affected by faint stars, unlike a clipped standard deviation.
    _, median, std = sigma_clipped_stats(data, mask=mask, sigma=3.0, maxiters=3, stdfunc="mad_std")
    flags = ccd.flags if isinstance(ccd.flags, np.ndarray) else None
    full_mask = np.asarray(flags) if flags is not None else np.zeros(ccd.shape, np.uint8)
    unc = np.asarray(ccd.uncertainty.array)[::2, ::2] if ccd.uncertainty is not None else None
    return {
        "sky_median": float(median),
        "sky_std": float(std),
        "predicted_std": float(np.median(unc)) if unc is not None else float("nan"),
        "n_saturated": int(np.count_nonzero(full_mask & SATURATED)),
        "n_cosmic": int(np.count_nonzero(full_mask & COSMIC_RAY)),
        "n_masked": int(np.count_nonzero(full_mask)),
    }
