"""Stars on the detector: Moffat profiles with exactly known total flux."""

from __future__ import annotations

import numpy as np

__all__ = ["moffat_alpha", "moffat_fwhm", "add_moffat_stars"]


def moffat_alpha(fwhm_px: float, beta: float) -> float:
    """Moffat core width alpha for a given FWHM (pixels) and beta."""
    return fwhm_px / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


def moffat_fwhm(alpha: float, beta: float) -> float:
    """FWHM (pixels) of a Moffat profile."""
    return 2.0 * alpha * np.sqrt(2.0 ** (1.0 / beta) - 1.0)


def _stamp_radius(peak: float, alpha: float, beta: float, max_radius: float) -> float:
    # Out to where the profile falls below 0.3 ADU, and at least to where 99.8 % of the flux
    # is enclosed.
    r_flux = alpha * np.sqrt(0.002 ** (1.0 / (1.0 - beta)) - 1.0)
    r_faint = alpha * np.sqrt(max(peak / 0.3, 1.0) ** (1.0 / beta) - 1.0)
    return float(min(max(r_flux, r_faint), max_radius))


def add_moffat_stars(
    image: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    fwhm_px: float,
    beta: float,
    max_radius: float = 300.0,
) -> None:
    """Add circular Moffat stars to an image in place.

    Each profile is truncated at a radius that depends on its brightness and rescaled so that
    the star's total flux (on an infinite detector) equals ``flux`` exactly; the part that falls
    off the image edge is lost, as on a real detector.

    Parameters
    ----------
    image : numpy.ndarray
        2-D float image (modified).
    x, y : numpy.ndarray
        Zero-based pixel positions of the star centres.
    flux : numpy.ndarray
        Total fluxes in the image's units.
    fwhm_px : float
        Full width at half maximum in pixels.
    beta : float
        Moffat power index (> 1).
    max_radius : float
        Largest stamp radius in pixels.
    """
    alpha = moffat_alpha(fwhm_px, beta)
    ny, nx = image.shape
    norm0 = (beta - 1.0) / (np.pi * alpha**2)
    for xc, yc, f in zip(np.asarray(x), np.asarray(y), np.asarray(flux), strict=True):
        if f <= 0:
            continue
        radius = _stamp_radius(f * norm0, alpha, beta, max_radius)
        x0, x1 = max(int(np.floor(xc - radius)), 0), min(int(np.ceil(xc + radius)) + 1, nx)
        y0, y1 = max(int(np.floor(yc - radius)), 0), min(int(np.ceil(yc + radius)) + 1, ny)
        if x0 >= x1 or y0 >= y1:
            continue
        dx2 = ((np.arange(x0, x1) - xc) ** 2 / alpha**2).astype(np.float32)
        dy2 = ((np.arange(y0, y1) - yc) ** 2 / alpha**2).astype(np.float32)
        u = 1.0 + dy2[:, None] + dx2[None, :]
        enclosed = 1.0 - (1.0 + radius**2 / alpha**2) ** (1.0 - beta)
        # beta = 3 (the default) is a product, far faster than a power.
        profile = 1.0 / (u * u * u) if beta == 3.0 else u ** np.float32(-beta)
        profile[u > np.float32(1.0 + radius**2 / alpha**2)] = 0.0
        image[y0:y1, x0:x1] += np.float32(f * norm0 / enclosed) * profile
