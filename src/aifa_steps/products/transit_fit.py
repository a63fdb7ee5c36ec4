"""Transit model fit of a detrended light curve (batman, quadratic limb darkening).

The model is a limb-darkened transit (batman) times a baseline that is linear in airmass (and
optionally in seeing). Free: mid-transit time, radius ratio, scaled semi-major axis, impact
parameter and the baseline; fixed: the period (from the ephemeris) and the limb darkening.
Uncertainties come from the covariance of the least-squares fit, scaled by the reduced
chi-square, and are propagated to the depth and duration by sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aifa_steps.products.transit_model import TransitModel

__all__ = ["TransitFit", "fit_transit", "error_scale", "ERROR_RATIO_LIMIT"]

# Error bars are rescaled when the out-of-transit scatter differs from the median error by
# more than this factor (either way) and by more than three times the ratio's own uncertainty
# (1 / sqrt(2 (n - 1)) in its logarithm for n points: 7 % for 100 points, 14 % for 25): a
# real mismatch (a wrong gain or read noise, unmodelled red noise), not chance. Within it the
# CCD-equation errors are kept.
ERROR_RATIO_LIMIT = 1.25
MIN_ERROR_POINTS = 10


@dataclass
class TransitFit:
    """Result of `fit_transit` (``products/<object>/transit_fit.json``)."""

    t0_bjd_tdb: float
    t0_bjd_tdb_err: float
    depth: float
    depth_err: float
    duration_hours: float
    duration_hours_err: float
    rp_rs: float
    rp_rs_err: float
    a_rs: float
    impact_parameter: float
    baseline: list
    reduced_chi2: float
    rms: float
    n_points: int
    error_ratio: float = float("nan")
    error_scale: float = 1.0

    def as_dict(self) -> dict:
        """JSON-ready dictionary."""
        return {
            k: (float(v) if isinstance(v, (float, np.floating)) else v)
            for k, v in self.__dict__.items()
        }


def error_scale(
    flux: np.ndarray,
    flux_err: np.ndarray,
    outside: np.ndarray,
    limit: float = ERROR_RATIO_LIMIT,
    min_points: int = MIN_ERROR_POINTS,
) -> tuple[float, float]:
    """Ratio of a light curve's out-of-transit scatter to its median error, and the rescaling.

    Parameters
    ----------
    flux : numpy.ndarray
        Detrended relative flux (divided by the fitted baseline).
    flux_err : numpy.ndarray
        Its error (CCD equation, scintillation).
    outside : numpy.ndarray
        True for points out of transit.
    limit : float
        The errors are rescaled when the ratio is above ``limit`` or below ``1 / limit``, and
        off by more than three times its statistical uncertainty (for n points the limit is
        at least ``exp(3 / sqrt(2 (n - 1)))``: 1.35 for 50 points, 1.25 from 73 points on).
    min_points : int
        Fewer finite out-of-transit points give no ratio (NaN) and no rescaling.

    Returns
    -------
    ratio : float
        Standard deviation of the out-of-transit flux over the median of its errors.
    factor : float
        What the errors are multiplied by: ``ratio`` when it is outside the limits, else 1.
    """
    flux, flux_err = np.asarray(flux, float), np.asarray(flux_err, float)
    ok = np.asarray(outside, bool) & np.isfinite(flux) & np.isfinite(flux_err) & (flux_err > 0)
    if ok.sum() < min_points:
        return float("nan"), 1.0
    ratio = float(np.std(flux[ok], ddof=1) / np.median(flux_err[ok]))
    limit = max(limit, float(np.exp(3.0 / np.sqrt(2.0 * (ok.sum() - 1)))))
    factor = ratio if (ratio > limit or ratio < 1.0 / limit) else 1.0
    return ratio, factor


def _model(p, t, regressors, period, limb_darkening):
    t0, rp, a_rs, b = p[:4]
    coef = p[4:]
    inc = np.degrees(np.arccos(np.clip(b / a_rs, 0.0, 1.0)))
    transit = TransitModel(t0, period, rp, a_rs, inc, tuple(limb_darkening)).flux(t)
    return transit, transit * (coef[0] + regressors @ coef[1:])


def fit_transit(
    t: np.ndarray,
    flux: np.ndarray,
    flux_err: np.ndarray,
    regressors: np.ndarray,
    t0_guess: float,
    period_days: float,
    duration_hours_guess: float = 2.0,
    depth_guess: float = 0.01,
    limb_darkening: tuple[float, float] = (0.45, 0.2),
    seed: int = 1,
) -> tuple[TransitFit, np.ndarray, np.ndarray]:
    """Fit a transit with a baseline to a light curve.

    Parameters
    ----------
    t, flux, flux_err : numpy.ndarray
        BJD_TDB, relative flux and its error.
    regressors : numpy.ndarray
        (n, k) baseline regressors, e.g. airmass - mean (may have k = 0 columns).
    t0_guess, period_days, duration_hours_guess, depth_guess : float
        Starting values (ephemeris).
    limb_darkening : tuple of float
        Quadratic coefficients (fixed).
    seed : int
        Seed of the error propagation.

    Returns
    -------
    fit : TransitFit
    transit : numpy.ndarray
        The fitted transit alone (1 out of transit) at ``t``.
    baseline : numpy.ndarray
        The fitted baseline at ``t`` (divide the flux by it to detrend).
    """
    from scipy.optimize import least_squares

    t = np.asarray(t, float)
    ok = np.isfinite(flux) & np.isfinite(flux_err) & (flux_err > 0)
    regressors = np.asarray(regressors, float).reshape(len(t), -1)
    k = regressors.shape[1]
    rp0 = float(np.sqrt(max(depth_guess, 1e-4)))
    # a/R* from the duration for a central transit: T = P / pi / a_rs.
    a0 = float(np.clip(period_days * 24.0 / np.pi / max(duration_hours_guess, 0.1), 2.0, 50.0))
    x0 = np.array([t0_guess, rp0, a0, 0.3, 1.0, *np.zeros(k)])
    lower = np.array([t0_guess - 0.1, 0.01, 1.5, 0.0, 0.5, *np.full(k, -1.0)])
    upper = np.array([t0_guess + 0.1, 0.5, 100.0, 1.0, 1.5, *np.full(k, 1.0)])

    def residuals(p):
        _, model = _model(p, t[ok], regressors[ok], period_days, limb_darkening)
        return (flux[ok] - model) / flux_err[ok]

    result = least_squares(residuals, x0, bounds=(lower, upper), x_scale="jac")
    dof = max(int(ok.sum()) - len(x0), 1)
    chi2 = float(np.sum(result.fun**2) / dof)
    jac = result.jac
    try:
        cov = np.linalg.inv(jac.T @ jac) * max(chi2, 1.0)
    except np.linalg.LinAlgError:
        cov = np.full((len(x0), len(x0)), np.nan)
    p = result.x
    transit, full = _model(p, t, regressors, period_days, limb_darkening)
    baseline = full / transit

    def derived(q):
        inc = np.degrees(np.arccos(np.clip(q[3] / q[2], 0.0, 1.0)))
        model = TransitModel(q[0], period_days, q[1], q[2], inc, tuple(limb_darkening))
        return model.depth, model.duration_hours

    depth, duration = derived(p)
    rng = np.random.default_rng(seed)
    samples = []
    if np.all(np.isfinite(cov)):
        draws = rng.multivariate_normal(p, cov, size=300, check_valid="ignore")
        draws = np.clip(draws, lower, upper)
        samples = np.array([derived(q) for q in draws])
    depth_err, duration_err = (
        (float(np.std(samples[:, 0])), float(np.std(samples[:, 1])))
        if len(samples)
        else (np.nan, np.nan)
    )
    residual = flux[ok] - full[ok]
    fit = TransitFit(
        t0_bjd_tdb=float(p[0]),
        t0_bjd_tdb_err=float(np.sqrt(cov[0, 0])),
        depth=float(depth),
        depth_err=depth_err,
        duration_hours=float(duration),
        duration_hours_err=duration_err,
        rp_rs=float(p[1]),
        rp_rs_err=float(np.sqrt(cov[1, 1])),
        a_rs=float(p[2]),
        impact_parameter=float(p[3]),
        baseline=[float(v) for v in p[4:]],
        reduced_chi2=chi2,
        rms=float(np.std(residual)),
        n_points=int(ok.sum()),
    )
    return fit, transit, baseline
