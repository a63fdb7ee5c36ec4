"""One bad frame is data, not the end of the night.

Every per-frame step (calibration, astrometry, photometry) runs through `run_frame_step`: an
unusable frame, or any unexpected exception inside the step, is logged with its traceback and
turned into a *failure record* with the step and a one-line reason. The step still writes all
its outputs, marked as failed, so the workflow's later steps see the frame, leave it out and
say why, and no other frame's products wait for it.

A failed FITS product is a header-only file with ``FRAMEOK = F``, ``FAILSTEP`` and
``FAILREAS`` (`write_failed_fits`, `fits_failure`).
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
from astropy.io import fits

from aifa_steps.core.atomic import write_hdul

__all__ = [
    "FrameFailure",
    "FAULT_ENV",
    "failure_reason",
    "is_environment_error",
    "run_frame_step",
    "write_failed_fits",
    "fits_failure",
    "check_light_data",
]

log = logging.getLogger(__name__)

#: Environment variable that makes a step fail on purpose (tests): ``step:stem[,step:stem]``.
FAULT_ENV = "AIFA_STEPS_INJECT_FAULT"

#: Raw keywords copied into a failed frame's header, so tables can still say what it was.
_KEEP = ("OBJECT", "FILTER", "FILTNAME", "EXPTIME", "DATE-OBS", "IMAGETYP", "TARGET")

T = TypeVar("T")


class FrameFailure(Exception):
    """A frame cannot go through a step; the message is the reason (one line)."""


def failure_reason(exc: BaseException, limit: int = 300) -> str:
    """One line that says why a step failed.

    A `FrameFailure` gives its own message; any other exception its type and message, so
    that an unexpected error is recognisable in a table.
    """
    text = str(exc) if isinstance(exc, FrameFailure) else f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: Errors of the machine, not of a frame (errno): a full disk or quota, a read-only file
#: system, missing permissions, no memory. They end the job, so the next run tries again.
_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.ENOMEM,
}
_ENVIRONMENT_MESSAGES = ("no space left on device", "not enough space on disk")


def is_environment_error(exc: BaseException) -> bool:
    """Whether an error comes from the machine (disk, permissions, memory), not the frame.

    Such errors must not become a frame's failure record: the record would outlive the
    cause, and the rerun after freeing space would keep the frame failed.
    """
    if isinstance(exc, MemoryError):
        return True
    if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
        return True
    text = str(exc).lower()
    return isinstance(exc, OSError) and any(m in text for m in _ENVIRONMENT_MESSAGES)


def _injected(step: str, stem: str) -> bool:
    wanted = os.environ.get(FAULT_ENV, "")
    return any(item.strip() in (f"{step}:{stem}", f"{step}:*") for item in wanted.split(","))


def run_frame_step(
    step: str,
    stem: str,
    work: Callable[[], T],
    on_failure: Callable[[str], None],
) -> T | None:
    """Run one frame's step; turn any failure into data instead of ending the job.

    Parameters
    ----------
    step : str
        Name of the step (``calibration``, ``astrometry``, ``photometry``).
    stem : str
        The frame.
    work : callable
        Does the step and writes its outputs; its return value is passed on.
    on_failure : callable
        Called with the reason when ``work`` raises; writes the outputs that mark the frame
        as failed. An error here does end the job (nothing could be written).

    Raises
    ------
    Exception
        Errors of the machine (`is_environment_error`: a full disk, permissions, memory) are
        not the frame's: they end the job, which the next run repeats.

    Returns
    -------
    object or None
        What ``work`` returned, or None after a failure.

    Notes
    -----
    Each calibration, astrometry and photometry step of a frame adds a line to the run's
    progress (`aifa_steps.core.progress.record_frame_step`).
    """
    from aifa_steps.core.progress import record_frame_step

    start = time.perf_counter()
    try:
        if _injected(step, stem):
            raise RuntimeError(f"fault injected by {FAULT_ENV}")
        result = work()
    except Exception as exc:  # noqa: BLE001 - every failure of one frame becomes data
        if is_environment_error(exc):
            log.error("%s of %s stopped by the machine, not the frame: %s", step, stem, exc)
            raise
        reason = failure_reason(exc)
        if isinstance(exc, FrameFailure):
            log.warning("%s of %s failed: %s", step, stem, reason)
        else:
            log.error("%s of %s failed: %s", step, stem, reason, exc_info=exc)
        on_failure(reason)
        _progress(record_frame_step(step, stem, time.perf_counter() - start, ok=False))
        return None
    _progress(record_frame_step(step, stem, time.perf_counter() - start, ok=True))
    return result


def _progress(line: str | None) -> None:
    if line:
        log.info("%s", line)


def write_failed_fits(
    path: str | Path, step: str, reason: str, header: fits.Header | None = None
) -> None:
    """Write the header-only FITS product of a frame that failed ``step``.

    Parameters
    ----------
    path : str or Path
        The product the step would have written.
    step, reason : str
        Which step failed and why.
    header : astropy.io.fits.Header, optional
        The frame's header; its identifying keywords (OBJECT, FILTER, EXPTIME, ...) are kept.
    """
    out = fits.Header()
    for key in _KEEP:
        if header is not None and key in header:
            out[key] = header[key]
    out["FRAMEOK"] = (False, "this frame failed a step and has no data")
    out["FAILSTEP"] = (step, "the step that failed")
    out["FAILREAS"] = reason
    write_hdul(fits.HDUList([fits.PrimaryHDU(header=out)]), path)


def fits_failure(path: str | Path) -> tuple[str, str] | None:
    """``(step, reason)`` when ``path`` is the product of a failed frame, else None."""
    header = fits.getheader(path)
    if header.get("FRAMEOK", True) is False:
        return str(header.get("FAILSTEP", "")), str(header.get("FAILREAS", ""))
    return None


def check_light_data(data: np.ndarray, saturation: float, step: int = 4) -> None:
    """Raise `FrameFailure` for a raw light frame that holds no usable sky.

    A frame is unusable when fewer than half of its pixels are finite (all NaN, corrupt),
    when more than half are at or above ``saturation`` (daylight, a lamp, the dome), or when
    every pixel has the same value (a blank read-out). Single NaN pixels are not a failure:
    the calibration flags them.

    Parameters
    ----------
    data : numpy.ndarray
        The raw image.
    saturation : float
        Raw saturation level (ADU).
    step : int
        Look at every ``step``-th pixel in each direction (enough for fractions).
    """
    sample = np.asarray(data)[::step, ::step]
    finite = np.isfinite(sample)
    fraction = float(finite.mean()) if sample.size else 0.0
    if fraction == 0.0:
        raise FrameFailure("no finite pixel (all NaN or infinite)")
    if fraction < 0.5:
        raise FrameFailure(f"only {100 * fraction:.0f} % of the pixels are finite")
    values = sample[finite]
    saturated = float(np.mean(values >= saturation))
    if saturated > 0.5:
        raise FrameFailure(
            f"saturated: {100 * saturated:.0f} % of the pixels at or above {saturation:g} ADU"
        )
    low, high = float(values.min()), float(values.max())
    if low == high:
        raise FrameFailure(f"blank frame: every pixel is {low:g} ADU")
