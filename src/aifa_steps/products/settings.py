"""Settings of the science products, read from their config sections (`StepSettings`).

- `CmdSettings` (``targets.<OBJECT>``): a cluster's catalogue and colour-magnitude diagram
  (`aifa_steps.products.cmd`).
- `TransitSettings` (``targets.<OBJECT>``): a transit target's light curve and fit
  (`aifa_steps.products.lightcurve`).
- `StackParameters` (``stacks``) and `BackgroundSettings` (``photometry``): the stacks
  (`aifa_steps.products.stacking`).
- `ColourImageSettings` (``stacks``): the colour image (`aifa_steps.products.colour_image`).

Every Snakemake process imports this module while it parses the workflow (on a cluster, every
job does so twice): it imports no more than the standard library
(``tests/test_parse_imports.py``). The modules that do the work import astropy, scipy and
reproject, and re-export the class they use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aifa_steps.core.config import StepSettings

if TYPE_CHECKING:
    from aifa_steps.products.ensemble import ComparisonParameters

__all__ = [
    "BackgroundSettings",
    "CmdSettings",
    "ColourImageSettings",
    "StackParameters",
    "TransitSettings",
]


@dataclass(frozen=True)
class CmdSettings(StepSettings):
    """What the cluster step reads of its target's section, ``targets.<OBJECT>``.

    Parameters
    ----------
    ra, dec : float
        The cluster's centre (deg).
    radius_arcmin : float, optional
        Cluster radius in the diagram; default the median distance of the stars.
    """

    #: Every target has its own section (``targets`` maps OBJECT names to them).
    section = "targets.*"

    ra: float
    dec: float
    radius_arcmin: float | None = None


@dataclass(frozen=True)
class ColourImageSettings(StepSettings):
    """The colour image's scaling (keys of the ``stacks`` section).

    Parameters
    ----------
    colour_stretch_sigma : float
        Linear range of the asinh scaling in units of the sky noise.
    colour_q : float
        Asinh softening (Lupton's Q): larger values compress bright stars more.
    """

    section = "stacks"

    colour_stretch_sigma: float = 40.0
    colour_q: float = 8.0


@dataclass(frozen=True)
class TransitSettings(StepSettings):
    """What the transit step reads of its target's section, ``targets.<OBJECT>``.

    Parameters
    ----------
    ra, dec : float
        The transit host (deg).
    ephemeris : mapping, optional
        ``t0_bjd_tdb`` and ``period_days`` (required for the fit, see `checked_ephemeris`),
        ``duration_hours`` (starting value; 2 h when missing).
    comparison_stars, exclude_stars : tuple of int
        Reference ids always used / never used as comparison stars.
    limb_darkening : tuple of float
        Quadratic limb-darkening coefficients of the band (kept fixed).
    depth_guess : float
        Starting transit depth.
    detrend : tuple of str
        Baseline terms fitted with the transit (`aifa_steps.products.detrending.DETREND_TERMS`).
    """

    #: Every target has its own section (``targets`` maps OBJECT names to them).
    section = "targets.*"

    ra: float
    dec: float
    ephemeris: Mapping[str, float] | None = None
    comparison_stars: tuple[int, ...] = ()
    exclude_stars: tuple[int, ...] = ()
    limb_darkening: tuple[float, float] = (0.45, 0.2)
    depth_guess: float = 0.01
    detrend: tuple[str, ...] = ("airmass",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ra", float(self.ra))
        object.__setattr__(self, "dec", float(self.dec))
        object.__setattr__(self, "comparison_stars", tuple(self.comparison_stars))
        object.__setattr__(self, "exclude_stars", tuple(self.exclude_stars))
        object.__setattr__(self, "limb_darkening", tuple(float(c) for c in self.limb_darkening))
        object.__setattr__(self, "depth_guess", float(self.depth_guess))
        object.__setattr__(self, "detrend", tuple(self.detrend))

    @property
    def comparisons(self) -> ComparisonParameters:
        """The comparison ensemble's settings, with the pinned and excluded stars."""
        from aifa_steps.products.ensemble import ComparisonParameters

        return ComparisonParameters(
            pinned=list(self.comparison_stars), excluded=list(self.exclude_stars)
        )

    def checked_ephemeris(self, name: str) -> dict:
        """The ephemeris, checked for what the transit fit needs.

        Parameters
        ----------
        name : str
            The target's name in the configuration (for the message).

        Raises
        ------
        ValueError
            When ``t0_bjd_tdb`` or ``period_days`` is missing.
        """
        ephemeris = dict(self.ephemeris or {})
        if "t0_bjd_tdb" not in ephemeris or "period_days" not in ephemeris:
            raise ValueError(
                f"targets.{name}.ephemeris needs t0_bjd_tdb and period_days for the transit fit"
            )
        return ephemeris


@dataclass(frozen=True)
class StackParameters(StepSettings):
    """How frames are combined into a stack (keys of the ``stacks`` section).

    Attributes
    ----------
    sigma : float
        Clipping threshold in units of the expected scatter (see
        `aifa_steps.products.stacking.clipped_keep`).
    amplitude_fraction : float
        Fraction of the signal allowed as scatter between frames (seeing differences).
    max_iterations : int
        Clipping iterations.
    max_frames : int
        Stack at most this many frames per target and filter, those with the best seeing.
    interpolation : str
        ``nearest-neighbor`` or ``bilinear`` (fast resampling,
        `aifa_steps.products.resample.reproject_frame`), or ``biquadratic`` or ``bicubic``
        (``reproject_interp``).
    memory_limit_mb : float
        Working memory of the clipping (the reprojected frames come on top).
    frames_in_memory_mb : float
        The reprojected frames are held in memory up to this size; a larger stack writes them
        to an unnamed scratch file in the stack's folder and clips them a band of rows at a
        time from there, so that its memory stays near ``memory_limit_mb`` plus one frame.
    """

    section = "stacks"

    sigma: float = 3.0
    amplitude_fraction: float = 0.3
    max_iterations: int = 3
    max_frames: int = 30
    interpolation: str = "bilinear"
    memory_limit_mb: float = 512.0
    frames_in_memory_mb: float = 1024.0

    def __post_init__(self) -> None:
        # YAML gives 3 for 3.0: the types of the fields, as the HISTORY of a stack records them.
        for name, kind in (
            ("sigma", float),
            ("amplitude_fraction", float),
            ("max_iterations", int),
            ("max_frames", int),
            ("interpolation", str),
            ("memory_limit_mb", float),
            ("frames_in_memory_mb", float),
        ):
            object.__setattr__(self, name, kind(getattr(self, name)))


@dataclass(frozen=True)
class BackgroundSettings(StepSettings):
    """The background mesh subtracted from every frame, as for the photometry.

    Attributes
    ----------
    background_box : int
        Box size of the background mesh (pixels).
    background_filter : int
        Median filter size of the mesh (boxes).
    """

    section = "photometry"

    background_box: int = 300
    background_filter: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "background_box", int(self.background_box))
        object.__setattr__(self, "background_filter", int(self.background_filter))
