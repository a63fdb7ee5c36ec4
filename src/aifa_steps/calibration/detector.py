"""Gain and read noise of the night and of each frame: configured, or resolved for ``auto``.

When the configuration says ``gain: auto`` or ``read_noise: auto``, `resolve_detector` picks
per frame the raw header's value, else the night's measurement (`night_detector`): photon
transfer of flat and bias pairs (`aifa_steps.calibration.camera`), else the lights' own sky
(`aifa_steps.calibration.skytransfer`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from astropy.table import Table

from aifa_steps.calibration.settings import (
    GAIN_LIMITS,
    INSTRUMENT_KEYS,
    READ_NOISE_LIMITS,
    CameraCheckSettings,
    is_auto,
)
from aifa_steps.calibration.skytransfer import gain_from_sky

log = logging.getLogger(__name__)

__all__ = [
    "DETECTOR_COLUMNS",
    "GAIN_LIMITS",
    "READ_NOISE_LIMITS",
    "is_auto",
    "configured_value",
    "night_detector",
    "resolve_detector",
    "FrameDetector",
    "frame_detector",
    "INSTRUMENT_KEYS",
    "night_read_noise_adu",
    "CameraCheckSettings",
]


DETECTOR_COLUMNS = ("quantity", "value", "error", "unit", "source", "reason")


def configured_value(instrument: Mapping[str, object], key: str) -> float:
    """A configured gain or read noise as a number (NaN for ``auto``)."""
    value = instrument[key]
    return float("nan") if is_auto(value) else float(value)


def night_detector(
    instrument: dict, summary: Table | None = None, sky: Table | None = None
) -> Table:
    """The night's gain and read noise: configured, or measured for ``auto``.

    Parameters
    ----------
    instrument : dict
        The configuration's ``instrument`` section (``gain``, ``read_noise``: numbers or
        ``auto``).
    summary : astropy.table.Table, optional
        `characterise_camera` output (photon transfer of flat pairs, read noise of bias pairs).
    sky : astropy.table.Table, optional
        `sky_transfer` output (the lights' sky).

    Returns
    -------
    astropy.table.Table
        Rows ``gain`` and ``read_noise``: ``value``, ``error``, ``unit``, ``source``
        (``configuration``, ``photon transfer``, ``bias pairs``, ``lights' sky ...``, or
        ``none``), ``reason`` (why a value is missing). Per frame, a raw header's value
        comes first (`resolve_detector`).
    """

    def measured(quantity):
        if summary is None or not len(summary):
            return float("nan"), float("nan"), "not measured (no calibration frames read)"
        row = summary[summary["quantity"] == quantity]
        if not len(row):
            return float("nan"), float("nan"), "not measured"
        return float(row["measured"][0]), float(row["error"][0]), str(row["reason"][0])

    rows = {}
    gain_cfg, rn_cfg = instrument.get("gain"), instrument.get("read_noise")
    if not is_auto(gain_cfg):
        rows["gain"] = (float(gain_cfg), 0.0, "configuration", "")
    else:
        value, error, reason = measured("gain")
        if np.isfinite(value):
            rows["gain"] = (value, error, "photon transfer (flat pairs)", "")
    rn_adu = float(summary.meta.get("RN_ADU", np.nan)) if summary is not None else np.nan
    rn_adu_err = float(summary.meta.get("RN_ADU_ERR", np.nan)) if summary is not None else np.nan
    if not is_auto(rn_cfg):
        rows["read_noise"] = (float(rn_cfg), 0.0, "configuration", "")
    elif np.isfinite(rn_adu) and "gain" in rows:
        g = rows["gain"][0]
        rows["read_noise"] = (rn_adu * g, rn_adu_err * g, "bias pairs", "")
    sky_result = None
    if "gain" not in rows or "read_noise" not in rows:
        rn_e = rows["read_noise"][0] if "read_noise" in rows else float("nan")
        sky_result = gain_from_sky(sky if sky is not None else Table(), rn_adu, rn_e)
        if "gain" not in rows:
            if np.isfinite(sky_result["gain"]):
                rows["gain"] = (
                    sky_result["gain"],
                    sky_result["gain_err"],
                    sky_result["method"],
                    "",
                )
            else:
                reason = measured("gain")[2]
                rows["gain"] = (
                    float("nan"),
                    float("nan"),
                    "none",
                    f"{reason}; {sky_result['reason']}".strip("; "),
                )
        if "read_noise" not in rows:
            g = rows["gain"][0]
            if np.isfinite(rn_adu) and np.isfinite(g):
                rows["read_noise"] = (rn_adu * g, rn_adu_err * g, "bias pairs", "")
            elif np.isfinite(sky_result["read_noise"]):
                rows["read_noise"] = (
                    sky_result["read_noise"],
                    sky_result["read_noise_err"],
                    "lights' sky (intercept of variance against level)",
                    "",
                )
            else:
                rows["read_noise"] = (
                    float("nan"),
                    float("nan"),
                    "none",
                    f"{measured('read_noise')[2]}; not measurable from the lights' sky".strip("; "),
                )
    table = Table(
        rows=[
            (name, *rows[name][:2], unit, *rows[name][2:])
            for name, unit in (("gain", "e-/adu"), ("read_noise", "e-"))
        ],
        names=DETECTOR_COLUMNS,
        dtype=(str, float, float, str, str, str),
    )
    return table


def _plausible(value, limits) -> bool:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return False
    return bool(np.isfinite(value) and limits[0] <= value <= limits[1])


def resolve_detector(
    instrument: dict,
    header_gain: float = float("nan"),
    header_read_noise: float = float("nan"),
    night: Table | None = None,
) -> tuple[float, float, str, str]:
    """Gain and read noise of one frame, and where each comes from.

    Order: a number in the configuration; for ``auto`` the raw header's value (inventory
    columns ``gain``, ``read_noise``; NaN or implausible values are ignored: a gain outside
    0.02-20 e-/ADU, a read noise outside 0.1-100 e-); else the night's measurement
    (`night_detector`, ``qc/detector.ecsv``).

    Parameters
    ----------
    instrument : dict
        The configuration's ``instrument`` section.
    header_gain, header_read_noise : float
        The frame's header values (NaN when absent).
    night : astropy.table.Table, optional
        `night_detector` output.

    Returns
    -------
    gain, read_noise : float
        e-/ADU and e-.
    gain_source, read_noise_source : str
        ``configuration``, ``header``, or the night's source.

    Raises
    ------
    ValueError
        When an ``auto`` value cannot be resolved (the message names the reason and the key).
    """
    values = []
    for key, header_value, limits in (
        ("gain", header_gain, GAIN_LIMITS),
        ("read_noise", header_read_noise, READ_NOISE_LIMITS),
    ):
        configured = instrument.get(key)
        if not is_auto(configured):
            values.append((float(configured), "configuration"))
        elif _plausible(header_value, limits):
            values.append((float(header_value), "header"))
        else:
            row = night[night["quantity"] == key] if night is not None and len(night) else []
            if len(row) and np.isfinite(float(row["value"][0])):
                values.append((float(row["value"][0]), str(row["source"][0])))
            else:
                reason = str(row["reason"][0]) if len(row) else "no measurement of the night"
                raise ValueError(
                    f"instrument.{key} is auto, but the raw header has no value and the night "
                    f"gives none ({reason}): set instrument.{key} in the configuration"
                )
    (gain, gain_source), (read_noise, rn_source) = values
    return gain, read_noise, gain_source, rn_source


@dataclass(frozen=True)
class FrameDetector:
    """The detector values one frame is calibrated with (resolved per frame).

    Attributes
    ----------
    gain : float
        e-/ADU.
    read_noise : float
        e-.
    saturation : float
        Raw saturation level (ADU).
    bias_level : float or None
        Constant bias level (ADU) for nights without bias frames and darks (None: unknown).
    gain_source, read_noise_source : str
        Where the gain and read noise come from (headers ``GAINSRC``, ``RDNSRC``).
    """

    gain: float
    read_noise: float
    saturation: float = 65535.0
    bias_level: float | None = None
    gain_source: str = "configuration"
    read_noise_source: str = "configuration"


def frame_detector(
    instrument: Mapping[str, object],
    header_values: Mapping[str, float | None] | None = None,
    night: Table | None = None,
) -> FrameDetector:
    """The detector values of one light: `resolve_detector` plus the instrument's levels.

    Parameters
    ----------
    instrument : mapping
        The configuration's ``instrument`` section.
    header_values : mapping, optional
        The frame's header ``gain`` and ``read_noise`` (None or NaN when absent).
    night : astropy.table.Table, optional
        `night_detector` output.

    Returns
    -------
    FrameDetector

    Raises
    ------
    ValueError
        When an ``auto`` value cannot be resolved.
    """
    header_values = header_values or {}

    def header(key: str) -> float:
        value = header_values.get(key)
        return float("nan") if value is None else float(value)

    gain, read_noise, gain_source, rn_source = resolve_detector(
        instrument, header("gain"), header("read_noise"), night
    )
    bias_level = instrument.get("bias_level")
    return FrameDetector(
        gain=gain,
        read_noise=read_noise,
        saturation=float(instrument.get("saturation", 65535.0)),
        bias_level=None if bias_level is None else float(bias_level),
        gain_source=gain_source,
        read_noise_source=rn_source,
    )


def night_read_noise_adu(instrument: Mapping[str, object], night: Table | None = None) -> float:
    """The night's read noise in ADU (NaN when gain or read noise cannot be resolved).

    For the QC of the masters: a raw header's own value, when it differs, is in each frame's
    header. An unresolved value is logged, not raised.
    """
    try:
        gain, read_noise, _, _ = resolve_detector(instrument, night=night)
    except ValueError as error:  # unresolved: the frames' headers say what they used
        log.warning("%s", error)
        gain, read_noise = 1.0, float("nan")
    return read_noise / gain
