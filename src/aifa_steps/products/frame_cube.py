"""The reprojected frames of a stack, held in memory or in a scratch file on disk.

A 29-frame full-size stack is 1.8 GB of float32 frames. Beyond a size set in the
configuration they are written to an unnamed file (as SWarp writes its resampled frames) and
the clipping reads them back a band of rows at a time, so that the stack's memory does not
grow with the number of frames.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

__all__ = ["FrameCube"]


class FrameCube:
    """The reprojected frames of a stack: in memory, or in an unnamed scratch file.

    Parameters
    ----------
    n_frames : int
        Frames.
    shape : tuple of int
        ``(rows, columns)`` of one frame.
    in_memory : bool
        Hold the frames in one array; else write them to a scratch file (deleted when closed,
        or by the operating system if the process dies) and read them back a band at a time.
    scratch_dir : path, optional
        Folder of the scratch file (default: the system's temporary folder).
    """

    def __init__(
        self,
        n_frames: int,
        shape: tuple[int, int],
        in_memory: bool = True,
        scratch_dir: str | Path | None = None,
    ) -> None:
        self.n_frames = n_frames
        self.shape = tuple(shape)
        self._frame_bytes = 4 * self.shape[0] * self.shape[1]
        self._array = np.empty((n_frames, *self.shape), np.float32) if in_memory else None
        self._file = (
            None
            if in_memory
            else tempfile.TemporaryFile(prefix=".stack-", suffix=".cube", dir=scratch_dir)
        )

    def put(self, k: int, frame: np.ndarray) -> None:
        """Store frame ``k``."""
        if self._array is not None:
            self._array[k] = frame
            return
        frame = np.ascontiguousarray(frame, dtype=np.float32)
        self._file.seek(k * self._frame_bytes)
        self._file.write(memoryview(frame).cast("B"))

    def band(self, rows: slice) -> np.ndarray:
        """``(n_frames, rows, columns)`` values of a band of rows."""
        if self._array is not None:
            return self._array[:, rows]
        start, stop, _ = rows.indices(self.shape[0])
        nx = self.shape[1]
        values = np.empty((self.n_frames, stop - start, nx), np.float32)
        for k in range(self.n_frames):
            self._file.seek(k * self._frame_bytes + 4 * start * nx)
            wanted = values[k].nbytes
            if self._file.readinto(memoryview(values[k]).cast("B")) != wanted:
                raise OSError("the stack's scratch file is shorter than written")
        return values

    def close(self) -> None:
        """Release the memory or the scratch file."""
        self._array = None
        if self._file is not None:
            self._file.close()
            self._file = None
