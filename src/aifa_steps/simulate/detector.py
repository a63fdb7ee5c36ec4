"""The camera: bias pattern, dark current with hot pixels, flat fields, noise and read-out.

Everything here is in ADU except where a name says e- (electrons). The static planes
(true bias, dark rate, flats, hot pixels) are drawn once per night; each exposure then adds
photon noise, dark current, cosmic rays, read noise, digitisation and saturation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .presets import FULL_SHAPE, Instrument

__all__ = ["DetectorTruth", "make_detector", "photon_noise", "read_out", "add_cosmic_rays"]


@dataclass
class DetectorTruth:
    """The true static properties of the detector, cut to the frame shape.

    Attributes
    ----------
    bias : numpy.ndarray
        Bias level with fixed pattern (ADU), float32.
    dark_rate : numpy.ndarray
        Dark current in ADU per second, float32.
    hot_pixels : numpy.ndarray
        True where a pixel is hot (uint8 1/0).
    flats : dict of numpy.ndarray
        Per filter: relative response, median 1, float32.
    """

    bias: np.ndarray
    dark_rate: np.ndarray
    hot_pixels: np.ndarray
    flats: dict


def _full_frame_coords(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates relative to the full detector's centre for a centred cut-out."""
    ny, nx = shape
    yy = np.arange(ny, dtype=np.float32)[:, None] - (ny - 1) / 2.0
    xx = np.arange(nx, dtype=np.float32)[None, :] - (nx - 1) / 2.0
    return xx, yy


def _dust_donut(xx, yy, x0, y0, radius, width, depth):
    r = np.hypot(xx - x0, yy - y0)
    ring = np.exp(-0.5 * ((r - radius) / width) ** 2)
    centre = 0.5 * np.exp(-0.5 * (r / (0.6 * radius)) ** 2)
    return 1.0 - depth * (ring + centre) / 1.5


def _flat_field(rng, shape, inst: Instrument, common_dust, prnu):
    xx, yy = _full_frame_coords(shape)
    corner = 0.5 * np.hypot(*FULL_SHAPE)
    vignetting = 1.0 - inst.vignetting_corner * rng.uniform(0.9, 1.1) * (
        (xx**2 + yy**2) / corner**2
    )
    flat = vignetting.astype(np.float32) * prnu
    ny, nx = shape
    n_own = max(1, int(rng.poisson(2e-6 * nx * ny)))
    own = [
        (
            rng.uniform(-nx / 2, nx / 2),
            rng.uniform(-ny / 2, ny / 2),
            rng.uniform(12, 30),
            rng.uniform(2.5, 5),
            rng.uniform(0.02, 0.05),
        )
        for _ in range(n_own)
    ]
    for x0, y0, radius, width, depth in list(common_dust) + own:
        half = int(radius + 4 * width)
        xs = slice(max(0, int(x0 + (nx - 1) / 2) - half), min(nx, int(x0 + (nx - 1) / 2) + half))
        ys = slice(max(0, int(y0 + (ny - 1) / 2) - half), min(ny, int(y0 + (ny - 1) / 2) + half))
        if xs.start >= xs.stop or ys.start >= ys.stop:
            continue
        flat[ys, xs] *= _dust_donut(xx[:, xs], yy[ys, :], x0, y0, radius, width, depth)
    return flat


def make_detector(
    rng: np.random.Generator, shape: tuple[int, int], inst: Instrument, filters: tuple[str, ...]
) -> DetectorTruth:
    """Draw the static detector properties for one night.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random numbers.
    shape : tuple of int
        ``(ny, nx)`` of the frames.
    inst : Instrument
        Camera parameters.
    filters : tuple of str
        Filters that get a flat field.
    """
    ny, nx = shape
    xx, yy = _full_frame_coords(shape)
    bias = (
        inst.bias_level
        + rng.normal(0.0, 1.5, (1, nx))  # column pattern
        + rng.normal(0.0, 0.5, (ny, 1))  # row pattern
        + rng.normal(0.0, 1.0, (ny, nx))  # pixel fixed pattern
        + 3.0 * xx / FULL_SHAPE[1]  # gentle gradient
    ).astype(np.float32)

    # Dark current: uniform, a little amplifier glow in one corner, and hot pixels.
    glow_x, glow_y = FULL_SHAPE[1] / 2, -FULL_SHAPE[0] / 2
    glow = 1.0 + 2.0 * np.exp(-np.hypot(xx - glow_x, yy - glow_y) / 300.0)
    dark_rate = (inst.dark_current / inst.gain * glow).astype(np.float32)
    n_hot = max(3, int(rng.poisson(inst.hot_pixel_fraction * nx * ny)))
    hot_idx = rng.choice(nx * ny, size=n_hot, replace=False)
    dark_rate.flat[hot_idx] += (10.0 ** rng.uniform(0.0, 2.0, n_hot)).astype(np.float32)
    hot = np.zeros(shape, dtype=np.uint8)
    hot.flat[hot_idx] = 1

    # Pixel response non-uniformity is common to all filters; dust partly so.
    prnu = rng.normal(1.0, 0.006, shape).astype(np.float32)
    n_dead = max(2, int(rng.poisson(inst.dead_pixel_fraction * nx * ny)))
    dead_idx = rng.choice(nx * ny, size=n_dead, replace=False)
    prnu.flat[dead_idx] *= rng.uniform(0.0, 0.4, n_dead).astype(np.float32)
    n_common = max(2, int(rng.poisson(3e-6 * nx * ny)))
    common_dust = [
        (
            rng.uniform(-nx / 2.2, nx / 2.2),
            rng.uniform(-ny / 2.2, ny / 2.2),
            rng.uniform(15, 40),
            rng.uniform(3, 6),
            rng.uniform(0.02, 0.06),
        )
        for _ in range(n_common)
    ]
    flats = {}
    for f in filters:
        flat = _flat_field(rng, shape, inst, common_dust, prnu)
        flats[f] = (flat / np.median(flat)).astype(np.float32)
    return DetectorTruth(bias=bias, dark_rate=dark_rate, hot_pixels=hot, flats=flats)


def add_cosmic_rays(
    rng: np.random.Generator, electrons: np.ndarray, exptime: float, inst: Instrument
) -> int:
    """Add cosmic-ray tracks (in electrons) to an image in place; return how many."""
    ny, nx = electrons.shape
    area_cm2 = nx * ny * (inst.pixel_size_um * 1e-4) ** 2
    n = int(rng.poisson(inst.cosmic_ray_rate * area_cm2 * max(exptime, 0.0) / 60.0))
    for _ in range(n):
        length = rng.integers(1, 9)
        angle = rng.uniform(0.0, np.pi)
        x0, y0 = rng.uniform(0, nx), rng.uniform(0, ny)
        t = np.arange(length)
        xs = np.clip((x0 + t * np.cos(angle)).astype(int), 0, nx - 1)
        ys = np.clip((y0 + t * np.sin(angle)).astype(int), 0, ny - 1)
        electrons[ys, xs] += rng.uniform(800.0, 6000.0, length).astype(electrons.dtype)
    return n


def photon_noise(rng: np.random.Generator, expected: np.ndarray, exact_below: float = 200.0):
    """Poisson-distributed counts for an image of expected counts, as float32.

    Pixels expecting fewer than ``exact_below`` counts are drawn from the Poisson distribution;
    brighter ones from its normal approximation (same mean and variance, skewness below
    0.07), which is several times faster for sky-dominated frames.
    """
    expected = np.asarray(expected, dtype=np.float32)
    out = expected + np.sqrt(expected) * rng.standard_normal(expected.shape, dtype=np.float32)
    low = expected < exact_below
    if low.any():
        out[low] = rng.poisson(expected[low]).astype(np.float32)
    return out


def read_out(
    rng: np.random.Generator,
    light_adu: np.ndarray,
    exptime: float,
    det: DetectorTruth,
    inst: Instrument,
    cosmic_rays: bool = True,
) -> np.ndarray:
    """Turn an expected light image into a raw frame as the camera writes it.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random numbers.
    light_adu : numpy.ndarray
        Expected light in ADU already multiplied by the flat field (sky, stars, flat lamp).
    exptime : float
        Exposure time in seconds (dark current and cosmic rays scale with it).
    det : DetectorTruth
        Static detector planes.
    inst : Instrument
        Gain, read noise and saturation.
    cosmic_rays : bool
        Whether to add cosmic-ray hits.

    Returns
    -------
    numpy.ndarray
        uint16 raw frame, clipped at the saturation level.
    """
    expected_e = (np.clip(light_adu, 0.0, None) + det.dark_rate * exptime) * np.float32(inst.gain)
    electrons = photon_noise(rng, expected_e)
    if cosmic_rays:
        add_cosmic_rays(rng, electrons, exptime, inst)
    adu = electrons / inst.gain + det.bias
    adu += np.float32(inst.read_noise / inst.gain) * rng.standard_normal(
        adu.shape, dtype=np.float32
    )
    return np.clip(np.rint(adu), 0, inst.saturation).astype(np.uint16)
