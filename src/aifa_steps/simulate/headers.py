"""FITS headers as N.I.N.A. writes them for a QHY600M on a CDK14."""

from __future__ import annotations

from astropy.coordinates import Angle
from astropy.io import fits
from astropy.time import Time

from .presets import Preset

__all__ = ["nina_header"]

# N.I.N.A. writes local civil time in DATE-LOC; Bonn is on CEST (UTC+2) in mid-October.
_LOCAL_OFFSET_HOURS = 2.0


def nina_header(plan, preset: Preset) -> fits.Header:
    """The header of one raw frame.

    Parameters
    ----------
    plan : aifa_steps.simulate.night.FramePlan
        What the frame is (type, filter, time, pointing, ...).
    preset : Preset
        Instrument and site.

    Returns
    -------
    astropy.io.fits.Header
        Keywords in N.I.N.A.'s order and spelling. Calibration frames carry no pointing.
    """
    inst, site = preset.instrument, preset.site
    start = Time(plan.mjd, format="mjd", scale="utc")
    local = Time(plan.mjd + _LOCAL_OFFSET_HOURS / 24.0, format="mjd", scale="utc")
    h = fits.Header()
    h["IMAGETYP"] = (plan.imagetyp, "Type of exposure")
    h["EXPOSURE"] = (plan.exptime, "[s] Exposure duration")
    h["EXPTIME"] = (plan.exptime, "[s] Exposure duration")
    h["DATE-LOC"] = (local.isot, "Time of observation (local)")
    h["DATE-OBS"] = (start.isot, "Time of observation (UTC)")
    h["XBINNING"] = (2, "X axis binning factor")
    h["YBINNING"] = (2, "Y axis binning factor")
    h["GAIN"] = (26, "Sensor gain")
    h["OFFSET"] = (30, "Sensor gain offset")
    h["EGAIN"] = (inst.gain, "[e-/ADU] Electrons per A/D unit")
    h["XPIXSZ"] = (inst.pixel_size_um, "[um] Pixel X axis size")
    h["YPIXSZ"] = (inst.pixel_size_um, "[um] Pixel Y axis size")
    h["INSTRUME"] = (inst.camera, "Imaging instrument name")
    h["SET-TEMP"] = (-10.0, "[degC] CCD temperature setpoint")
    h["CCD-TEMP"] = (plan.ccd_temp, "[degC] CCD temperature")
    h["READOUTM"] = ("Photographic", "Sensor readout mode")
    h["TELESCOP"] = (inst.telescope, "Name of telescope")
    h["FOCALLEN"] = (inst.focal_length_mm, "[mm] Focal length")
    h["FOCRATIO"] = (round(inst.focal_length_mm / (inst.aperture_m * 1000.0), 2), "Focal ratio")
    if plan.imagetyp == "LIGHT":
        ra = Angle(plan.ra_header, unit="deg")
        dec = Angle(plan.dec_header, unit="deg")
        h["RA"] = (round(plan.ra_header, 6), "[deg] RA of telescope")
        h["DEC"] = (round(plan.dec_header, 6), "[deg] Declination of telescope")
        h["OBJCTRA"] = (
            ra.to_string(unit="hourangle", sep=" ", precision=0, pad=True),
            "[H M S] RA of imaged object",
        )
        h["OBJCTDEC"] = (
            dec.to_string(unit="deg", sep=" ", precision=0, alwayssign=True, pad=True),
            "[D M S] Declination of imaged object",
        )
        h["OBJCTALT"] = (round(plan.altitude, 4), "[deg] Altitude of the imaged object")
        h["OBJCTHA"] = (round(plan.hour_angle / 15.0, 4), "[hrs] Hour angle")
        h["PIERSIDE"] = (plan.pierside, "Telescope pointing state")
    h["SITEELEV"] = (site.elevation, "[m] Observation site elevation")
    h["SITELAT"] = (site.latitude, "[deg] Observation site latitude")
    h["SITELONG"] = (site.longitude, "[deg] Observation site longitude")
    if plan.imagetyp == "LIGHT":
        h["AIRMASS"] = (round(plan.airmass, 4), "Airmass at frame start")
    h["FWHEEL"] = ("ZWO EFW", "Filter Wheel name")
    if plan.filter:
        h["FILTER"] = (plan.filter, "Active filter name")
    h["FOCNAME"] = ("PlaneWave EFA", "Focusing equipment name")
    h["FOCPOS"] = (plan.focus_position, "[step] Focuser position")
    h["FOCUSPOS"] = (plan.focus_position, "[step] Focuser position")
    h["FOCUSSZ"] = (0.2, "[um] Focuser step size")
    h["FOCTEMP"] = (plan.focus_temp, "[degC] Focuser temperature")
    h["FOCUSTEM"] = (plan.focus_temp, "[degC] Focuser temperature")
    if plan.object:
        h["OBJECT"] = (plan.object, "Name of the object of interest")
    h["ROWORDER"] = ("TOP-DOWN", "FITS Image Orientation")
    h["EQUINOX"] = (2000.0, "Equinox of celestial coordinate system")
    h["SWCREATE"] = ("N.I.N.A. 3.1.2.9001 (x64)", "Software that created this file")
    return h
