# Gain and read noise of each light: configured, or for 'auto' the raw header's value (inventory
# columns gain, read_noise) or the night's measurement (qc/detector.ecsv, camera_characterisation).
DETECTOR_TABLE = WORK / "qc" / "detector.ecsv"


def detector_auto():
    """Which of instrument.gain and instrument.read_noise are 'auto'."""
    from aifa_steps.calibration.settings import is_auto

    return [k for k in ("gain", "read_noise") if is_auto(config["instrument"][k])]


def frame_detector(stem):
    """A light's header gain and read noise (inventory columns ``gain``, ``read_noise``;
    None when the column is absent or the header had no value)."""
    row = light_row(stem)
    values = {}
    for key in ("gain", "read_noise"):
        try:
            value = float(row[key])
        except (KeyError, TypeError, ValueError):
            value = None
        values[key] = value if value is not None and np.isfinite(value) else None
    return values


def detector_input(wildcards):
    """The night's measured gain and read noise, when a light needs them ('auto' without a
    plausible header value)."""
    from aifa_steps.calibration.settings import GAIN_LIMITS, READ_NOISE_LIMITS

    limits = {"gain": GAIN_LIMITS, "read_noise": READ_NOISE_LIMITS}
    header = frame_detector(wildcards.stem)
    for key in detector_auto():
        value = header[key]
        if value is None or not limits[key][0] <= value <= limits[key][1]:
            return [DETECTOR_TABLE]
    return []


def detector_inputs(wildcards=None):
    """The night's detector table for steps that need the resolved values."""
    return [DETECTOR_TABLE] if detector_auto() else []
