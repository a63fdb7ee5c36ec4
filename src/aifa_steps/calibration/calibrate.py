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
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.stats import biweight_scale

from aifa_steps.calibration.detector import FrameDetector
from aifa_steps.calibration.masters import dark_for_exposure
from aifa_steps.calibration.masterset import Masters, native_float32
from aifa_steps.calibration.qc import add_frame_statistics, frame_statistics
from aifa_steps.calibration.settings import CalibrationParameters
from aifa_steps.core.failures import FrameFailure, check_light_data
from aifa_steps.core.fitsutil import remove_wcs
from aifa_steps.core.formats import COSMIC_RAY, LOW_RESPONSE, NO_DATA, SATURATED
from aifa_steps.core.provenance import add_provenance
from aifa_steps.inventory.headers import header_float, keywords_for
from aifa_steps.inventory.rawio import clean_header, read_raw_image
from aifa_steps.inventory.readout import ReadoutSettings

__all__ = [
    "CalibrationParameters",
    "calibrate_frame",
    "calibrate_light",
    "failed_light_header",
]

log = logging.getLogger(__name__)


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


def _uncertainty_plane(ccd: CCDData | None) -> np.ndarray | float:
    if ccd is None or ccd.uncertainty is None:
        return 0.0
    return native_float32(ccd.uncertainty.array)


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


def calibrate_frame(
    path: str | Path,
    masters: Masters,
    filter_name: str,
    detector: FrameDetector,
    params: CalibrationParameters = CalibrationParameters(),
    readout: ReadoutSettings | Mapping[str, object] | None = None,
    exptime_keyword: str | Sequence[str] | None = None,
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
    detector : FrameDetector
        Gain, read noise, saturation and bias level of the frame.
    params : CalibrationParameters
        Cosmic-ray options.
    readout : ReadoutSettings or mapping, optional
        Overscan and trim (default: the header's sections, if any).
    exptime_keyword : str or sequence of str, optional
        Header keyword(s) of the exposure time (default: EXPTIME and the usual others).

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
    (``BIASINCL``), else from ``detector.bias_level``; without either it stays in the data and
    the uncertainty of the sky is its measured pixel-to-pixel noise (`_sky_noise`) instead of
    the CCD equation. Without a flat the frame is not flat-fielded (``FLATCORR = 'none'``).
    """
    path = Path(path)
    # Plain, .gz, .fz, the image in any HDU; overscan subtracted and trimmed first.
    raw, header = read_raw_image(path, readout=readout)
    header = clean_header(header)  # no XTENSION, ZIMAGE, BZERO... of the raw file
    if remove_wcs(header):  # the astrometry solves every frame itself
        header["RAWWCS"] = (False, "the raw frame's WCS keywords were removed")
    overscan_level = float(header.get("OVSLEVEL", 0.0)) if "OVERSCAN" in header else None
    # Saturation is a raw level: after the overscan it sits that much lower.
    saturation = detector.saturation - (overscan_level or 0.0)
    check_light_data(raw, saturation)
    keywords = exptime_keyword
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
        signal -= native_float32(masters.bias.data)
    elif dark_has_bias:
        # No bias frames: the darks carry the bias level; subtract them first, unscaled.
        np.multiply(native_float32(dark.data), np.float32(scale), out=scratch)
        signal -= scratch
        bias_note = "bias level in the dark"
    elif overscan_level is not None:
        bias_note = "overscan only (no bias frames)"
    elif detector.bias_level is not None:
        pedestal = float(detector.bias_level)
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
        variance *= np.float32(1.0 / detector.gain)
        variance += np.float32(sky_noise[1])
        np.maximum(variance, np.float32(0.25 * sky_noise[1]), out=variance)
    else:
        variance = np.maximum(signal, 0.0)
        variance *= np.float32(1.0 / detector.gain)
        variance += np.float32((detector.read_noise / detector.gain) ** 2)
    _add_square(variance, _uncertainty_plane(masters.bias), 1.0, scratch)
    dark_name = "none"
    if dark is not None:
        if not dark_has_bias:
            np.multiply(native_float32(dark.data), np.float32(scale), out=scratch)
            signal -= scratch
        _add_square(variance, _uncertainty_plane(dark), scale, scratch)
        dark_name = masters.names.get(f"dark:{float(dark.meta['EXPTIME']):g}", "master dark")
    flat_ccd = masters.flats.get(filter_name)
    data = signal
    if flat_ccd is not None:
        flat = native_float32(flat_ccd.data)
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
            gain=detector.gain,
            readnoise=detector.read_noise,
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
    header["GAIN_E"] = (detector.gain, "[e-/adu] gain used for uncertainties")
    header["RDNOISE"] = (detector.read_noise, "[e-] read noise used for uncertainties")
    header["GAINSRC"] = (detector.gain_source[:68], "where GAIN_E comes from")
    header["RDNSRC"] = (detector.read_noise_source[:68], "where RDNOISE comes from")
    header["SATURATE"] = (detector.saturation, "[adu] raw saturation level")
    header["CRCLEAN"] = (params.cosmic_rays, "cosmic rays masked (astroscrappy)")
    header["NCOSMIC"] = (n_cosmic, "pixels masked as cosmic rays")
    header["FILTNAME"] = (filter_name, "canonical filter name")
    add_provenance(
        header,
        "calibration (raw - bias - scaled dark) / flat",
        [path],
        {
            "gain": detector.gain,
            "gain_source": detector.gain_source,
            "read_noise": detector.read_noise,
            "read_noise_source": detector.read_noise_source,
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


def calibrate_light(
    path: str | Path,
    masters: Masters,
    frame: Mapping[str, object],
    detector: FrameDetector,
    **options: object,
) -> tuple[CCDData, dict]:
    """Calibrate one light of the inventory and label it for the later steps.

    Parameters
    ----------
    path, masters
        The raw frame and the night's masters, as for `calibrate_frame`.
    frame : mapping
        The frame's inventory row: ``filter``, ``object`` and ``target`` (file-safe name).
    detector : FrameDetector
        Gain, read noise, saturation and bias level of the frame.
    **options
        ``params``, ``readout``, ``exptime_keyword`` of `calibrate_frame`.

    Returns
    -------
    ccd : astropy.nddata.CCDData
        The calibrated frame; its header carries the statistics (`qc.QC_CARDS`), ``OBJECT``,
        ``TARGET`` and ``FRAMEOK = T``.
    stats : dict
        `aifa_steps.calibration.qc.frame_statistics` of the frame.
    """
    ccd = calibrate_frame(path, masters, str(frame["filter"]), detector, **options)
    stats = frame_statistics(ccd)
    add_frame_statistics(ccd.meta, stats)
    ccd.meta["OBJECT"] = frame["object"]
    ccd.meta["TARGET"] = (frame["target"], "file-safe name of OBJECT")
    ccd.meta["FRAMEOK"] = (True, "calibrated")
    return ccd, stats


def failed_light_header(frame: Mapping[str, object]) -> fits.Header:
    """Header of the file of a light that could not be calibrated (with its inventory row)."""
    header = fits.Header({"OBJECT": frame["object"], "TARGET": frame["target"]})
    header["FILTNAME"] = frame["filter"]
    header["EXPTIME"] = frame["exptime"]
    return header
