"""How long the simulator takes per frame type, at a preset's frame size (prints numbers).

Usage: .venv/bin/python bench/bench_simulate.py [--preset full] [--repeat 2]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from aifa_steps.simulate import get_preset, plan_night
from aifa_steps.simulate.detector import make_detector
from aifa_steps.simulate.night import _init_worker, render_frame
from aifa_steps.simulate.sky import make_catalogue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="full")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    preset = get_preset(args.preset)
    t = time.perf_counter()
    plans, transit = plan_night(preset, 1)
    catalogue = make_catalogue(np.random.default_rng(1), preset)
    det = make_detector(np.random.default_rng(2), preset.shape, preset.instrument, ("g", "r", "i"))
    host = int(catalogue["id"][catalogue["role"] == "target"][0])
    setup = time.perf_counter() - t
    _init_worker(
        {
            "preset": preset,
            "detector": det,
            "catalogue": catalogue,
            "transit": transit,
            "host_id": host,
        }
    )
    print(
        f"preset {preset.name}: frames {preset.shape[1]} x {preset.shape[0]}, "
        f"{len(plans)} frames, {len(catalogue)} stars; set-up {setup:.2f} s"
    )
    examples = {}
    for plan in plans:
        key = plan.imagetyp if plan.imagetyp != "LIGHT" else f"LIGHT {plan.object}"
        examples.setdefault(key, plan)
    total = 0.0
    for key, plan in examples.items():
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            render_frame(plan)
            times.append(time.perf_counter() - t)
        n = sum(
            1
            for p in plans
            if (p.imagetyp if p.imagetyp != "LIGHT" else f"LIGHT {p.object}") == key
        )
        total += n * min(times)
        print(f"  {key:<16} {min(times):7.3f} s per frame  x {n:4d} frames")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"estimated rendering time for the night on one core: {total:.0f} s "
        f"(plus FITS writing); peak memory {peak_mb:.0f} MB"
    )


if __name__ == "__main__":
    main()
