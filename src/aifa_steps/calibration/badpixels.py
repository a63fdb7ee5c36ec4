"""Bad-pixel mask from the master dark (hot pixels) and the master flats (dead or low pixels).

The mask is a bit field (uint8) of the pixel flags of `aifa_steps.core.formats`: ``HOT`` where
the dark current stands out of the master dark's noise, ``LOW_RESPONSE`` where a flat is far
below its local level (dead pixels, deep defects; vignetting and dust donuts are smooth and stay
unmasked), ``HIGH_RESPONSE`` where a flat is far above it. The mask's header documents the
bits (`aifa_steps.core.formats.flag_cards`) and counts the pixels of each (`mask_header`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.nddata import CCDData
from astropy.stats import mad_std

from aifa_steps.calibration.masterset import Masters
from aifa_steps.calibration.settings import BadPixelSettings
from aifa_steps.core.failures import FrameFailure
from aifa_steps.core.formats import HIGH_RESPONSE, HOT, LOW_RESPONSE, PIXEL_FLAGS, flag_cards
from aifa_steps.core.images import coarse_background
from aifa_steps.core.provenance import add_provenance

__all__ = [
    "BadPixelSettings",
    "hot_pixels",
    "response_defects",
    "bad_pixel_mask",
    "mask_from_masters",
    "MASK_COUNT_CARDS",
    "mask_header",
]

log = logging.getLogger(__name__)

#: Header cards that count the pixels of each bit of the mask (bit -> card).
MASK_COUNT_CARDS = {HOT: "NHOT", LOW_RESPONSE: "NLOWRESP", HIGH_RESPONSE: "NHIGHRSP"}


def hot_pixels(master_dark: CCDData, sigma: float = 5.0) -> np.ndarray:
    """Pixels whose dark signal exceeds the frame's median by ``sigma`` robust std.

    Parameters
    ----------
    master_dark : CCDData
        Bias-subtracted master dark.
    sigma : float
        Threshold in robust (MAD) standard deviations of the master dark.

    Returns
    -------
    numpy.ndarray
        Boolean mask.
    """
    data = np.asarray(master_dark.data, dtype=np.float32)
    # A smooth background (amplifier glow) is removed first.
    excess = data - coarse_background(data)
    return excess > sigma * mad_std(excess[::2, ::2])


def response_defects(
    master_flat: CCDData, low: float = 0.7, high: float = 1.3, box: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels whose flat response is below ``low`` or above ``high`` times the local median.

    The local median is taken in ``box`` x ``box`` cells: vignetting and dust donuts change by
    far less than 30 % across a cell, a dead pixel by much more.

    Returns
    -------
    low_mask, high_mask : numpy.ndarray
        Boolean masks.
    """
    flat = np.asarray(master_flat.data, dtype=np.float32)
    local = coarse_background(flat, box)
    ratio = flat / np.where(local > 0, local, 1.0)
    return ratio < low, ratio > high


def bad_pixel_mask(
    master_dark: CCDData | None,
    master_flats: list[CCDData],
    hot_sigma: float = 5.0,
    low_response: float = 0.7,
    high_response: float = 1.3,
) -> np.ndarray:
    """Combine hot pixels and response defects into one bit mask (uint8)."""
    shapes = {np.shape(c.data) for c in master_flats}
    if master_dark is not None:
        shapes.add(np.shape(master_dark.data))
    if len(shapes) != 1:
        raise ValueError(f"masters differ in shape: {sorted(shapes)}")
    mask = np.zeros(shapes.pop(), dtype=np.uint8)
    if master_dark is not None:
        mask[hot_pixels(master_dark, hot_sigma)] |= HOT
    for flat in master_flats:
        lo, hi = response_defects(flat, low_response, high_response)
        mask[lo] |= LOW_RESPONSE
        mask[hi] |= HIGH_RESPONSE
    return mask


def mask_from_masters(
    masters: Masters, settings: BadPixelSettings = BadPixelSettings()
) -> np.ndarray:
    """The bad-pixel mask of a night from its longest master dark and all its master flats.

    Parameters
    ----------
    masters : Masters
        The night's master darks and flats (absent or failed ones are noted in ``missing``).
    settings : BadPixelSettings
        Thresholds.

    Returns
    -------
    numpy.ndarray
        Bit mask (uint8).

    Raises
    ------
    aifa_steps.core.failures.FrameFailure
        When the night has no usable master dark or flat (the message says why).
    """
    darks = list(masters.darks.values())
    flats = list(masters.flats.values())
    if not darks and not flats:
        missing = [m for key, m in masters.missing.items() if key != "bias"]
        raise FrameFailure(
            "skipped: the night has no usable master dark or flat"
            + (f" ({'; '.join(missing)})" if missing else "")
        )
    longest = max(darks, key=lambda d: float(d.meta["EXPTIME"])) if darks else None
    if longest is not None and longest.meta.get("BIASINCL", False):
        log.warning("the darks include the bias level (no bias frames): its pattern adds noise")
    return bad_pixel_mask(
        longest, flats, settings.hot_pixel_sigma, settings.low_response, settings.high_response
    )


def mask_header(
    mask: np.ndarray,
    inputs: Sequence[str | Path] = (),
    settings: BadPixelSettings = BadPixelSettings(),
) -> fits.Header:
    """Header of a bad-pixel mask: its bits (`flag_cards`), pixel counts and provenance.

    Parameters
    ----------
    mask : numpy.ndarray
        The bit mask.
    inputs : sequence of path
        The master darks and flats it comes from.
    settings : BadPixelSettings
        The thresholds used.

    Returns
    -------
    astropy.io.fits.Header
        ``FLAGBITn`` cards for every pixel flag, ``NHOT``, ``NLOWRESP``, ``NHIGHRSP``
        (`MASK_COUNT_CARDS`) and the provenance cards.
    """
    header = fits.Header()
    for key, bit, text in flag_cards():
        header[key] = (bit, text)
    for bit, card in MASK_COUNT_CARDS.items():
        name = PIXEL_FLAGS[bit][0].lower().replace("_", "-")
        header[card] = (int(np.count_nonzero(mask & bit)), f"{name} pixels")
    add_provenance(header, "bad-pixel mask", list(inputs), asdict(settings))
    return header
