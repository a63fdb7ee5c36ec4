"""Provenance in FITS headers: what a step applied, with which inputs and parameters."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from astropy.io import fits

from aifa_steps import __version__

__all__ = ["add_provenance"]


def add_provenance(
    header: fits.Header,
    step: str,
    inputs: Iterable[str | Path] = (),
    parameters: Mapping[str, object] | None = None,
) -> fits.Header:
    """Record a processing step in a header (in place) and return the header.

    Writes ``PIPELINE`` (package and version) and ``DATE-RED``, then HISTORY lines naming the step,
    each input file and each parameter.

    Parameters
    ----------
    header : astropy.io.fits.Header
        Header to extend.
    step : str
        Short name of the step, e.g. ``"master bias"``.
    inputs : iterable of path
        Files the step read.
    parameters : mapping, optional
        Parameters the step used.
    """
    header["PIPELINE"] = (f"aifa-steps {__version__}", "software that reduced this file")
    header["DATE-RED"] = (datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "UTC of reduction")
    header.add_history(f"aifa-steps: {step}")
    for path in inputs:
        header.add_history(f"  input: {Path(path).name}")
    for key, value in (parameters or {}).items():
        header.add_history(f"  {key} = {value}")
    return header
