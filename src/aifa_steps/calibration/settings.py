"""Settings of the calibration steps (config section ``calibration``), without heavy imports.

The rule files import these classes, the master darks' names (`exptime_label`) and the
detector's ``auto`` values (`is_auto`, `GAIN_LIMITS`, `READ_NOISE_LIMITS`) when Snakemake
parses the workflow; the modules that do the work (`aifa_steps.calibration.masters`,
``flats``, ``badpixels``, ``calibrate``, ``detector``) import ccdproc, astropy and scipy, and
re-export what they use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from aifa_steps.core.config import StepSettings

if TYPE_CHECKING:
    from aifa_steps.calibration.combine import CombineResult, Preprocess
    from aifa_steps.inventory.settings import ReadoutSettings

__all__ = [
    "INSTRUMENT_KEYS",
    "BadPixelSettings",
    "CalibrationParameters",
    "CameraCheckSettings",
    "ClipParameters",
    "FlatLevels",
    "GAIN_LIMITS",
    "READ_NOISE_LIMITS",
    "exptime_label",
    "is_auto",
]

#: Keys of the ``instrument`` section that the detector values of a frame come from.
INSTRUMENT_KEYS = ("gain", "read_noise", "saturation", "bias_level")
# Header values outside these limits are not a gain in e-/ADU (NINA's GAIN is the camera's gain
# setting, e.g. 26, next to EGAIN in e-/ADU) or a read noise in e-.
GAIN_LIMITS = (0.02, 20.0)
READ_NOISE_LIMITS = (0.1, 100.0)


def is_auto(value: object) -> bool:
    """True for a configuration value ``auto`` (gain or read noise to be resolved)."""
    return isinstance(value, str) and value.strip().lower() == "auto"


def exptime_label(exptime: float) -> str:
    """Compact text for an exposure time in file names (``60`` or ``2.5``)."""
    return f"{float(exptime):g}"


@dataclass(frozen=True)
class ClipParameters(StepSettings):
    """How frames are combined: sigma-clipped mean with median centre and MAD std.

    Config section ``calibration``; the number of threads is the job's, an argument of the
    ``make_master_*`` functions.
    """

    section: ClassVar[str] = "calibration"

    sigma_clip: float = 5.0
    max_iterations: int = 5
    memory_limit_mb: float = 1024.0

    def combine(
        self,
        paths: Sequence[str | Path],
        preprocess: Preprocess | None = None,
        readout: ReadoutSettings | Mapping[str, object] | None = None,
        threads: int = 1,
    ) -> CombineResult:
        """`~aifa_steps.calibration.combine.combine_files` with these parameters."""
        from aifa_steps.calibration.combine import combine_files

        return combine_files(
            paths,
            preprocess,
            self.sigma_clip,
            self.sigma_clip,
            self.max_iterations,
            self.memory_limit_mb,
            threads=threads,
            readout=readout,
        )

    def describe(self) -> dict:
        """Parameters as recorded in headers."""
        return {
            "combine": "sigma-clipped mean (median centre, MAD std)",
            "sigma": self.sigma_clip,
            "maxiters": self.max_iterations,
        }


@dataclass(frozen=True)
class FlatLevels(StepSettings):
    """Accepted median levels of flats after bias and dark (config section ``calibration``)."""

    section: ClassVar[str] = "calibration"

    flat_min_adu: float = 5000.0
    flat_max_adu: float = 55000.0


@dataclass(frozen=True)
class BadPixelSettings(StepSettings):
    """Thresholds of the bad-pixel mask (config section ``calibration``)."""

    section: ClassVar[str] = "calibration"

    hot_pixel_sigma: float = 5.0
    low_response: float = 0.7
    high_response: float = 1.3


@dataclass(frozen=True)
class CalibrationParameters(StepSettings):
    """Options of the calibration of science frames (config section ``calibration``).

    The detector values of a frame (gain, read noise, saturation, bias level) are resolved per
    frame (`aifa_steps.calibration.detector.FrameDetector`), the overscan and trim come from
    the ``readout`` section (`aifa_steps.inventory.settings.ReadoutSettings`).
    """

    section: ClassVar[str] = "calibration"

    cosmic_rays: bool = False
    cosmic_ray_sigma: float = 4.5


@dataclass(frozen=True)
class CameraCheckSettings(StepSettings):
    """How far measured gain and read noise may differ from the configured (``calibration``)."""

    section: ClassVar[str] = "calibration"

    gain_tolerance: float = 0.15
