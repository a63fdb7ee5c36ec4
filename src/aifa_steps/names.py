"""File-safe names for what headers call things (targets, filters).

Header values become folder and file names (``photometry/<target>/``, ``stack_<filter>.fits``),
but an OBJECT may hold spaces, slashes, dots or non-ASCII letters (``HAT-P-32 b/test``,
``M 31``, ``Kepler-1b.2``, ``Plejaden Süd``). Every such value maps to exactly one safe name used
for every path; tables and the report keep the original next to it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

__all__ = ["safe_name", "safe_names"]

_UNSAFE = re.compile(r"[^A-Za-z0-9+\-]+")


def safe_name(text: object, empty: str = "unnamed") -> str:
    """A file-safe version of a header value.

    Accents are dropped (``ü`` -> ``u``), every run of other characters outside letters,
    digits, ``+`` and ``-`` becomes one ``_``, and leading or trailing ``_`` are removed.
    Names of only unsafe characters become ``empty`` plus a short hash of the original, so
    that different originals stay apart.

    Parameters
    ----------
    text : object
        The header value (converted with `str`).
    empty : str
        Base name for values with no safe character.

    Returns
    -------
    str
        A name of ``A-Z a-z 0-9 + - _`` only, never empty, never starting with ``.`` or ``-``.

    Examples
    --------
    >>> safe_name("HAT-P-32 b/test")
    'HAT-P-32_b_test'
    >>> safe_name("Qatar-1")
    'Qatar-1'
    """
    original = str(text).strip()
    ascii_text = unicodedata.normalize("NFKD", original).encode("ascii", "ignore").decode("ascii")
    name = _UNSAFE.sub("_", ascii_text).strip("_")
    if name.startswith("-"):
        name = "_" + name
    if not name:
        digest = hashlib.sha1(original.encode("utf-8")).hexdigest()[:8]
        name = f"{empty}_{digest}" if original else empty
    return name


def safe_names(values: Iterable[object]) -> dict[str, str]:
    """Safe names of several values, distinct for distinct values.

    When two different values map to the same safe name (``M 31`` and ``M/31``), each gets a
    short hash of its original appended, so no two targets ever share a folder.

    Parameters
    ----------
    values : iterable
        Header values (converted with `str` and stripped).

    Returns
    -------
    dict
        Original (stripped) value -> safe name.
    """
    originals = sorted({str(v).strip() for v in values})
    first = {v: safe_name(v) for v in originals}
    counts: dict[str, int] = {}
    for name in first.values():
        counts[name] = counts.get(name, 0) + 1
    result = {}
    for value, name in first.items():
        if counts[name] > 1:
            name = f"{name}_{hashlib.sha1(value.encode('utf-8')).hexdigest()[:6]}"
        result[value] = name
    return result
