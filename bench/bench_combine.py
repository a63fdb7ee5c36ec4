"""Master combination of full-size frames: time and peak memory, against the time to read them.

Usage: .venv/bin/python bench/bench_combine.py [--frames 20] [--memory-mb 1024]
Writes synthetic uint16 bias frames (4788 x 3194) to a temporary folder first.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

from aifa_steps.calibration.combine import combine_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--memory-mb", type=float, default=1024.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shape", type=int, nargs=2, default=(3194, 4788))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for k in range(args.frames):
            data = rng.normal(500, 9.3, args.shape).astype(np.uint16)
            paths.append(Path(tmp) / f"bias_{k:02d}.fits")
            fits.PrimaryHDU(data).writeto(paths[-1])
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t = time.perf_counter()
        for p in paths:
            np.asarray(fits.getdata(p), dtype=np.float32)
        read_time = time.perf_counter() - t
        t = time.perf_counter()
        combine_files(paths, memory_limit_mb=args.memory_mb, threads=args.threads)
        combine_time = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ny, nx = args.shape
    print(
        f"combine of {args.frames} frames {nx} x {ny}, 5-sigma clipping: {combine_time:.1f} s "
        f"(floor: reading them {read_time:.1f} s); peak memory {peak:.0f} MB "
        f"(before combining {before:.0f} MB; limit set {args.memory_mb:.0f} MB; "
        f"{args.threads} threads)"
    )


if __name__ == "__main__":
    main()
