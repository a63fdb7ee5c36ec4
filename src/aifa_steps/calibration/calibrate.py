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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.stats import biweight_scale

from aifa_steps.calibration.masters import dark_for_exposure
from aifa_steps.core.failures import FrameFailure, check_light_data, fits_failure
from aifa_steps.core.fitsutil import remove_wcs
from aifa_steps.core.formats import COSMIC_RAY, LOW_RESPONSE, NO_DATA, SATURATED
from aifa_steps.core.frames import write_ccd
from aifa_steps.core.provenance import add_provenance
from aifa_steps.inventory.headers import header_float, keywords_for
from aifa_steps.inventory.rawio import clean_header, read_raw_image

__all__ = ["Masters", "CalibrationParameters", "calibrate_frame", "frame_statistics", "write_ccd"]

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
                masters.bad_pixels = fits.getdata(bad_pixels).astype(np.uint8)
                masters.names["bad_pixels"] = Path(bad_pixels).name
        return masters

    def _read(self, key: str, path: str | Path) -> CCDData | None:
        failure = fits_failure(path)
        if failure:
            self.missing[key] = f"{Path(path).name}: {failure[1]}"
            log.warning("master %s not used: %s", key, self.missing[key])
            return None
        self.names[key] = Path(path).name
        return _read_master(path)


@dataclass(frozen=True)
class CalibrationParameters:
    """Detector parameters and options of the calibration."""

    gain: float  # e-/ADU
    read_noise: float  # e-
    saturation: float = 65535.0
    cosmic_rays: bool = False
    cosmic_ray_sigma: float = 4.5
    exptime_keyword: str | tuple[str, ...] | None = None  # None: EXPTIME and the usual others
    bias_level: float | None = None  # ADU; for nights without bias frames and darks
    readout: Mapping[str, object] | None = None  # overscan and trim (aifa_steps.inventory.readout)
    gain_source: str = "configuration"  # where the gain comes from (header GAINSRC)
    read_noise_source: str = "configuration"  # ... and the read noise (RDNSRC)


def _sky_noise(raw: np.ndarray, no_data: np.ndarray, saturation: float) -> tuple[float, float]:
    """Median level and pixel-to-pixel variance of the sky in the central half of a frame.

    The noise comes from differences of neighbouring pixels (their biweight scale / sqrt 2),
    which a gradient, vignetting or a few stars hardly change. Used for the uncertainty of a
    frame whose bias level is unknown: the measured sky variance then stands for the photon
    noise of the sky plus read noise (and anything else that scatters the sky from pixel to
    pixel).

    Returns
    -------
    level : float
        Median (ADU).
    variance : float
        ADU^2 (NaN when the centre has too few good pixels).
    """
    ny, nx = raw.shape
    box = (slice(ny // 4, ny - ny // 4), slice(nx // 4, nx - nx // 4))
    centre = raw[box]
    good = ~no_data[box] & (centre < saturation)
    pairs = good[:, :-1] & good[:, 1:]
    diff = (centre[:, 1:] - centre[:, :-1])[pairs]
    if diff.size < 100:
        return float(np.median(raw)), float("nan")
    # The biweight scale: robust against stars and hot pixels like the MAD, but not stepped
    # by the integer values of raw data (the MAD of integer differences is).
    step = max(1, diff.size // 1_000_000)
    sigma = float(biweight_scale(diff[::step].astype(np.float64))) / np.sqrt(2.0)
    return float(np.median(centre[good])), sigma**2


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
    aifa_steps.core.failures.FrameFailure
        If the frame holds no usable data (all NaN, saturated, blank) or its exposure time is
        not positive.

    Notes
    -----
    Masters the night lacks are skipped and the header says so (``BIASNOTE``, ``FLATNOTE``):
    without a master bias the bias level comes from a master dark that includes it
    (``BIASINCL``), else from ``params.bias_level``; without either it stays in the data and
    the uncertainty of the sky is its measured pixel-to-pixel noise (`_sky_noise`) instead of
    the CCD equation. Without a flat the frame is not flat-fielded (``FLATCORR = 'none'``).
    """
    path = Path(path)
    # Plain, .gz, .fz, the image in any HDU; overscan subtracted and trimmed first.
    raw, header = read_raw_image(path, readout=params.readout)
    header = clean_header(header)  # no XTENSION, ZIMAGE, BZERO... of the raw file
    if remove_wcs(header):  # the astrometry solves every frame itself
        header["RAWWCS"] = (False, "the raw frame's WCS keywords were removed")
    overscan_level = float(header.get("OVSLEVEL", 0.0)) if "OVERSCAN" in header else None
    # Saturation is a raw level: after the overscan it sits that much lower.
    saturation = params.saturation - (overscan_level or 0.0)
    check_light_data(raw, saturation)
    keywords = params.exptime_keyword
    exptime = header_float(header, "exptime", {"exptime": keywords} if keywords else None)
    if exptime is None:
        raise FrameFailure(f"no exposure time ({'/'.join(keywords_for('exptime'))})")
    if not exptime > 0:
        raise FrameFailure(f"exposure time = {exptime:g} s is not positive")
    # Single pixels without data (NaN in a float raw frame) are flagged and get a neutral
    # value, so that the arithmetic and the statistics stay finite.
    no_data = ~np.isfinite(raw)
    n_no_data = int(np.count_nonzero(no_data))
    if n_no_data:
        raw[no_data] = np.float32(np.median(raw[~no_data][::7]))
    # In-place float32 arithmetic: a full frame is 61 MB a plane, and every temporary costs.
    saturated = raw >= saturation
    signal = raw
    scratch = np.empty_like(signal)
    dark, scale = None, 0.0
    if masters.darks:
        dark, scale = dark_for_exposure(masters.darks, exptime)
    dark_has_bias = dark is not None and bool(dark.meta.get("BIASINCL", False))
    pedestal, bias_note = 0.0, ""
    sky_noise = None
    if masters.bias is not None:
        signal -= _native_float32(masters.bias.data)
    elif dark_has_bias:
        # No bias frames: the darks carry the bias level; subtract them first, unscaled.
        np.multiply(_native_float32(dark.data), np.float32(scale), out=scratch)
        signal -= scratch
        bias_note = "bias level in the dark"
    elif overscan_level is not None:
        bias_note = "overscan only (no bias frames)"
    elif params.bias_level is not None:
        pedestal = float(params.bias_level)
        signal -= np.float32(pedestal)
        bias_note = f"constant instrument.bias_level {pedestal:g} ADU"
    else:
        # Neither bias frames, darks nor a configured level: the bias level is unknown, so
        # the CCD equation cannot split the sky level into photons and pedestal. The sky's
        # measured pixel-to-pixel variance stands for its noise instead, and sources add
        # their photon noise above the sky.
        sky_noise = _sky_noise(signal, no_data, saturation)
        bias_note = f"unknown: noise from the measured sky ({np.sqrt(sky_noise[1]):.2f} ADU rms)"
    if sky_noise is not None and np.isfinite(sky_noise[1]):
        # The sky's variance plus the photons above it (unclipped, so that the sky's own
        # fluctuations average out), never below a quarter of the sky's variance.
        variance = signal - np.float32(sky_noise[0])
        variance *= np.float32(1.0 / params.gain)
        variance += np.float32(sky_noise[1])
        np.maximum(variance, np.float32(0.25 * sky_noise[1]), out=variance)
    else:
        variance = np.maximum(signal, 0.0)
        variance *= np.float32(1.0 / params.gain)
        variance += np.float32((params.read_noise / params.gain) ** 2)
    _add_square(variance, _uncertainty_plane(masters.bias), 1.0, scratch)
    dark_name = "none"
    if dark is not None:
        if not dark_has_bias:
            np.multiply(_native_float32(dark.data), np.float32(scale), out=scratch)
            signal -= scratch
        _add_square(variance, _uncertainty_plane(dark), scale, scratch)
        dark_name = masters.names.get(f"dark:{float(dark.meta['EXPTIME']):g}", "master dark")
    flat_ccd = masters.flats.get(filter_name)
    data = signal
    if flat_ccd is not None:
        flat = _native_float32(flat_ccd.data)
        good_flat = flat > 0.05
        inverse_flat = np.divide(np.float32(1.0), flat, out=np.ones_like(flat), where=good_flat)
        data *= inverse_flat
        # variance / flat**2 + (data * flat_error / flat)**2
        variance *= inverse_flat
        variance *= inverse_flat
        flat_err = _uncertainty_plane(flat_ccd)
        if not np.isscalar(flat_err):
            np.multiply(data, flat_err, out=scratch)
            scratch *= inverse_flat
            _add_square(variance, scratch, 1.0, scratch)
        del inverse_flat
    else:
        flat = np.float32(1.0)
        good_flat = None
        log.warning(
            "%s: not flat-fielded: %s",
            path.name,
            masters.missing.get(f"flat:{filter_name}", f"no flat in filter {filter_name}"),
        )
    del scratch
    mask = np.zeros(data.shape, dtype=np.uint8)
    if masters.bad_pixels is not None:
        mask |= masters.bad_pixels
    mask[saturated] |= SATURATED
    if good_flat is not None:
        mask[~good_flat] |= LOW_RESPONSE
    if n_no_data:
        mask[no_data] |= NO_DATA
    n_cosmic = 0
    if params.cosmic_rays:
        import astroscrappy

        crmask, _ = astroscrappy.detect_cosmics(
            data * flat,  # the dark-subtracted signal before flat-fielding
            inmask=mask.astype(bool),
            sigclip=params.cosmic_ray_sigma,
            gain=params.gain,
            readnoise=params.read_noise,
            satlevel=saturation,
            sepmed=True,
            cleantype="medmask",
        )
        mask[crmask] |= COSMIC_RAY
        n_cosmic = int(crmask.sum())

    header["BUNIT"] = "adu"
    header["BIASCORR"] = (masters.names.get("bias", "none"), "master bias subtracted")
    if masters.bias is None:
        header["BIASNOTE"] = bias_note
        header["PEDESTAL"] = (round(float(pedestal), 3), "[adu] constant level subtracted")
    header["DARKCORR"] = (dark_name, "master dark subtracted")
    header["DARKSCAL"] = (round(scale, 6), "dark scaled by exposure-time ratio")
    header["FLATCORR"] = (
        masters.names.get(f"flat:{filter_name}", "none") if flat_ccd is not None else "none",
        "divided by master flat",
    )
    if flat_ccd is None:
        header["FLATNOTE"] = masters.missing.get(
            f"flat:{filter_name}", f"no flat in filter {filter_name}"
        )[:68]
    header["BPMASK"] = (masters.names.get("bad_pixels", "none"), "bad-pixel mask applied")
    header["NNODATA"] = (n_no_data, "pixels without data (NaN) in the raw frame")
    header["GAIN_E"] = (params.gain, "[e-/adu] gain used for uncertainties")
    header["RDNOISE"] = (params.read_noise, "[e-] read noise used for uncertainties")
    header["GAINSRC"] = (params.gain_source[:68], "where GAIN_E comes from")
    header["RDNSRC"] = (params.read_noise_source[:68], "where RDNOISE comes from")
    header["SATURATE"] = (params.saturation, "[adu] raw saturation level")
    header["CRCLEAN"] = (params.cosmic_rays, "cosmic rays masked (astroscrappy)")
    header["NCOSMIC"] = (n_cosmic, "pixels masked as cosmic rays")
    header["FILTNAME"] = (filter_name, "canonical filter name")
    add_provenance(
        header,
        "calibration (raw - bias - scaled dark) / flat",
        [path],
        {
            "gain": params.gain,
            "gain_source": params.gain_source,
            "read_noise": params.read_noise,
            "read_noise_source": params.read_noise_source,
            "cosmic_rays": params.cosmic_rays,
        },
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
