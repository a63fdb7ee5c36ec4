"""Image statistics that several stages share."""

from __future__ import annotations

import numpy as np

__all__ = ["coarse_background"]


def coarse_background(data: np.ndarray, box: int = 16) -> np.ndarray:
    """Median of each ``box`` x ``box`` cell, repeated back to full size (edges padded)."""
    ny, nx = data.shape
    py, px = -ny % box, -nx % box
    padded = np.pad(data, ((0, py), (0, px)), mode="edge")
    cells = padded.reshape(padded.shape[0] // box, box, padded.shape[1] // box, box)
    med = np.median(cells.transpose(0, 2, 1, 3).reshape(cells.shape[0], cells.shape[2], -1), axis=2)
    return np.repeat(np.repeat(med, box, axis=0), box, axis=1)[:ny, :nx]
