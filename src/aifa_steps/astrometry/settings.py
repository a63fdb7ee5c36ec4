"""Settings of the astrometry steps: the keys of the config section ``astrometry`` each one reads.

One frozen dataclass per rule of ``workflow/rules/astrometry.smk`` (`aifa_steps.core.config`);
the schema ``workflow/schemas/config.schema.yaml`` owns the defaults. The pixel scale comes
from the section ``instrument`` and is passed to the functions separately. Every Snakemake
process imports this module while it parses the workflow: it imports no more than the standard
library (``tests/test_parse_imports.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aifa_steps.core.config import StepSettings

__all__ = ["IndexSettings", "SolveSettings", "ChainSettings", "FrameSettings", "rms_limit_arcsec"]


def rms_limit_arcsec(pixel_scale: float, max_rms_arcsec: float, max_rms_pixels: float) -> float:
    """The largest accepted RMS residual (arcsec).

    ``max_rms_arcsec``, or ``max_rms_pixels`` pixels when that is larger: one configuration
    serves fine (0.6"/px) and coarse (5"/px) pixel scales.
    """
    return max(float(max_rms_arcsec or 0.0), float(max_rms_pixels or 0.0) * float(pixel_scale))


@dataclass(frozen=True)
class IndexSettings(StepSettings):
    """Index files and solver configurations (rule ``astrometry_index``)."""

    section = "astrometry"
    #: Build index files from the reference catalogue.
    build_index: bool = True
    #: CPU seconds per ``solve-field`` pass (written to the solver configurations).
    cpulimit: float = 60
    #: Folders of existing index files.
    index_dirs: tuple[str, ...] = field(default_factory=tuple)
    #: Catalogue magnitude that orders the stars of the index files.
    index_mag_column: str = "rmag"


@dataclass(frozen=True)
class SolveSettings(StepSettings):
    """The two ``solve-field`` passes (rule ``solve_field``, script ``solve_field.sh``)."""

    section = "astrometry"
    #: Search radius (deg) around the header pointing.
    search_radius_deg: float = 1.0
    #: Accepted relative deviation of the pixel scale.
    scale_tolerance: float = 0.02
    #: CPU seconds per pass.
    cpulimit: float = 60
    #: SIP order that pass 2 tweaks.
    sip_order: int = 3

    def scale_range(self, pixel_scale: float) -> tuple[float, float]:
        """Lowest and highest pixel scale (arcsec) that ``solve-field`` accepts."""
        return (
            pixel_scale * (1 - self.scale_tolerance),
            pixel_scale * (1 + self.scale_tolerance),
        )


@dataclass(frozen=True)
class ChainSettings(StepSettings):
    """The hand-over of solutions along a target's frames (rule ``astrometry_chain``).

    ``solve-field`` may run again on skipped frames (`solve`); the fields are in the order in
    which the rule has always passed them.
    """

    section = "astrometry"
    #: Use the raw headers' WCS when ``solve-field`` solved none of a target's frames.
    header_wcs: bool = False
    #: CPU seconds per ``solve-field`` pass.
    cpulimit: float = 60
    #: Most skipped frames that ``solve-field`` is tried on when none of the target's solved.
    max_extra_solves: int = 3
    #: Accepted relative deviation of the pixel scale.
    scale_tolerance: float = 0.02
    #: Search radius (deg) around the header pointing.
    search_radius_deg: float = 1.0
    #: Highest SIP order (of ``solve-field``'s pass 2 and of the fits to matched sources).
    sip_order: int = 3

    @property
    def solve(self) -> SolveSettings:
        """The settings of a ``solve-field`` run on a skipped frame."""
        return SolveSettings(
            self.search_radius_deg, self.scale_tolerance, self.cpulimit, self.sip_order
        )


@dataclass(frozen=True)
class FrameSettings(StepSettings):
    """Refinement and judgement of one frame's solution (rule ``astrometry_frame``)."""

    section = "astrometry"
    #: Catalogue magnitude that selects reference stars (``<filter>mag`` when the catalogue has it).
    index_mag_column: str = "rmag"
    #: Largest accepted RMS residual (arcsec) ...
    max_rms_arcsec: float = 0.5
    #: ... or this many pixels when that is larger (0: the arcsec limit alone).
    max_rms_pixels: float = 0.5
    #: Fewest reference stars in the fit.
    min_matches: int = 10
    #: Refine ``solve-field``'s solution against the reference catalogue.
    refine: bool = True
    #: Accepted relative deviation of the pixel scale.
    scale_tolerance: float = 0.02
    #: Highest SIP order of the refinement.
    sip_order: int = 3

    def rms_limit(self, pixel_scale: float) -> float:
        """The largest accepted RMS residual (arcsec) at this pixel scale (`rms_limit_arcsec`)."""
        return rms_limit_arcsec(pixel_scale, self.max_rms_arcsec, self.max_rms_pixels)
