"""A realistic simulated night for the AIfA 35 cm telescope, with everything it knows as truth.

Run ``python -m aifa_steps.simulate OUTDIR --preset {tiny,demo,full} --seed N``; see the README
for the files it writes.
"""

from .night import night_config, simulate_night
from .plan import FramePlan, plan_night
from .presets import PRESETS, Preset, get_preset

__all__ = [
    "FramePlan",
    "PRESETS",
    "Preset",
    "get_preset",
    "night_config",
    "plan_night",
    "simulate_night",
]
