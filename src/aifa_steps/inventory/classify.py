"""What kind of frame a raw file is, and its canonical filter.

Header values are mapped through the configuration (``frame_types``, ``filters``), then through
the words camera software writes, then through the names of the file and its folders.
"""

from __future__ import annotations

import re
from pathlib import Path

from aifa_steps.core.formats import frame_stem

__all__ = ["FRAME_TYPES", "frame_type", "canonical_filter"]

FRAME_TYPES = ("bias", "dark", "flat", "light")
_FOLDER_TYPES = {
    "bias": "bias",
    "biases": "bias",
    "zero": "bias",
    "offset": "bias",
    "dark": "dark",
    "darks": "dark",
    "flat": "flat",
    "flats": "flat",
    "light": "light",
    "lights": "light",
    "science": "light",
}


_TYPE_WORDS = {
    "bias": ("bias", "zero", "offset"),
    "dark": ("dark",),
    "flat": ("flat", "skyflat", "domeflat", "twflat", "flatfield"),
    "light": ("light", "lights", "object", "science", "sci"),
}


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[^a-z]+", text.lower()) if w]


def _type_from_words(text: str, plural: bool = False) -> str | None:
    words = _words(text)
    for kind, stems in _TYPE_WORDS.items():
        for word in words:
            base = word[:-1] if plural and word.endswith("s") and word[:-1] in stems else word
            if base in stems or (kind == "flat" and base.endswith("flat")):
                return kind
    return None


def frame_type(
    value: object, aliases: dict[str, list[str]], path: Path | None = None
) -> str | None:
    """The frame type (bias, dark, flat, light) of a header value, or of the file's name.

    Tried in order: the configured aliases (``frame_types``); the words of the value as
    camera software writes them (NINA ``LIGHT``, MaxIm DL ``Light Frame``/``Flat Field``,
    IRAF-style ``OBJECT``, ``ZERO``, ``SKYFLAT``, ``DOMEFLAT``); then, when the header has no
    frame type at all, the names of the file's folders (``BIAS/``, ``zero/``, ``flats/``, ...)
    and of the file itself (``flat_r_001.fits``); and finally, for a file that says nothing
    about its type anywhere, ``light`` (a night of science frames only).

    Parameters
    ----------
    value : object
        The header value (None when the keyword is missing).
    aliases : dict
        Frame type -> accepted header values (case-insensitive).
    path : pathlib.Path, optional
        The file; its folder and file names are the fallback.

    Returns
    -------
    str or None
        The frame type, or None for a header value that names none of them (e.g. ``FOCUS``).
    """
    text = "" if value is None else str(value).strip().lower()
    if text:
        for kind in FRAME_TYPES:
            if text in {a.strip().lower() for a in aliases.get(kind, [])}:
                return kind
        kind = _type_from_words(text)
        if kind:
            return kind
    if path is not None:
        # Any folder named like a frame type; words in names only for the file's own folder
        # (a parent such as /data/dark_sky_survey/ says nothing about the frames).
        for part in reversed(path.parent.parts):
            kind = _FOLDER_TYPES.get(part.lower())
            if kind:
                return kind
        kind = _type_from_words(path.parent.name, plural=True)
        if kind:
            return kind
        kind = _type_from_words(frame_stem(path), plural=True)
        if kind:
            return kind
    return "light" if not text else None


def canonical_filter(value: object, aliases: dict[str, list[str]]) -> str | None:
    """The canonical filter name for a header value; the value itself when no alias matches."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    for name, names in aliases.items():
        if text.lower() == name.lower() or text.lower() in {a.strip().lower() for a in names}:
            return name
    return text
