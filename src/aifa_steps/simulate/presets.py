"""What a simulated night contains: the instrument, the site, the targets and the frame counts.

A preset is plain data. ``tiny`` is for tests (small frames, few exposures, every kind of bad
frame), ``drift`` too (small frames, a pointing that drifts 115 px through the series),
``demo`` is the night the default configuration reduces, ``full`` has true-size frames for
benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

__all__ = [
    "Instrument",
    "SiteSpec",
    "ClusterSpec",
    "TransitSpec",
    "Preset",
    "PRESETS",
    "get_preset",
]

# Full detector of the QHY600M binned 2x2.
FULL_SHAPE = (3194, 4788)  # (ny, nx)


@dataclass(frozen=True)
class Instrument:
    """The camera and telescope as the simulator models them (true values)."""

    name: str = "CDK14 + QHY600M (bin 2x2)"
    telescope: str = "PlaneWave CDK14"
    camera: str = "QHYCCD QHY600M"
    gain: float = 0.376  # e-/ADU
    read_noise: float = 3.5  # e- (binned pixel)
    pixel_scale: float = 0.607  # arcsec/px
    pixel_size_um: float = 7.52  # binned pixel
    focal_length_mm: float = 2563.0
    aperture_m: float = 0.35
    saturation: int = 65535
    bias_level: float = 500.0  # ADU
    dark_current: float = 0.004  # e-/s/px, cooled to -10 C
    hot_pixel_fraction: float = 2.0e-4
    dead_pixel_fraction: float = 5.0e-5
    cosmic_ray_rate: float = 5.0  # per cm^2 per minute
    # Radial field distortion of the optics (SIP A_3_0 etc., px^-2) about the detector centre.
    distortion_k3: float = 1.0e-10
    vignetting_corner: float = 0.12  # fractional light loss in the corners of the full frame
    # Instrumental zero points: magnitude giving 1 ADU/s above the atmosphere.
    zp_1s: dict = field(default_factory=lambda: {"g": 25.20, "r": 25.00, "i": 24.60})
    # Extinction in mag per airmass.
    extinction: dict = field(default_factory=lambda: {"g": 0.22, "r": 0.13, "i": 0.09})
    # Night sky at zenith in mag per square arcsec.
    sky_mag: dict = field(default_factory=lambda: {"g": 20.4, "r": 19.7, "i": 19.0})
    psf_beta: float = 3.0


@dataclass(frozen=True)
class SiteSpec:
    """The observatory: AIfA rooftop, Bonn."""

    name: str = "AIfA Bonn"
    latitude: float = 50.7275
    longitude: float = 7.0863
    elevation: float = 60.0
    seeing_arcsec: float = 2.2  # median at zenith


@dataclass(frozen=True)
class ClusterSpec:
    """An open cluster observed in several filters with dithers."""

    name: str = "NGC7789"
    ra: float = 359.35
    dec: float = 56.7083
    distance_modulus: float = 11.4
    reddening_gi: float = 0.45  # E(g-i)
    extinction_r: float = 0.75  # A_r
    turnoff_abs_r: float = 2.0  # M_r of the main-sequence turn-off
    n_members: int = 2500
    core_radius_arcmin: float = 4.0
    tidal_radius_arcmin: float = 25.0
    field_density_r16: float = 3000.0  # field stars per deg^2 brighter than r = 16
    filters: tuple = ("g", "r", "i")
    exptime: dict = field(default_factory=lambda: {"g": 30.0, "r": 15.0, "i": 15.0})
    n_dithers: int = 3
    dither_arcsec: float = 20.0
    start_utc: str = "2025-10-14T18:50:00"


@dataclass(frozen=True)
class TransitSpec:
    """A time series in one filter through a full transit (Qatar-1 b like parameters)."""

    name: str = "Qatar-1"
    ra: float = 303.38175
    dec: float = 65.16194
    host_r: float = 12.55
    host_gr: float = 0.78
    period_days: float = 1.4200242
    rp_rs: float = 0.1455
    a_rs: float = 6.25
    inclination_deg: float = 84.26
    limb_darkening: tuple = (0.45, 0.20)  # quadratic, r band
    t0_utc: str = "2025-10-14T21:20:00"  # mid-transit (converted to BJD_TDB for the truth)
    window_hours: float = 3.5  # observed span centred on mid-transit
    filter: str = "r"
    exptime: float = 30.0
    n_frames: int = 100
    defocus_arcsec: float = 3.5  # defocused PSF keeps the bright host unsaturated
    drift_arcsec_per_hour: float = 4.0
    field_density_r16: float = 1500.0
    n_variables: int = 4
    cloudy_frames: tuple = (0.62,)  # fractions of the series lost to clouds


@dataclass(frozen=True)
class Preset:
    """Everything that defines a simulated night."""

    name: str
    shape: tuple  # (ny, nx) of every frame: a centred cut-out of the full detector
    n_bias: int
    n_dark: int
    dark_exptime: float
    n_flat: int  # per filter
    flat_level: float = 40000.0
    cluster: ClusterSpec = field(default_factory=ClusterSpec)
    transit: TransitSpec = field(default_factory=TransitSpec)
    instrument: Instrument = field(default_factory=Instrument)
    site: SiteSpec = field(default_factory=SiteSpec)
    # Bad frames on purpose: "saturated_flat", "faint_flat", "corrupt", "no_filter".
    defects: tuple = ()
    refcat_limit_r: float = 19.0
    faintest_mag: float = 21.0


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        name="tiny",
        shape=(448, 640),
        n_bias=5,
        n_dark=3,
        dark_exptime=60.0,
        n_flat=5,
        cluster=ClusterSpec(n_dithers=2),
        transit=TransitSpec(n_frames=24),
        defects=("saturated_flat", "faint_flat", "corrupt", "no_filter"),
    ),
    # Tiny frames of a pointing that drifts 115 px through the series (guiding-less mount):
    # the astrometry's hand-over of solutions from frame to frame is tested on it.
    "drift": Preset(
        name="drift",
        shape=(448, 640),
        n_bias=3,
        n_dark=2,
        dark_exptime=60.0,
        n_flat=3,
        cluster=ClusterSpec(n_dithers=1, filters=("r",)),
        transit=TransitSpec(n_frames=10, drift_arcsec_per_hour=20.0),
    ),
    "demo": Preset(
        name="demo",
        shape=(1064, 1596),
        n_bias=10,
        n_dark=5,
        dark_exptime=60.0,
        n_flat=5,
        cluster=ClusterSpec(n_dithers=3),
        transit=TransitSpec(n_frames=100),
        defects=("saturated_flat",),
    ),
    "full": Preset(
        name="full",
        shape=FULL_SHAPE,
        n_bias=20,
        n_dark=20,
        dark_exptime=60.0,
        n_flat=15,
        cluster=ClusterSpec(n_dithers=5),
        transit=TransitSpec(n_frames=300),
        defects=("saturated_flat",),
    ),
}


def get_preset(name: str, n_transit_frames: int | None = None) -> Preset:
    """Return a preset by name, optionally with another number of transit frames.

    Raises
    ------
    ValueError
        If the preset does not exist.
    """
    try:
        preset = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
    if n_transit_frames is not None:
        preset = replace(preset, transit=replace(preset.transit, n_frames=int(n_transit_frames)))
    return preset
