"""Baseline terms of the transit fit: what the light curve may follow besides the transit."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["DETREND_TERMS", "detrend_regressors"]

#: Terms the baseline of the transit fit can be linear in.
DETREND_TERMS = ("airmass", "seeing", "sky", "x", "y")


def detrend_regressors(
    matrix: dict[str, np.ndarray], target: int, terms: Sequence[str] = ("airmass",)
) -> np.ndarray:
    """Baseline regressors of the transit fit, each centred and scaled to unit spread.

    Parameters
    ----------
    matrix : dict
        From `flux_matrix`.
    target : int
        Column of the target.
    terms : sequence of str
        Any of `DETREND_TERMS`: ``airmass``, ``seeing`` (FWHM), ``sky`` (level), ``x``,
        ``y`` (the target's position on the detector).

    Returns
    -------
    numpy.ndarray
        ``(frames, len(terms))``; a term that does not vary gives a column of zeros.

    Raises
    ------
    ValueError
        For an unknown term or one without values.
    """
    columns = []
    for term in terms:
        if term not in DETREND_TERMS:
            raise ValueError(f"unknown detrending term {term!r}: use any of {DETREND_TERMS}")
        values = matrix[term][:, target] if term in ("x", "y") else matrix[term]
        values = np.asarray(values, float)
        if not np.all(np.isfinite(values)):
            raise ValueError(f"detrending term {term!r} has no value in some frames")
        spread = np.std(values)
        columns.append((values - values.mean()) / spread if spread > 0 else 0.0 * values)
    return np.column_stack(columns) if columns else np.zeros((len(matrix["bjd_tdb"]), 0))
