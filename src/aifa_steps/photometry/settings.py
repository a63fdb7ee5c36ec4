"""Settings of the photometry steps, read from their config sections (`StepSettings`).

- `PhotometryParameters` (``photometry``): apertures, background, curve of growth.
- `DetectionParameters` (``photometry.detection``): detection on the reference frame.
- `PsfParameters` (``photometry.psf``): PSF photometry of crowded fields.
- `ZeropointParameters` (``zeropoints``): zero points and the catalogue aperture
  (`catalogue_aperture_key`).
- `RefcatSettings` (``reference_catalogue``): where the reference catalogue comes from.

The schema (``workflow/schemas/config.schema.yaml``) owns the defaults; the ones here agree with
it (``tests/test_config.py``). Every Snakemake process imports this module while it parses the
workflow: it imports no more than the standard library (``tests/test_parse_imports.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aifa_steps.core.config import StepSettings
from aifa_steps.core.formats import AUTO_APERTURE_FWHM, aperture_keys, fwhm_keys

__all__ = [
    "PhotometryParameters",
    "DetectionParameters",
    "PsfParameters",
    "PHOTOMETRY_METHODS",
    "photometry_method",
    "ZeropointParameters",
    "RefcatSettings",
    "aperture_setting",
    "catalogue_aperture_key",
    "ARCSEC_APERTURES",
]

#: Apertures (arcsec) of `aifa_steps.photometry.frame.measure_frame` called without settings:
#: fixed radii need no target apertures in the reference table.
ARCSEC_APERTURES = (4.0, 6.0, 8.0, 10.0)


@dataclass(frozen=True)
class PhotometryParameters(StepSettings):
    """Settings of the per-frame photometry (the ``photometry`` section of the config).

    Parameters
    ----------
    apertures : ``"auto"`` or list of float
        ``"auto"``: radii of ``aperture_fwhm`` times the target's FWHM
        (`aifa_steps.photometry.aperture_plans.aperture_plan`); a list: radii in arcsec.
        After construction it holds what `aperture_setting` makes of it and
        ``apertures_arcsec``.
    aperture_fwhm : list of float
        Radii of automatic apertures in units of the target's FWHM.
    sky_annulus_fwhm : list of float, optional
        Inner and outer radius of a local sky annulus in units of the target's FWHM (see
        `aifa_steps.photometry.apertures.forced_photometry`); None: the frame's background
        mesh alone.
    apertures_arcsec : list of float, optional
        Radii of a configuration of an older version (used with ``apertures: auto`` only).
    background_box : int
        Box size (pixels) of the background mesh.
    background_filter : int
        Median filter size (boxes) of the background mesh.
    growth_radius_fwhm : float
        Outer radius of the measured curve of growth in units of the seeing FWHM.
    max_growth_stars : int
        Brightest suitable stars used for the curve of growth and the seeing.
    min_growth_snr : float
        Minimum signal-to-noise ratio (smallest aperture) of those stars.
    fit_fwhm : bool
        Fit a circular 2-D Gaussian to every unflagged star (``fwhm_arcsec`` column; slow).

    Notes
    -----
    The detector's saturation level is not a key of this section: it is an argument of
    `aifa_steps.photometry.frame.measure_frame`.
    """

    section = "photometry"

    apertures: str | list[float] = "auto"
    aperture_fwhm: list[float] = field(default_factory=lambda: list(AUTO_APERTURE_FWHM))
    sky_annulus_fwhm: list[float] | None = None
    apertures_arcsec: list[float] | None = None
    background_box: int = 300
    background_filter: int = 3
    growth_radius_fwhm: float = 3.0
    max_growth_stars: int = 20
    min_growth_snr: float = 50.0
    fit_fwhm: bool = False

    def __post_init__(self) -> None:
        resolved = aperture_setting(
            {"apertures": self.apertures, "apertures_arcsec": self.apertures_arcsec}
        )
        object.__setattr__(self, "apertures", resolved)

    @property
    def auto(self) -> bool:
        """True when the apertures follow the seeing (``apertures: auto``)."""
        return isinstance(self.apertures, str)


@dataclass(frozen=True)
class DetectionParameters(StepSettings):
    """Settings of the reference detection (the ``photometry.detection`` section of the config).

    Parameters
    ----------
    threshold_sigma : float
        Detection threshold in units of the background RMS.
    n_pixels : int
        Minimum number of connected pixels above the threshold.
    kernel_fwhm : float
        FWHM (pixels) of the Gaussian smoothing kernel.
    kernel_size : int
        Size of the kernel (odd, pixels).
    deblend : bool
        Split blended sources (photutils' multi-threshold deblending).
    min_flux : float
        Keep only sources whose segment flux exceeds this (ADU); 0 keeps all.
    max_sources : int
        Keep at most the brightest this many sources (0: all).
    """

    section = "photometry.detection"

    threshold_sigma: float = 3.0
    n_pixels: int = 4
    kernel_fwhm: float = 4.0
    kernel_size: int = 21
    deblend: bool = True
    min_flux: float = 0.0
    max_sources: int = 0

    def __post_init__(self) -> None:
        # Values from YAML may be ints where floats are meant (and the header records them).
        for name, kind in (
            ("threshold_sigma", float),
            ("n_pixels", int),
            ("kernel_fwhm", float),
            ("kernel_size", int),
            ("deblend", bool),
            ("min_flux", float),
            ("max_sources", int),
        ):
            object.__setattr__(self, name, kind(getattr(self, name)))

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None, **extra: Any) -> DetectionParameters:
        """Parameters from the ``photometry.detection`` mapping (None: the defaults)."""
        return super().from_config(section or {}, **extra)

    def as_header(self) -> dict[str, tuple]:
        """Header cards recording the parameters (provenance)."""
        return {
            "DETSIG": (self.threshold_sigma, "detection threshold [background RMS]"),
            "DETNPIX": (self.n_pixels, "minimum connected pixels"),
            "DETKFWHM": (self.kernel_fwhm, "Gaussian kernel FWHM [px]"),
            "DETKSIZE": (self.kernel_size, "kernel size [px]"),
            "DEBLEND": (self.deblend, "deblended"),
            "DETMINF": (self.min_flux, "minimum segment flux [ADU]"),
        }


#: Values of ``photometry.method`` (and of a target's ``photometry_method``).
PHOTOMETRY_METHODS = ("psf", "aperture")


def photometry_method(photometry_section: Mapping[str, Any], target: Mapping[str, Any]) -> str:
    """How a target's catalogue magnitudes are measured: ``"psf"`` or ``"aperture"``.

    A target's own ``photometry_method`` decides; otherwise ``photometry.method`` does for
    cluster targets, whose catalogue and CMD need the crowded stars. Transit targets (their
    light curves are differential aperture photometry), field targets and objects without a
    section get apertures unless their section asks for PSF fits.

    Raises
    ------
    ValueError
        For a value other than ``psf`` or ``aperture``.
    """
    value = target.get("photometry_method")
    if value is None:
        value = "aperture"
        if target.get("kind") == "cluster":
            value = photometry_section.get("method", "psf")
    if value not in PHOTOMETRY_METHODS:
        raise ValueError(f"photometry method {value!r}: use one of {list(PHOTOMETRY_METHODS)}")
    return str(value)


@dataclass(frozen=True)
class PsfParameters(StepSettings):
    """Settings of the PSF photometry (the ``photometry.psf`` section of the config).

    Parameters
    ----------
    oversampling : int
        Oversampling of the empirical PSF (ePSF) relative to the pixels.
    min_stars : int
        With fewer bright isolated stars than this, a circular Moffat profile fitted to
        them replaces the ePSF.
    max_stars : int
        Brightest suitable stars that build the ePSF.
    fit_radius_fwhm : float
        Half size of the fitted box around each star in units of the FWHM.
    group_radius_fwhm : float
        Stars closer than this (in FWHM) are fitted together, with their whole group.
    max_shift_pixels : float
        How far a fitted position may move from the reference position (pixels).
    residual_sources : bool
        Look for sources missing from the reference list in the residual image (close
        companions that the detection did not split) and fit them with their neighbours.
    residual_threshold_sigma : float
        Detection threshold of those sources in units of the local noise.
    poor_fit : float
        A fit whose residual (sum of absolute residuals over the fitted flux, photutils'
        ``qfit``) exceeds this plus three times its noise is marked poor.
    """

    section = "photometry.psf"

    oversampling: int = 2
    min_stars: int = 15
    max_stars: int = 100
    fit_radius_fwhm: float = 1.5
    group_radius_fwhm: float = 3.0
    max_shift_pixels: float = 1.0
    residual_sources: bool = True
    residual_threshold_sigma: float = 5.0
    poor_fit: float = 0.1

    def __post_init__(self) -> None:
        for name, kind in (
            ("oversampling", int),
            ("min_stars", int),
            ("max_stars", int),
            ("fit_radius_fwhm", float),
            ("group_radius_fwhm", float),
            ("max_shift_pixels", float),
            ("residual_sources", bool),
            ("residual_threshold_sigma", float),
            ("poor_fit", float),
        ):
            object.__setattr__(self, name, kind(getattr(self, name)))

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None, **extra: Any) -> PsfParameters:
        """Parameters from the ``photometry.psf`` mapping (None: the defaults)."""
        return super().from_config(section or {}, **extra)


@dataclass(frozen=True)
class ZeropointParameters(StepSettings):
    """Settings of the zero points (the ``zeropoints`` section of the config).

    Parameters
    ----------
    min_snr : float
        Reference stars need at least this signal-to-noise ratio in the aperture.
    max_catalogue_error : float
        ... and a catalogue error below this (mag).
    sigma_clip : float
        Rejection threshold of the robust mean.
    min_stars : int
        Fewer stars give no zero point.
    colour : tuple of str
        The two bands of the colour (e.g. ``(g, i)``) for the colour term.
    colour_term : bool
        Fit and apply a colour term per frame (``zeropoint`` then refers to colour 0).
    catalogue_aperture_arcsec : float or ``"auto"``
        Aperture of the night's mean magnitudes (``magnitudes.ecsv``), see
        `catalogue_aperture_key`.
    catalogue_aperture_fwhm : float
        With automatic apertures: the catalogue aperture's radius in units of the FWHM.
    """

    section = "zeropoints"

    min_snr: float = 50.0
    max_catalogue_error: float = 0.05
    sigma_clip: float = 3.0
    min_stars: int = 5
    colour: tuple[str, str] = ("g", "i")
    colour_term: bool = False
    catalogue_aperture_arcsec: float | str = "auto"
    catalogue_aperture_fwhm: float = 1.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "colour", tuple(self.colour))


def aperture_setting(section: Mapping[str, Any]) -> str | list[float]:
    """The ``photometry`` section's apertures: ``"auto"`` or radii in arcsec.

    ``apertures`` (``auto`` or a list) decides; a configuration of an older version with only
    ``apertures_arcsec`` keeps those radii.
    """
    value = section.get("apertures", "auto")
    if isinstance(value, str):
        if value != "auto":
            raise ValueError(f"photometry.apertures is {value!r}: use auto or a list of radii")
        if section.get("apertures_arcsec"):
            return [float(r) for r in section["apertures_arcsec"]]
        return "auto"
    return [float(r) for r in value]


def catalogue_aperture_key(
    photometry_section: Mapping[str, Any], zeropoints_section: Mapping[str, Any]
) -> str:
    """Suffix of the aperture of the night's mean magnitudes, catalogue and extinction.

    ``zeropoints.catalogue_aperture_arcsec`` names an explicit aperture (arcsec); ``auto``
    takes, with explicit apertures, the smallest, and with automatic apertures the one of
    ``zeropoints.catalogue_aperture_fwhm`` FWHM.

    Raises
    ------
    ValueError
        When the setting does not name one of the apertures (see
        `aifa_steps.summary.checks.config_problems`, which reports it before the run).
    """
    apertures = aperture_setting(photometry_section)
    value = zeropoints_section.get("catalogue_aperture_arcsec", "auto")
    if isinstance(apertures, str):
        multiples = [float(m) for m in photometry_section.get("aperture_fwhm", AUTO_APERTURE_FWHM)]
        if value != "auto":
            raise ValueError(
                f"zeropoints.catalogue_aperture_arcsec is {value:g}, but photometry.apertures "
                "is auto (radii in units of the seeing FWHM): set "
                "zeropoints.catalogue_aperture_arcsec: auto and choose "
                f"zeropoints.catalogue_aperture_fwhm among photometry.aperture_fwhm "
                f"{multiples}, or give photometry.apertures as a list of radii in arcsec"
            )
        multiple = float(zeropoints_section.get("catalogue_aperture_fwhm", 1.5))
        if not any(abs(multiple - m) < 1e-9 for m in multiples):
            raise ValueError(
                f"zeropoints.catalogue_aperture_fwhm is {multiple:g}, which is not one of "
                f"photometry.aperture_fwhm {multiples}: add it there or choose one of them"
            )
        return fwhm_keys([multiple])[0]
    if value == "auto":
        return aperture_keys([min(apertures)])[0]
    if not any(abs(float(value) - r) < 1e-9 for r in apertures):
        raise ValueError(
            f"zeropoints.catalogue_aperture_arcsec is {float(value):g}, which is not one of "
            f"photometry.apertures {[float(f'{r:g}') for r in apertures]}: add it there or "
            "choose one of them"
        )
    return aperture_keys([float(value)])[0]


@dataclass(frozen=True)
class RefcatSettings(StepSettings):
    """Where the reference catalogue comes from (the ``reference_catalogue`` section).

    Parameters
    ----------
    source : ``"vizier"`` or ``"file"``
        Query ATLAS-RefCat2 at VizieR (falling back to ``path``) or read ``path``.
    path : str, optional
        A local catalogue (any table astropy reads).
    columns : dict
        Map from RefCat2 column name to the local file's column name.
    radius_deg : float
        Radius of the extract around each target.
    cache_dir : str, optional
        Folder of the VizieR extracts (the workflow's default: ``refcat/cache``).
    """

    section = "reference_catalogue"

    source: str = "vizier"
    path: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    radius_deg: float = 0.5
    cache_dir: str | None = None

    def cache_file(self, target: str, default_dir: str | Path) -> Path:
        """The cache file of a target's VizieR extract (in ``cache_dir`` or ``default_dir``)."""
        return Path(self.cache_dir or default_dir) / f"{target}_{self.radius_deg:g}deg.ecsv"
