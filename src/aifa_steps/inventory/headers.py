"""Read what a raw frame's header says, whichever camera software wrote it.

Observatories spell the same facts differently: NINA writes ``IMAGETYP = 'LIGHT'`` and the
time as ``DATE-OBS = '2024-09-01T21:33:12.123'``; MaxIm DL ``'Light Frame'`` and ``OBJCTRA =
'20 13 31.6'``; IRAF-era observatory software ``IMAGETYP = 'OBJECT'``, ``'ZERO'``, ``'SKYFLAT'``,
a date-only ``DATE-OBS`` plus ``UT`` or ``UTCSTART``, ``CCDSUM = '3 3'`` and ``FILTNAME``; some
cameras write local time with a zone suffix (``2017-12-19T18:33:43.317-0700``). Every meaning
(``filter``, ``ra``, ...) therefore has a list of candidate keywords, tried in order; the
configuration's ``headers`` section may name one keyword or its own list for each.

All functions only read headers; none modifies them.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
from astropy.coordinates import Angle
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS

from aifa_steps.core.formats import Reason

__all__ = [
    "DEFAULT_KEYWORDS",
    "keywords_for",
    "first_keyword",
    "header_value",
    "header_float",
    "numeric_keyword",
    "parse_ra",
    "parse_dec",
    "parse_degrees",
    "parse_time_of_day",
    "observation_time",
    "binning",
    "celestial_wcs",
    "HeaderTimeError",
]

#: Candidate keywords of every meaning, most common first.
DEFAULT_KEYWORDS: dict[str, tuple[str, ...]] = {
    "imagetyp": ("IMAGETYP", "IMAGETYPE", "FRAMETYP", "FRAME", "OBSTYPE"),
    "filter": ("FILTER", "FILTERS", "FILTNAME", "FILTER1", "FILT"),
    "exptime": ("EXPTIME", "EXPOSURE", "EXP_TIME", "ITIME"),
    "object": ("OBJECT", "OBJNAME", "TARGET", "TARGNAME"),
    "date_obs": ("DATE-OBS", "DATE_OBS"),
    "time_obs": ("TIME-OBS", "UTC-OBS", "UTCSTART", "UTSTART", "UT-START", "UT", "TIME_OBS"),
    "mjd_obs": ("MJD-OBS", "MJD_OBS", "MJD"),
    "jd": ("JD", "JD-OBS", "JD_OBS"),
    "ra": ("RA", "OBJCTRA", "RA_OBJ", "TELRA", "OBJRA"),
    "dec": ("DEC", "OBJCTDEC", "DEC_OBJ", "TELDEC", "OBJDEC"),
    "airmass": ("AIRMASS", "SECZ"),
    "xbinning": ("XBINNING", "CCDXBIN", "BINX", "XBIN"),
    "ybinning": ("YBINNING", "CCDYBIN", "BINY", "YBIN"),
    "ccdsum": ("CCDSUM", "BINNING"),
    "gain": ("EGAIN", "GAIN", "CCDGAIN", "GAIN1"),
    "read_noise": ("RDNOISE", "READNOIS", "RDNOIS", "RON", "READNOISE"),
    "saturation": ("SATURATE", "SATLEVEL", "SATUR"),
    "latitude": ("SITELAT", "LATITUDE", "LAT-OBS", "OBS-LAT", "OBSLAT"),
    "longitude": ("SITELONG", "LONGITUD", "LONGITUDE", "LONG-OBS", "OBS-LONG", "OBSLONG"),
    "elevation": ("SITEELEV", "ALTITUDE", "ELEVATIO", "ALT-OBS", "OBS-ELEV", "OBSALT"),
    "telescope": ("TELESCOP",),
    "instrument": ("INSTRUME", "DETECTOR", "CAMERA"),
    "focal_length": ("FOCALLEN",),
    "pixel_size": ("XPIXSZ", "PIXSIZE", "PIXSIZE1"),
    "pixel_scale": ("SECPIX", "SECPIXX", "PIXSCALE", "SCALE"),
}


class HeaderTimeError(ValueError):
    """The header's observation time cannot be read; the message says which keywords."""


def keywords_for(name: str, configured: Mapping[str, object] | None = None) -> list[str]:
    """The keywords tried for a meaning: the configuration's (one or a list), else the defaults.

    Parameters
    ----------
    name : str
        The meaning, a key of `DEFAULT_KEYWORDS` (``filter``, ``ra``, ...).
    configured : mapping, optional
        The configuration's ``headers`` section.

    Returns
    -------
    list of str
        Upper-case keywords in the order they are tried.
    """
    value = (configured or {}).get(name)
    if value in (None, "", []):
        return list(DEFAULT_KEYWORDS.get(name, ()))
    if isinstance(value, str):
        return [value.strip().upper()]
    return [str(v).strip().upper() for v in value]  # type: ignore[union-attr]


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def first_keyword(header: Mapping, keywords: Iterable[str]) -> tuple[str | None, object]:
    """The first keyword of ``keywords`` with a non-empty value in ``header``, and that value."""
    for key in keywords:
        value = header.get(key)
        if _present(value):
            return key, value
    return None, None


def header_value(
    header: Mapping, name: str, configured: Mapping[str, object] | None = None
) -> object:
    """The value of a meaning (first candidate keyword present), or None."""
    return first_keyword(header, keywords_for(name, configured))[1]


def _to_float(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def header_float(
    header: Mapping, name: str, configured: Mapping[str, object] | None = None
) -> float | None:
    """A numeric meaning (EXPTIME, GAIN, ...) as a finite float, or None.

    None when every candidate keyword is absent or not a number; strings holding numbers
    (``'300.'``) are read too.
    """
    return numeric_keyword(header, name, configured)[1]


def numeric_keyword(
    header: Mapping, name: str, configured: Mapping[str, object] | None = None
) -> tuple[str | None, float | None]:
    """The first candidate keyword of a meaning with a finite number, and that number."""
    for key in keywords_for(name, configured):
        number = _to_float(header.get(key))
        if number is not None:
            return key, number
    return None, None


_SEXAGESIMAL = re.compile(r"[:\shdms°'\"]")


def _parse_angle(value: object, hours: bool) -> float | None:
    number = _to_float(value)
    if number is not None:
        return number
    if not _present(value):
        return None
    text = str(value).strip()
    if not _SEXAGESIMAL.search(text):
        return None
    parts = [p for p in re.split(r"[:\shdms°'\"]+", text) if p]
    if not 1 <= len(parts) <= 3:
        return None
    try:
        sign = -1.0 if parts[0].startswith("-") else 1.0
        numbers = [abs(float(parts[0]))] + [float(p) for p in parts[1:]]
    except ValueError:
        return None
    value_deg = sum(n / 60.0**k for k, n in enumerate(numbers)) * sign
    return float(Angle(value_deg * (15.0 if hours else 1.0), unit="deg").degree)


def parse_ra(value: object) -> float | None:
    """Right ascension in degrees from a header value.

    Numbers (and strings of a number) are degrees, as NINA writes ``RA``; sexagesimal strings
    (``'08:18:29.9'``, ``'20 13 31.6'``, ``'8h18m29.9s'``) are hours, as ``OBJCTRA`` and most
    observatory software write them. None when the value is missing or unreadable.
    """
    degrees = _parse_angle(value, hours=True)
    return None if degrees is None else degrees % 360.0


def parse_degrees(value: object) -> float | None:
    """An angle in degrees from a number or a sexagesimal string (``'-111 32 08'``)."""
    return _parse_angle(value, hours=False)


def parse_dec(value: object) -> float | None:
    """Declination in degrees from a number or a sexagesimal string (``'+25:19:59'``)."""
    degrees = _parse_angle(value, hours=False)
    if degrees is None or not -90.0 <= degrees <= 90.0:
        return None
    return degrees


def parse_time_of_day(value: object) -> float | None:
    """Seconds after midnight from ``'02:27:31.13'`` or decimal hours (``2.4587``)."""
    number = _to_float(value)
    if number is not None:
        return number * 3600.0 if 0.0 <= number < 24.0 else None
    if not _present(value):
        return None
    match = re.fullmatch(r"\s*(\d{1,2})[:\s](\d{1,2})(?:[:\s](\d{1,2}(?:\.\d*)?))?\s*", str(value))
    if not match:
        return None
    h, m, s = int(match[1]), int(match[2]), float(match[3] or 0.0)
    if h > 24 or m >= 60 or s >= 61:
        return None
    return h * 3600.0 + m * 60.0 + s


_ZONE = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")
_OLD_DATE = re.compile(r"^(\d{2})/(\d{2})/(\d{2})$")  # FITS before 2000: DD/MM/YY


def _parse_date_obs(text: str) -> tuple[datetime, bool]:
    """A DATE-OBS value as a naive datetime in its own time scale, and whether it had a time.

    A zone suffix (``Z``, ``-0700``, ``+02:00``) is applied, so the result is UTC then.
    """
    text = text.strip()
    old = _OLD_DATE.match(text)
    if old:
        day, month, year = (int(g) for g in old.groups())
        return datetime(1900 + year, month, day), False
    zone = _ZONE.search(text) if "T" in text or " " in text.strip() else None
    if zone:
        suffix = zone.group(1)
        text = text[: zone.start()]
        if suffix == "Z":
            offset = timedelta(0)
        else:
            sign = -1 if suffix[0] == "-" else 1
            digits = suffix[1:].replace(":", "")
            offset = sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    text = text.replace(" ", "T")
    has_time = "T" in text
    # Fractions of a second of any length: datetime takes at most six digits.
    match = re.fullmatch(r"(\d{4}-\d{2}-\d{2})(?:T(\d{1,2}:\d{2}(?::\d{2})?)(\.\d+)?)?", text)
    if not match:
        raise ValueError(f"not an ISO date {text!r}")
    stamp = datetime.fromisoformat(match[1] + ("T" + match[2] if match[2] else ""))
    if match[3]:
        stamp += timedelta(seconds=float(match[3]))
    if zone:
        stamp = (stamp.replace(tzinfo=timezone(offset))).astimezone(UTC)
        stamp = stamp.replace(tzinfo=None)
    return stamp, has_time


def _mjd(stamp: datetime) -> float:
    return float(Time(stamp, scale="utc").mjd)


def observation_time(
    header: Mapping,
    configured: Mapping[str, object] | None = None,
    utc_offset_hours: float = 0.0,
) -> tuple[float, str]:
    """The start of the exposure as MJD (UTC), and where it came from.

    Tried in order: DATE-OBS with a time (a zone suffix such as ``-0700`` converts it to UTC;
    without one, ``utc_offset_hours`` is subtracted); a date-only DATE-OBS plus a time-of-day
    keyword (TIME-OBS, UTC-OBS, UTCSTART, UT, ...); MJD-OBS; JD.

    Parameters
    ----------
    header : mapping
        The raw header.
    configured : mapping, optional
        The configuration's ``headers`` section (keywords of ``date_obs``, ``time_obs``,
        ``mjd_obs``, ``jd``).
    utc_offset_hours : float
        DATE-OBS minus UTC in hours, for cameras that write local time without a zone suffix.

    Returns
    -------
    mjd : float
        Modified Julian date of the exposure start, UTC.
    source : str
        The keywords used, e.g. ``'DATE-OBS'`` or ``'DATE-OBS + UTCSTART'``.

    Raises
    ------
    HeaderTimeError
        When no keyword gives a time; the message names what was found.
    """
    problems = []
    date_key, date_value = first_keyword(header, keywords_for("date_obs", configured))
    if date_key is not None:
        try:
            stamp, has_time = _parse_date_obs(str(date_value))
        except ValueError:
            problems.append(f"{Reason.UNREADABLE_VALUE} {date_key} {str(date_value).strip()!r}")
        else:
            zone = bool(_ZONE.search(str(date_value).strip())) and has_time
            shift = timedelta(0) if zone else timedelta(hours=float(utc_offset_hours))
            if has_time:
                return _mjd(stamp - shift), date_key
            time_key, time_value = first_keyword(header, keywords_for("time_obs", configured))
            seconds = parse_time_of_day(time_value)
            if seconds is not None:
                stamp = stamp + timedelta(seconds=seconds) - shift
                return _mjd(stamp), f"{date_key} + {time_key}"
            if time_key is not None:
                problems.append(f"{Reason.UNREADABLE_VALUE} {time_key} {str(time_value).strip()!r}")
            else:
                problems.append(
                    f"{date_key} {str(date_value).strip()!r} has {Reason.NO_TIME_OF_DAY} and no "
                    f"time keyword ({', '.join(keywords_for('time_obs', configured))})"
                )
    for name, to_mjd in (("mjd_obs", lambda v: v), ("jd", lambda v: v - 2400000.5)):
        key, value = first_keyword(header, keywords_for(name, configured))
        number = _to_float(value)
        if number is not None and number > 0:
            mjd = to_mjd(number)
            if 0 < mjd < 100000:
                return float(mjd), str(key)
    if not problems:
        problems.append(
            f"{Reason.MISSING_KEYWORD} "
            + "/".join(keywords_for("date_obs", configured)[:1] + ["MJD-OBS", "JD"])
        )
    raise HeaderTimeError("; ".join(problems))


def binning(header: Mapping, configured: Mapping[str, object] | None = None) -> tuple[int, int]:
    """On-chip binning (x, y) from XBINNING/YBINNING (or similar), else CCDSUM ``'3 3'``, else 1."""
    bx = header_float(header, "xbinning", configured)
    by = header_float(header, "ybinning", configured)
    if bx is None or by is None:
        _, value = first_keyword(header, keywords_for("ccdsum", configured))
        parts = re.split(r"[\sx,]+", str(value).strip()) if _present(value) else []
        numbers = [_to_float(p) for p in parts]
        if len(numbers) == 2 and all(n is not None for n in numbers):
            bx = bx if bx is not None else numbers[0]
            by = by if by is not None else numbers[1]
    return int(bx or 1), int(by or 1)


_WCS_KEYS = ("CTYPE", "CRVAL", "CRPIX", "CD1_", "CD2_", "CDELT", "PC1_", "PC2_", "CUNIT", "PV1_")
_WCS_KEYS += ("PV2_", "RADESYS", "EQUINOX", "LONPOLE", "LATPOLE", "A_", "B_", "AP_", "BP_")


def celestial_wcs(header: Mapping, trim_section: str = "") -> WCS | None:
    """The celestial WCS a raw header carries (from a plate solver or a pipeline), or None.

    Values written as strings (``CRVAL1 = '124.61'``) are read as numbers; SCAMP's TAN with
    ``PV`` terms is read as TPV. With ``trim_section`` (the raw section kept, FITS
    convention), the reference pixel is moved to the trimmed frame.

    Parameters
    ----------
    header : mapping
        The raw header.
    trim_section : str
        E.g. ``'[18:1382,1:1370]'`` ('' when the frame was not trimmed).

    Returns
    -------
    astropy.wcs.WCS or None
        None when the header has no celestial WCS or it cannot be read.
    """
    if not str(header.get("CTYPE1", "")).upper().startswith("RA"):
        return None
    cards = fits.Header()
    for key in header:
        if key and key.startswith(_WCS_KEYS):
            value = header[key]
            number = _to_float(value) if isinstance(value, str) else None
            cards[key] = number if number is not None and not key.startswith("CTYPE") else value
    has_pv = any(k.startswith(("PV1_", "PV2_")) for k in cards)
    for axis in ("1", "2"):
        ctype = str(cards.get(f"CTYPE{axis}", ""))
        if has_pv and ctype.endswith("-TAN"):
            cards[f"CTYPE{axis}"] = ctype[:-4] + "-TPV"
    if trim_section:
        match = re.fullmatch(r"\[\s*(\d+)\s*:\s*\d+\s*,\s*(\d+)\s*:\s*\d+\s*\]", trim_section)
        if match:
            cards["CRPIX1"] = float(cards.get("CRPIX1", 0.0)) - (int(match[1]) - 1)
            cards["CRPIX2"] = float(cards.get("CRPIX2", 0.0)) - (int(match[2]) - 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs = WCS(cards, naxis=2)
            scale = float(np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix)))) * 3600.0
    except Exception:  # noqa: BLE001 - an unreadable WCS is only not used
        return None
    if not (wcs.has_celestial and 0.001 < scale < 1000.0):
        return None
    return wcs
