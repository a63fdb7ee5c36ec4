"""Whether a raw file holds all the data its headers announce (truncated or corrupt copies).

Plain and tile-compressed files are checked from their headers and size; gzip-compressed files
are decompressed as a stream in constant memory. Raw files are only ever opened read-only.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from aifa_steps.core.formats import Reason
from aifa_steps.inventory.rawio import _BLOCK, _data_span, _is_gzip, _open

__all__ = ["completeness_problem"]

_CHUNK = 1 << 20


class _HduWalker:
    """Follows the HDU structure of a FITS byte stream fed in pieces (headers only kept)."""

    def __init__(self) -> None:
        self.fed = 0  # bytes seen
        self.next_hdu = 0  # where the next header starts
        self.data_end = 0  # end of the data of the last HDU whose header is complete
        self.n_hdus = 0
        self.done = False  # no further HDU (or not FITS)
        self._header = bytearray()

    def feed(self, piece: bytes) -> None:
        start = self.fed
        self.fed += len(piece)
        while not self.done:
            at = self.next_hdu + len(self._header) - start
            if at >= len(piece):
                return
            self._header += piece[at : at + _BLOCK - len(self._header) % _BLOCK]
            if len(self._header) % _BLOCK:
                return  # this block continues in the next piece
            block = bytes(self._header[-_BLOCK:])
            if len(self._header) == _BLOCK and not block.startswith((b"SIMPLE  ", b"XTENSION")):
                self.done = True  # trailing bytes after the last HDU
                return
            if any(block[i : i + 8] == b"END     " for i in range(0, _BLOCK, 80)):
                header = fits.Header.fromstring(bytes(self._header).decode("ascii", "replace"))
                self.n_hdus += 1
                self.data_end = self.next_hdu + len(self._header) + _data_span(header)
                self.next_hdu = self.data_end
                self._header = bytearray()
            elif len(self._header) > 1000 * _BLOCK:
                self.done = True  # no END card: not a header

    @property
    def expected(self) -> int:
        """Where the data of the last HDU end, or the end of the incomplete header seen."""
        return max(self.data_end, self.next_hdu + len(self._header))


def _gunzip(f: BinaryIO) -> Iterator[bytes]:
    """The decompressed bytes of a gzip file (one or more members), in pieces of at most 1 MiB.

    Zero padding between or after members is skipped. Raises `EOFError` when the file ends
    inside a member and `zlib.error` for corrupt data (including a wrong CRC).
    """

    def new() -> zlib._Decompress:
        return zlib.decompressobj(zlib.MAX_WBITS | 16)

    decompressor, started, buffer = new(), False, b""
    while True:
        if decompressor.eof:
            buffer = decompressor.unused_data + buffer
            decompressor, started = new(), False
        if not started:
            buffer = buffer.lstrip(b"\0")
        if not buffer:
            buffer = f.read(_CHUNK)
            if not buffer:
                break
            continue
        started = True
        yield decompressor.decompress(buffer, _CHUNK)
        buffer = decompressor.unconsumed_tail
    if started and not decompressor.eof:
        yield decompressor.flush()
        raise EOFError("the file ends before the end of the compressed stream")


def _gzip_problem(path: Path) -> str | None:
    """Stream-decompress a gzip file in constant memory and compare its size with the headers."""
    walker = _HduWalker()
    try:
        with open(path, "rb") as f:
            for piece in _gunzip(f):
                walker.feed(piece)
    except (EOFError, zlib.error, OSError) as exc:
        expected = f" of {walker.expected}" if walker.expected > walker.fed else ""
        return (
            f"{Reason.TRUNCATED} or corrupt compressed file ({walker.fed}{expected} bytes "
            f"decompressed: {exc})"
        )
    if walker.n_hdus == 0:
        raise OSError(f"{path.name}: the decompressed data are not a FITS file")
    if walker.fed < walker.expected - _BLOCK + 1:
        return f"{Reason.TRUNCATED} file ({walker.fed} of {walker.expected} bytes, uncompressed)"
    return None


def completeness_problem(path: str | Path) -> str | None:
    """Why a raw file does not hold all its data, or None when it does.

    For plain and tile-compressed files the file size is compared with where the last HDU's
    data should end (headers only; a short last FITS block is tolerated); a header cut short
    after the last complete HDU also counts as truncation. A gzip file is decompressed as a
    stream in constant memory: a broken or cut stream, or fewer bytes than its headers
    announce, is reported.

    Parameters
    ----------
    path : str or pathlib.Path
        A raw FITS file.

    Returns
    -------
    str or None
        E.g. ``"truncated file (290880 of 581760 bytes)"``; None for a complete file.

    Raises
    ------
    OSError
        If the file is not a FITS file at all.
    """
    path = Path(path)
    if _is_gzip(path):
        return _gzip_problem(path)
    size = path.stat().st_size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        with _open(path) as hdul:
            hdul.readall()
            info = hdul[-1].fileinfo()
    expected = info["datLoc"] + info["datSpan"]
    if size < expected - _BLOCK + 1:
        return f"{Reason.TRUNCATED} file ({size} of {expected} bytes)"
    if size > expected:
        with open(path, "rb") as f:
            f.seek(expected)
            if f.read(8) == b"XTENSION":
                return (
                    f"{Reason.TRUNCATED} file ({size} bytes; the header at byte {expected} is "
                    "incomplete or unreadable)"
                )
    return None
