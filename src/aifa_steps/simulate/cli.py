"""Command line: ``python -m aifa_steps.simulate OUTDIR --preset tiny --seed 1``."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from .night import simulate_night
from .presets import PRESETS, get_preset

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Simulate a night from the command line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m aifa_steps.simulate",
        description="Write a simulated raw night (BIAS/ DARK/ FLAT/ LIGHT/) and its truth.",
    )
    parser.add_argument("outdir", type=Path, help="night folder to create")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument(
        "--transit-frames",
        type=int,
        default=None,
        help="number of frames in the transit series (default: the preset's)",
    )
    parser.add_argument(
        "--work-dir", default=None, help="work folder written into the night's config.yaml"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing night folder")
    args = parser.parse_args(argv)

    if args.outdir.exists() and any(args.outdir.iterdir()):
        if not args.overwrite:
            parser.error(f"{args.outdir} exists and is not empty (use --overwrite)")
        shutil.rmtree(args.outdir)
    preset = get_preset(args.preset, args.transit_frames)
    start = time.perf_counter()
    out = simulate_night(
        args.outdir, preset, seed=args.seed, jobs=args.jobs, work_dir=args.work_dir
    )
    n = sum(len(list((out / d).glob("*.fits"))) for d in ("BIAS", "DARK", "FLAT", "LIGHT"))
    print(
        f"simulated night '{preset.name}' (seed {args.seed}): {n} raw frames in {out} "
        f"({time.perf_counter() - start:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
