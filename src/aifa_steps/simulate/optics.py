"""True astrometric solution of a simulated frame: a TAN projection with SIP distortion.

The optical distortion of the telescope is radial about the optical axis, which falls on the
centre of the full detector; every preset's frames are centred cut-outs of that detector.
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, Sip

__all__ = ["sip_coefficients", "make_wcs", "wcs_header"]


def sip_coefficients(k3: float, k2: tuple[float, float] = (0.0, 0.0), order: int = 3):
    """SIP ``A`` and ``B`` matrices of a radial cubic distortion plus a small quadratic tilt.

    The distortion moves a pixel at offset (u, v) from the reference pixel to
    (u, v) * (1 + k3 (u^2 + v^2)) plus (k2[0] u^2, k2[1] v^2).

    Returns
    -------
    a, b : numpy.ndarray
        ``(order + 1, order + 1)`` coefficient arrays as `astropy.wcs.Sip` expects them
        (``a[p, q]`` multiplies u**p v**q).
    """
    a = np.zeros((order + 1, order + 1))
    b = np.zeros((order + 1, order + 1))
    a[3, 0] = a[1, 2] = k3
    b[0, 3] = b[2, 1] = k3
    a[2, 0] = k2[0]
    b[0, 2] = k2[1]
    return a, b


def make_wcs(
    shape: tuple[int, int],
    ra: float,
    dec: float,
    pixel_scale: float,
    rotation_deg: float,
    k3: float = 0.0,
    k2: tuple[float, float] = (0.0, 0.0),
) -> WCS:
    """A TAN-SIP WCS pointing at (ra, dec) with the optical axis at the frame centre.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the frame.
    ra, dec : float
        Sky position of the optical axis (the reference pixel), degrees.
    pixel_scale : float
        Arcsec per pixel at the reference pixel.
    rotation_deg : float
        Position angle of the detector's +y axis east of north.
    k3, k2 : float
        Radial and quadratic distortion terms, see `sip_coefficients`.

    Returns
    -------
    astropy.wcs.WCS
        Celestial WCS; with SIP terms when any distortion term is non-zero.
    """
    ny, nx = shape
    w = WCS(naxis=2)
    w.wcs.crpix = [(nx + 1) / 2.0, (ny + 1) / 2.0]
    w.wcs.crval = [ra, dec]
    s = pixel_scale / 3600.0
    th = np.radians(rotation_deg)
    # East to the left (parity of a sky image seen from the front), rotated by theta.
    w.wcs.cd = s * np.array([[-np.cos(th), np.sin(th)], [np.sin(th), np.cos(th)]])
    w.wcs.radesys = "ICRS"
    w.wcs.cunit = ["deg", "deg"]
    distorted = k3 != 0.0 or any(k != 0.0 for k in k2)
    w.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"] if distorted else ["RA---TAN", "DEC--TAN"]
    if distorted:
        a, b = sip_coefficients(k3, k2)
        w.sip = Sip(a, b, None, None, w.wcs.crpix)
    w.pixel_shape = (nx, ny)
    w.wcs.set()
    return w


def wcs_header(w: WCS) -> fits.Header:
    """FITS header of a WCS including SIP keywords and the image size."""
    header = w.to_header(relax=True)
    if w.pixel_shape is not None:
        header["IMAGEW"] = (w.pixel_shape[0], "image width in pixels")
        header["IMAGEH"] = (w.pixel_shape[1], "image height in pixels")
    return header
