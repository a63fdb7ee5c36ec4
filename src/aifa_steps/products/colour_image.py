"""Colour composites of stacks with Lupton et al. (2004) asinh scaling.

The three stacks (by default i -> red, r -> green, g -> blue) are first brought to one flux
scale with their zero points (``MAGZPT``), so a star's colour in the picture follows its
colour index; stacks without a zero point are scaled by their sky noise instead. astropy's
`~astropy.visualization.make_lupton_rgb` then maps the three bands together, which keeps the
hue of bright stars instead of burning them to white.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.stats import mad_std

from aifa_steps.core.formats import frame_stem
from aifa_steps.products.settings import ColourImageSettings

__all__ = [
    "ColourImageSettings",
    "colour_composite",
    "read_stack",
    "stacks_by_filter",
    "write_colour_image",
]

REFERENCE_MAG = 25.0  # common zero point the bands are scaled to


def stacks_by_filter(paths: Iterable[str | Path]) -> dict[str, str | Path]:
    """Stack files by their filter, from their names (``stack_<filter>.fits``)."""
    return {frame_stem(p).removeprefix("stack_"): p for p in paths}


def read_stack(path: str | Path) -> tuple[np.ndarray, float]:
    """The image of a stack file and its ``MAGZPT`` (NaN when missing)."""
    with fits.open(path) as hdul:
        return np.asarray(hdul[0].data, np.float32), float(hdul[0].header.get("MAGZPT", np.nan))


def colour_composite(
    bands: Mapping[str, tuple[np.ndarray, float]],
    order: Sequence[str] = ("i", "r", "g"),
    stretch_sigma: float = 40.0,
    q: float = 8.0,
) -> np.ndarray:
    """An RGB image (uint8, row 0 at the bottom as in DS9) from up to three stacks.

    Parameters
    ----------
    bands : mapping
        ``filter -> (image, zeropoint)``; images on one pixel grid, background-subtracted.
    order : sequence of str
        Filters shown as red, green and blue. A missing filter is replaced by the mean of the
        others, so one filter gives a grey image; two filters are shown as red and blue with
        their mean as green.
    stretch_sigma : float
        Linear range of the asinh scaling in units of the sky noise.
    q : float
        Asinh softening (Lupton's Q): larger values compress bright stars more.

    Returns
    -------
    numpy.ndarray
        ``(rows, columns, 3)`` uint8.

    Raises
    ------
    ValueError
        If none of the ``order`` filters is given or the images differ in shape.
    """
    from astropy.visualization import make_lupton_rgb

    present = [f for f in order if f in bands]
    if not present:
        raise ValueError(f"none of the filters {list(order)} has a stack")
    shapes = {np.shape(bands[f][0]) for f in present}
    if len(shapes) != 1:
        raise ValueError(f"stacks differ in shape: {sorted(shapes)}")
    calibrated = all(np.isfinite(bands[f][1]) for f in present)
    scaled = {}
    for f in present:
        image, zeropoint = bands[f]
        image = np.nan_to_num(np.asarray(image, np.float32), nan=0.0)
        if calibrated:
            image = image * np.float32(10.0 ** (0.4 * (REFERENCE_MAG - zeropoint)))
        else:
            image = image / np.float32(max(mad_std(image[::3, ::3]), np.finfo(float).tiny))
        scaled[f] = image
    mean = np.mean([scaled[f] for f in present], axis=0, dtype=np.float32)
    order = list(order)
    if len(order) == 1:
        order = order * 3
    elif len(order) == 2:
        order = [order[0], "", order[1]]
    channels = [scaled.get(f, mean) for f in order[:3]]
    # The sky noise from every third pixel, then the mapping a band of rows at a time: the
    # asinh mapping is per pixel, and whole full-size float64 channels took 2.6 GB.
    noise = float(np.mean([mad_std(c[::3, ::3]) for c in channels]))
    noise = noise if noise > 0 else 1.0
    rows = channels[0].shape[0]
    rgb = np.empty((*channels[0].shape, 3), np.uint8)
    for start in range(0, rows, 256):
        band = slice(start, min(start + 256, rows))
        rgb[band] = make_lupton_rgb(
            *(c[band] for c in channels), minimum=-noise, stretch=stretch_sigma * noise, Q=q
        )
    return rgb[::-1]  # FITS row 0 is the bottom of the picture


def write_colour_image(
    paths: Mapping[str, str | Path],
    output: str | Path,
    order: Sequence[str] = ("i", "r", "g"),
    settings: ColourImageSettings | None = None,
) -> np.ndarray:
    """Write the colour composite of stack files as a PNG; return it.

    Parameters
    ----------
    paths : mapping
        ``filter -> stack file`` (see `stacks_by_filter`).
    output : path
        The picture.
    order : sequence of str
        Filters shown as red, green and blue (see `colour_composite`).
    settings : ColourImageSettings, optional
        The scaling.
    """
    from aifa_steps.products.plots import save_rgb_image

    settings = settings or ColourImageSettings()
    rgb = colour_composite(
        {f: read_stack(p) for f, p in paths.items()},
        order,
        float(settings.colour_stretch_sigma),
        float(settings.colour_q),
    )
    save_rgb_image(rgb, output)
    return rgb
