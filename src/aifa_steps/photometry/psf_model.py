"""The point-spread function of one frame, from its bright isolated stars.

`build_psf` makes an empirical PSF (photutils' `~photutils.psf.EPSFBuilder`, an oversampled
image of the stars' mean profile) when a frame has enough suitable stars, and otherwise a
circular Moffat profile (`~photutils.psf.MoffatPSF`) with the frame's curve-of-growth
parameters. Either model has parameters ``x_0``, ``y_0`` and ``flux`` for
`aifa_steps.photometry.psf_fit.fit_psf`.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["FramePsf", "build_psf", "moffat_psf", "psf_cutout_size", "smoothing_kernel"]

log = logging.getLogger(__name__)


@dataclass
class FramePsf:
    """A frame's PSF model and how it was made.

    Parameters
    ----------
    model : astropy.modeling.Fittable2DModel
        ``ImagePSF`` (empirical) or ``MoffatPSF`` with unit flux.
    kind : str
        ``"epsf"`` or ``"moffat"``.
    n_stars : int
        Stars that built it.
    fwhm_pixels : float
        The FWHM the fit boxes and groups are scaled with.
    """

    model: object
    kind: str
    n_stars: int
    fwhm_pixels: float

    @property
    def stamp_half(self) -> int:
        """Half size (pixels) of the box a star's model is drawn in.

        The ePSF's own extent; +-6 FWHM for a Moffat profile, whose wings never end.
        """
        data = getattr(self.model, "data", None)
        if data is not None:
            oversampling = np.max(np.atleast_1d(getattr(self.model, "oversampling", 1)))
            return int(np.ceil(max(data.shape) / oversampling / 2.0)) + 1
        return psf_cutout_size(self.fwhm_pixels)


def psf_cutout_size(fwhm_pixels: float) -> int:
    """Odd side (pixels) of the star cutouts that build an ePSF: about +-3 FWHM."""
    half = int(np.ceil(3.0 * max(fwhm_pixels, 1.0)))
    return 2 * max(half, 3) + 1


def moffat_psf(fwhm_pixels: float, beta: float = 3.0):
    """A circular Moffat PSF of unit flux with the given FWHM (pixels) and power index."""
    from photutils.psf import MoffatPSF

    beta = float(beta) if np.isfinite(beta) and beta > 1.05 else 3.0
    alpha = fwhm_pixels / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
    model = MoffatPSF(flux=1.0, alpha=alpha, beta=beta)
    model.alpha.fixed = True
    model.beta.fixed = True
    return model


def smoothing_kernel(oversampling: int) -> str | None:
    """The ePSF smoothing kernel photutils made for an oversampling factor.

    ``quartic`` suits an oversampling of 4 (photutils' default), ``quadratic`` one of 2; with
    the quartic kernel at an oversampling of 2 the wings come out too faint, and stars fitted
    on their wings (saturated cores) 2-4 % too faint. No smoothing without oversampling.
    """
    if oversampling >= 4:
        return "quartic"
    if oversampling >= 2:
        return "quadratic"
    return None


def build_psf(
    image: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    fwhm_pixels: float,
    *,
    oversampling: int = 2,
    min_stars: int = 15,
    moffat_beta: float = 3.0,
) -> FramePsf:
    """The PSF of a background-subtracted frame from bright isolated stars.

    Parameters
    ----------
    image : numpy.ndarray
        Background-subtracted frame (ADU).
    x, y : numpy.ndarray
        Pixel positions of bright, isolated, unsaturated stars free of bad pixels (brightest
        first; see `aifa_steps.photometry.psf_frame.psf_star_indices`).
    fwhm_pixels : float
        The frame's seeing FWHM in pixels.
    oversampling : int
        Oversampling of the empirical PSF.
    min_stars : int
        Fewer stars (after those whose cutout leaves the frame) give a Moffat profile.
    moffat_beta : float
        Power index of that Moffat profile (the frame's curve of growth's).

    Returns
    -------
    FramePsf
        The model; ``kind`` says which.
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    if len(x) >= min_stars:
        try:
            model, n = _empirical_psf(image, x, y, fwhm_pixels, oversampling)
        except (ValueError, RuntimeError) as error:
            log.warning("no empirical PSF (%s): a Moffat profile instead", error)
        else:
            if n >= min_stars:
                return FramePsf(model, "epsf", n, fwhm_pixels)
            log.warning("only %d stars for an empirical PSF: a Moffat profile instead", n)
    return FramePsf(moffat_psf(fwhm_pixels, moffat_beta), "moffat", len(x), fwhm_pixels)


def _empirical_psf(
    image: np.ndarray, x: np.ndarray, y: np.ndarray, fwhm_pixels: float, oversampling: int
) -> tuple[object, int]:
    from astropy.nddata import NDData
    from astropy.table import Table
    from photutils.psf import EPSFBuilder, extract_stars

    size = psf_cutout_size(fwhm_pixels)
    with warnings.catch_warnings():
        # Stars whose cutout leaves the frame are dropped with a warning each.
        warnings.simplefilter("ignore")
        stars = extract_stars(NDData(np.asarray(image, float)), Table({"x": x, "y": y}), size=size)
        if len(stars) == 0:
            return None, 0
        box = max(5, 2 * int(np.ceil(0.75 * fwhm_pixels)) + 1)
        builder = EPSFBuilder(
            oversampling=oversampling,
            smoothing_kernel=smoothing_kernel(oversampling),
            maxiters=10,
            recentering_boxsize=box,
            fit_shape=box,
            progress_bar=False,
        )
        epsf, fitted = builder(stars)
    return epsf, len(fitted)
