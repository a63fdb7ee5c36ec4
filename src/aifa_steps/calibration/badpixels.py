"""Bad-pixel mask from the master dark (hot pixels) and the master flats (dead or low pixels).

The mask is a bit field (uint8): ``HOT`` (1) where the dark current stands out of the master
dark's noise, ``LOW_RESPONSE`` (2) where a flat is far below its local level (dead pixels, deep
defects; vignetting and dust donuts are smooth and stay unmasked), ``HIGH_RESPONSE`` (4) where a
flat is far above it.
"""

from __future__ import annotations

import numpy as np
from astropy.nddata import CCDData
from astropy.stats import mad_std

from aifa_steps.core.formats import HIGH_RESPONSE, HOT, LOW_RESPONSE
from aifa_steps.core.images import coarse_background

__all__ = [
    "hot_pixels",
    "response_defects",
    "bad_pixel_mask",
]


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
