"""What the raw headers of a night say: keywords, values and numbers, for drafting its config.

Every raw file's header is read (nothing else; raw files are never modified), and the inventory
is built with the default configuration. `aifa_steps.init` turns the survey into a draft
configuration.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from aifa_steps.inventory.headers import (
    DEFAULT_KEYWORDS,
    binning,
    celestial_wcs,
    first_keyword,
    header_float,
    observation_time,
    parse_degrees,
)
from aifa_steps.inventory.rawio import read_raw_header
from aifa_steps.inventory.table import build_inventory, find_raw_files

__all__ = ["SUMMARY_MEANINGS", "NightSurvey", "survey_night", "finite_median"]

#: Meanings whose keywords the draft configuration lists (keyword found, number of files).
SUMMARY_MEANINGS = (
    "imagetyp",
    "filter",
    "exptime",
    "object",
    "date_obs",
    "time_obs",
    "mjd_obs",
    "ra",
    "dec",
    "airmass",
    "xbinning",
    "ccdsum",
    "gain",
    "read_noise",
    "saturation",
)


@dataclass
class NightSurvey:
    """What the headers of a night say, collected for drafting its configuration."""

    raw_dir: Path
    n_files: int = 0
    keywords: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    values: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    numbers: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    pixel_scales: list[tuple[float, str]] = field(default_factory=list)
    sections: Counter = field(default_factory=Counter)
    time_sources: Counter = field(default_factory=Counter)
    zone_suffix: int = 0
    header_wcs: int = 0
    saturation_guess: float | None = None
    inventory: object = None


def finite_median(values: Sequence[float | None]) -> float | None:
    """Median of the finite values, or None when there is none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.median(finite)) if finite else None


def _wcs_scale(header: fits.Header) -> float | None:
    """Pixel scale (arcsec) of the celestial WCS a raw header carries, or None."""
    wcs = celestial_wcs(header)
    if wcs is None:
        return None
    value = float(np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix)))) * 3600.0
    return value if 0.01 < value < 100 else None


def survey_night(raw_dir: str | Path) -> NightSurvey:
    """Read every raw header below ``raw_dir`` and collect what a configuration needs.

    Parameters
    ----------
    raw_dir : str or Path
        The night folder.

    Returns
    -------
    NightSurvey
    """
    survey = NightSurvey(Path(raw_dir))
    files = find_raw_files(raw_dir)
    survey.n_files = len(files)
    survey.inventory = build_inventory(raw_dir, {}, raise_fatal=False)
    for path in files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", AstropyWarning)
                header, _ = read_raw_header(path)
        except Exception:  # noqa: BLE001 - the inventory lists unreadable files
            continue
        for meaning in SUMMARY_MEANINGS:
            key, value = first_keyword(header, DEFAULT_KEYWORDS[meaning])
            if key is not None:
                survey.keywords[meaning][key] += 1
                if meaning in ("imagetyp", "filter"):
                    survey.values[meaning][str(value).strip()] += 1
        for meaning in ("gain", "read_noise", "saturation", "elevation"):
            number = header_float(header, meaning)
            if number is not None:
                survey.numbers[meaning].append(number)
        for meaning in ("latitude", "longitude"):
            number = parse_degrees(first_keyword(header, DEFAULT_KEYWORDS[meaning])[1])
            if number is not None:
                survey.numbers[meaning].append(number)
        for meaning in ("telescope", "instrument"):
            _, value = first_keyword(header, DEFAULT_KEYWORDS[meaning])
            if value is not None:
                survey.values[meaning][str(value).strip()] += 1
        try:
            _, source = observation_time(header)
            survey.time_sources[source] += 1
        except ValueError:
            pass
        date = str(header.get("DATE-OBS", ""))
        if "T" in date and (date.endswith("Z") or date[-5:-4] in "+-" or date[-6:-5] in "+-"):
            survey.zone_suffix += 1
        for key in ("BIASSEC", "TRIMSEC", "DATASEC"):
            if isinstance(header.get(key), str):
                survey.sections[f"{key} = {header[key].strip()}"] += 1
        scale = _wcs_scale(header)
        if scale is not None:
            survey.header_wcs += 1
        if scale is not None:
            survey.pixel_scales.append((scale, "the headers' WCS"))
        else:
            bx, _ = binning(header)
            size, focal = header_float(header, "pixel_size"), header_float(header, "focal_length")
            if size and focal:
                # NINA and MaxIm write XPIXSZ for the binned pixel.
                survey.pixel_scales.append((206.265 * size / focal, "XPIXSZ / FOCALLEN"))
            else:
                value = header_float(header, "pixel_scale")
                if value:
                    survey.pixel_scales.append((value, "a pixel-scale keyword"))
        if survey.saturation_guess is None and header.get("BITPIX") in (8, 16, 32):
            bits = int(header["BITPIX"])
            if bits == 16 and float(header.get("BZERO", 0)) == 32768:
                survey.saturation_guess = 65535.0
            elif bits == 16:
                survey.saturation_guess = 32767.0
    return survey
