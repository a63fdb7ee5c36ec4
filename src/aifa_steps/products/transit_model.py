"""The transit: a quadratic limb-darkened light curve (batman) and its derived numbers."""

from __future__ import annotations

from dataclasses import dataclass

import batman
import numpy as np

__all__ = ["TransitModel"]


@dataclass(frozen=True)
class TransitModel:
    """A circular-orbit transit.

    Parameters
    ----------
    t0 : float
        Mid-transit time (BJD_TDB).
    period_days, rp_rs, a_rs, inclination_deg : float
        Orbital period, planet-to-star radius ratio, scaled semi-major axis, inclination.
    limb_darkening : tuple of float
        Quadratic limb-darkening coefficients (u1, u2).
    """

    t0: float
    period_days: float
    rp_rs: float
    a_rs: float
    inclination_deg: float
    limb_darkening: tuple[float, float]

    @classmethod
    def from_truth(cls, truth: dict) -> TransitModel:
        """The model described by a night's ``truth/transit.json``."""
        return cls(
            truth["t0_bjd_tdb"],
            truth["period_days"],
            truth["rp_rs"],
            truth["a_rs"],
            truth["inclination_deg"],
            tuple(truth["limb_darkening"]),
        )

    def _params(self) -> batman.TransitParams:
        p = batman.TransitParams()
        p.t0, p.per, p.rp, p.a, p.inc = (
            self.t0,
            self.period_days,
            self.rp_rs,
            self.a_rs,
            self.inclination_deg,
        )
        p.ecc, p.w = 0.0, 90.0
        p.u, p.limb_dark = list(self.limb_darkening), "quadratic"
        return p

    def flux(self, t_bjd: np.ndarray) -> np.ndarray:
        """Relative flux of the host (1 out of transit) at BJD_TDB times."""
        t = np.atleast_1d(np.asarray(t_bjd, dtype=float))
        params = self._params()
        return batman.TransitModel(params, t).light_curve(params)

    @property
    def impact_parameter(self) -> float:
        """Sky-projected distance of the planet from the star's centre at mid-transit (R*)."""
        return float(self.a_rs * np.cos(np.radians(self.inclination_deg)))

    @property
    def depth(self) -> float:
        """Fractional flux loss at mid-transit."""
        return float(1.0 - self.flux([self.t0])[0])

    @property
    def duration_hours(self) -> float:
        """Total duration, first to fourth contact (Seager & Mallen-Ornelas 2003)."""
        b = self.impact_parameter
        k = self.rp_rs
        sin_i = np.sin(np.radians(self.inclination_deg))
        arg = np.sqrt((1.0 + k) ** 2 - b**2) / (self.a_rs * sin_i)
        return float(self.period_days / np.pi * np.arcsin(arg) * 24.0)
